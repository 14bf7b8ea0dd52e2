#!/usr/bin/env python3
"""The timing half of scripts/ssh-bench (Python standard library only).

  ssh-bench-echo.py echo [--count N] [--gap-ms G] [--log FILE] -- SSH ARGS...
      Runs `SSH ARGS...` (an `ssh -tt` to an interactive shell) on a pseudo-terminal of
      its own, waits for the shell, then types N single characters, one at a time: the
      time from writing a character to reading its echo is one sample. Each character is
      erased with DEL (its echo awaited, not timed) so the line stays short, and G ms pass
      before the next one. Prints "n=N p50=MS p99=MS max=MS mean=MS".

  ssh-bench-echo.py load --out FILE -- SSH ARGS...
      Runs `SSH ARGS...` (a command that writes a file's bytes forever) and counts what it
      writes on stdout until SIGTERM; then stops it and writes "BYTES SECONDS" to FILE.
"""

import os
import select
import signal
import struct
import subprocess
import sys
import time

# Long enough for a login over a loaded loopback link; the bench fails rather than hangs.
LOGIN_TIMEOUT = 30.0
# One keystroke's echo, even under load, comes back well within this.
ECHO_TIMEOUT = 10.0


def split_args(argv):
    if "--" not in argv:
        sys.exit("ssh-bench-echo: missing -- before the ssh command")
    i = argv.index("--")
    opts, command = argv[:i], argv[i + 1:]
    parsed = {}
    while opts:
        name = opts.pop(0)
        if not opts:
            sys.exit(f"ssh-bench-echo: {name} needs a value")
        parsed[name.lstrip("-")] = opts.pop(0)
    return parsed, command


class Terminal:
    """An ssh client on the slave side of a pseudo-terminal; we are the keyboard and screen."""

    def __init__(self, command, log):
        import fcntl
        import termios

        master, slave = os.openpty()
        # A wide screen so that nothing wraps; ssh sends this size with its pty request.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        env = dict(os.environ, TERM="xterm")
        self.log = open(log, "ab") if log else None
        self.proc = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=self.log or subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.fd = master
        self.seen = b""

    def write(self, data):
        os.write(self.fd, data)

    def wait_for(self, needle, timeout, start=None):
        """Reads until `needle` appears after offset `start` of what was read; returns
        the offset just past it."""
        start = len(self.seen) if start is None else start
        deadline = time.monotonic() + timeout
        while True:
            at = self.seen.find(needle, start)
            if at >= 0:
                return at + len(needle)
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.seen[-200:]
                raise TimeoutError(f"no {needle!r} within {timeout} s; last output {tail!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise EOFError(f"ssh ended (status {self.proc.poll()}) before {needle!r}")
                self.seen += chunk
                if self.log:
                    self.log.write(chunk)

    def forget(self):
        """Drops what was read so far (searching stays cheap over many keystrokes)."""
        self.seen = b""

    def close(self):
        try:
            self.write(b"\x04exit\r")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()
        os.close(self.fd)


def percentile(sorted_values, p):
    # Nearest rank: the smallest sample at or above p percent of them.
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def echo(opts, command):
    count = int(opts.get("count", "500"))
    gap = float(opts.get("gap-ms", "5")) / 1000
    # A TERM (the bench's timeout) still ends the ssh it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    term = Terminal(command, opts.get("log"))
    samples = []
    try:
        # The shell is up once it runs a command; the marker is split in the typed line so
        # that only the command's output contains it whole.
        term.write(b"PS1='$ '; echo RE''ADY\r")
        after = term.wait_for(b"READY\r\n", LOGIN_TIMEOUT)
        term.wait_for(b"$ ", LOGIN_TIMEOUT, after)
        time.sleep(0.2)
        letters = b"abcdefghijklmnopqrstuvwxyz"
        for i in range(count):
            c = letters[i % len(letters):i % len(letters) + 1]
            term.forget()
            # Anything still arriving (the previous erase) is read before the clock starts.
            while select.select([term.fd], [], [], 0)[0]:
                term.seen += os.read(term.fd, 65536)
            start = len(term.seen)
            t0 = time.perf_counter()
            term.write(c)
            after = term.wait_for(c, ECHO_TIMEOUT, start)
            samples.append(time.perf_counter() - t0)
            term.write(b"\x7f")
            term.wait_for(b"\x08", ECHO_TIMEOUT, after)
            if gap:
                time.sleep(gap)
    finally:
        term.close()
    ms = sorted(s * 1000 for s in samples)
    print(
        f"n={len(ms)} p50={percentile(ms, 50):.3f} p99={percentile(ms, 99):.3f} "
        f"max={ms[-1]:.3f} mean={sum(ms) / len(ms):.3f}"
    )


def load(opts, command):
    out = opts["out"]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    fd = proc.stdout.fileno()
    total = 0
    t0 = time.monotonic()
    while not stop:
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
        except InterruptedError:
            continue
        if ready:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
    seconds = time.monotonic() - t0
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with open(out, "w") as f:
        f.write(f"{total} {seconds:.3f}\n")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("echo", "load"):
        sys.exit(__doc__)
    opts, command = split_args(sys.argv[2:])
    {"echo": echo, "load": load}[sys.argv[1]](opts, command)


if __name__ == "__main__":
    main()
