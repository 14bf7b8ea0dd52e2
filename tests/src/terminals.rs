//! Attached terminal clients: `cli attach-terminal` with piped stdin and stdout, its output
//! collected byte by byte (a prompt has no newline), for tests that type and watch.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Controller, POLL, command};

/// A shell with a fixed prompt and no start-up files, so its output is the same on every
/// machine.
pub const SHELL: &str = "env PS1='$ ' bash --norc --noprofile -i";

/// One `cli attach-terminal` process.
pub struct TerminalClient {
    child: Child,
    stdin: Option<Box<dyn Write + Send>>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    /// The master of the client's own terminal, for a client run in one.
    tty: Option<OwnedFd>,
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn collect(mut stream: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

impl TerminalClient {
    /// `cli attach-terminal NAME EXTRA…` as admin.
    pub fn attach(c: &Controller, name: &str, extra: &[&str]) -> TerminalClient {
        TerminalClient::spawn(c, name, extra, true)
    }

    /// A client whose output nobody reads: it falls behind once its pipe is full.
    pub fn attach_stalled(c: &Controller, name: &str) -> TerminalClient {
        TerminalClient::spawn(c, name, &[], false)
    }

    fn spawn(c: &Controller, name: &str, extra: &[&str], read: bool) -> TerminalClient {
        let auth = format!("admin:{}", c.token);
        let mut child = command("cli")
            .args(["-s", &c.url, "-auth", &auth, "attach-terminal", name])
            .args(extra)
            .env_remove("JENKINS_URL")
            .env_remove("JENKINS_USER_ID")
            .env_remove("JENKINS_API_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cli attach-terminal");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        if read {
            collect(stdout, out.clone());
        } else {
            // Held, never read: the pipe fills and the client stops reading its socket.
            std::mem::forget(stdout);
        }
        collect(child.stderr.take().unwrap(), err.clone());
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn Write + Send>);
        TerminalClient {
            child,
            stdin,
            out,
            err,
            tty: None,
        }
    }

    /// `cli attach-terminal NAME EXTRA…` as admin, in a terminal of its own of `cols` ×
    /// `rows`: the client goes raw and sends its window size.
    pub fn attach_tty(
        c: &Controller,
        name: &str,
        extra: &[&str],
        cols: u16,
        rows: u16,
    ) -> TerminalClient {
        let (mut master, mut slave) = (-1, -1);
        let size = winsize(cols, rows);
        // SAFETY: openpty writes two descriptors; name and termios are null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both were just opened and are owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let auth = format!("admin:{}", c.token);
        let mut cmd = command("cli");
        cmd.args(["-s", &c.url, "-auth", &auth, "attach-terminal", name])
            .args(extra)
            .env_remove("JENKINS_URL")
            .env_remove("JENKINS_USER_ID")
            .env_remove("JENKINS_API_TOKEN")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave))
            .stderr(Stdio::piped());
        // SAFETY: setsid and ioctl are async-signal-safe: the terminal becomes the client's
        // controlling terminal, so a resize sends it SIGWINCH.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("starting cli attach-terminal");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let reader = std::fs::File::from(master.try_clone().unwrap());
        collect(reader, out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        let writer = std::fs::File::from(master.try_clone().unwrap());
        TerminalClient {
            child,
            stdin: Some(Box::new(writer)),
            out,
            err,
            tty: Some(master),
        }
    }

    /// Resizes the client's own terminal (it gets SIGWINCH).
    pub fn resize_tty(&self, cols: u16, rows: u16) {
        let master = self.tty.as_ref().expect("a client in a terminal");
        let size = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads one winsize.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Types `text` (escapes included: `\x05c.` detaches).
    pub fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("typing into cli");
        stdin.flush().expect("typing into cli");
    }

    /// Everything shown so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// How many times `needle` was shown.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// Waits until `needle` has been shown `times` times in all.
    pub fn wait_for_count(&self, needle: &str, times: usize, deadline: Duration) {
        let start = Instant::now();
        while self.count(needle) < times {
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {times} × {needle:?} in:\n{}\nstderr: {}",
                self.text(),
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_for(&self, needle: &str, deadline: Duration) {
        self.wait_for_count(needle, 1, deadline);
    }

    /// The exit code, once the process has exited within `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for cli") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < deadline,
                "cli attach-terminal did not exit within {deadline:?}:\n{}",
                self.text()
            );
            std::thread::sleep(POLL);
        }
    }

    /// `^Ec.`: detaches; the exit code.
    pub fn detach(&mut self, deadline: Duration) -> i32 {
        self.type_text("\x05c.");
        self.wait_exit(deadline)
    }
}

impl Drop for TerminalClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The terminal holders running for agents on `work_dir` (by their command lines).
pub fn holders(work_dir: &std::path::Path) -> Vec<u32> {
    let prefix = work_dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some("steward-terminal-holder")
            && args.get(1).is_some_and(|dir| dir.starts_with(&prefix))
        {
            found.push(pid);
        }
    }
    found
}

/// asciinema, as installed by `scripts/test` (`pip install asciinema==2.4.0`).
pub fn asciinema() -> std::process::Command {
    crate::pip_tool("asciinema", "asciinema==2.4.0")
}

/// Debian's sshd, started on a free loopback port with its own host key, letting in the
/// holder of one key; stopped when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    /// `SHA256:` fingerprint of its host key.
    pub host_key: String,
}

impl Sshd {
    pub fn start(authorized_key: &std::path::Path) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("host_ed25519_key");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
        let listed = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&key)
            .output()
            .unwrap();
        let host_key = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        // sshd run as root wants its privilege separation directory (a service makes it).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("sshd (install openssh-server: scripts/test does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\n",
                key.display(),
                authorized_key.display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sshd");
        let log = Arc::new(Mutex::new(Vec::new()));
        collect(child.stderr.take().unwrap(), log.clone());
        let start = Instant::now();
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        while !String::from_utf8_lossy(&log.lock().unwrap()).contains(&listening) {
            assert!(
                start.elapsed() < crate::DEADLINE,
                "sshd did not start:\n{}",
                String::from_utf8_lossy(&log.lock().unwrap())
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "sshd exited:\n{}",
                String::from_utf8_lossy(&log.lock().unwrap())
            );
            std::thread::sleep(POLL);
        }
        Sshd {
            child,
            port,
            _dir: dir,
            host_key,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
