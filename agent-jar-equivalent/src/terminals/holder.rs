//! The terminal holder: this binary started as [`super::HOLDER_NAME`] by the agent, in a
//! session of its own, so it lives on when the agent dies or restarts.
//!
//! It reads a [`HolderSpec`] on stdin, opens a PTY, starts the program in it (a session
//! leader with the PTY as its controlling terminal), listens on `DIR/sock` (0600), and
//! prints `ready` (or `error: WHY`) on stdout for the agent that started it. Then one loop:
//! - output is read from the PTY into a [`Ring`] of the last [`HOLDER_BACKLOG`] bytes; while
//!   an agent is attached, the PTY is read only as fast as that agent takes the output
//!   (nothing is lost; the program waits, as on a slow terminal); with none attached the
//!   oldest output is forgotten instead, so the program never waits for an agent;
//! - one agent at a time: a new connection replaces the old one (a restarted agent), says
//!   where it wants output from ([`HolderHello`]), and gets the [`RunInfo`], then output;
//! - input is queued (at most [`MAX_INPUT_QUEUE`] bytes; past that the agent's frames wait)
//!   and typed as the program takes it, so a program that does not read never stalls output;
//! - the end: once the program exited and the PTY is drained, [`TerminalEvent::Exited`]
//!   follows the last output; the holder exits when an agent has read it and closed, or
//!   after [`LINGER_AFTER_END`] with nobody.
//!
//! A holder whose directory is removed (the work dir deleted, say) stops its program and
//! exits: nothing outlives the node's files.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use steward_protocol::services::{decode, encode};
use steward_protocol::terminals::{
    Driver, HOLDER_BACKLOG, HolderHello, HolderSpec, MAX_OUTPUT_CHUNK, MAX_TERMINAL_MESSAGE,
    RunInfo, Size, TerminalEvent, TerminalInput, frame, frame_len,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ring::Ring;
use super::{SOCKET_FILE, SocketPath};
use crate::services::ssh::process::{self, ProcessTree};
use crate::services::ssh::pty::{self, Master, WindowSize};

/// Input queued for a program that is not reading, before the agent's frames wait.
pub const MAX_INPUT_QUEUE: usize = 64 * 1024;
/// How long a holder whose program ended waits for an agent to collect the end.
pub const LINGER_AFTER_END: Duration = Duration::from_secs(24 * 3600);
/// How long output may still come after the program exited (from what it left behind
/// holding the terminal) before the end is told.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// How long an agent has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long processes get between SIGTERM and SIGKILL when the terminal is stopped.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often the holder looks whether its directory is still there.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// The environment variable naming the terminal, for its programs.
pub const NAME_ENV: &str = "STEWARD_TERMINAL";

/// Runs the holder; its exit code. `args` are those after argv[0]: the directory.
pub fn main(args: &[OsString]) -> u8 {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: {} DIR < SPEC", super::HOLDER_NAME);
        return 2;
    };
    let spec = match read_spec() {
        Ok(spec) => spec,
        Err(e) => return fail(&format!("cannot read the terminal's spec: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        match Holder::start(&dir, spec).await {
            Ok(holder) => {
                holder.run().await;
                0
            }
            Err(e) => fail(&e),
        }
    })
}

/// Reports a failure to start on stdout (the agent reads it) and stderr (the log).
fn fail(why: &str) -> u8 {
    eprintln!("{why}");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "error: {}", why.replace('\n', " "));
    let _ = out.flush();
    1
}

fn read_spec() -> Result<HolderSpec, String> {
    let mut body = Vec::new();
    std::io::stdin()
        .take(MAX_TERMINAL_MESSAGE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() > MAX_TERMINAL_MESSAGE {
        return Err(format!("over {MAX_TERMINAL_MESSAGE} bytes"));
    }
    decode(&body)
}

/// The program's side: its process tree and the PTY's master.
struct Program {
    child: Child,
    tree: ProcessTree,
    master: Master,
}

struct Holder {
    dir: PathBuf,
    listener: UnixListener,
    info: RunInfo,
    program: Program,
}

impl Holder {
    async fn start(dir: &Path, spec: HolderSpec) -> Result<Holder, String> {
        let socket = SocketPath::of(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket_file = dir.join(SOCKET_FILE);
        match std::fs::remove_file(&socket_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", socket_file.display())),
        }
        let listener = UnixListener::bind(&socket.path)
            .map_err(|e| format!("cannot listen on {}: {e}", socket_file.display()))?;
        std::fs::set_permissions(&socket_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", socket_file.display()))?;
        let size = spec.launch.size.clamped();
        let (program, command) = spawn(dir, &spec, size)?;
        let info = RunInfo {
            run: format!("{:016x}", rand::random::<u64>()),
            started_ms: now_ms(),
            pid: program.tree.pgid() as u32,
            command,
            size,
            first_offset: 0,
            started_now: true,
        };
        // Tell the agent, then let go of its pipe and of stdin.
        let mut out = std::io::stdout();
        let told = writeln!(out, "ready").and_then(|()| out.flush());
        detach_stdio();
        told.map_err(|e| format!("cannot tell the agent: {e}"))?;
        Ok(Holder {
            dir: dir.to_path_buf(),
            listener,
            info,
            program,
        })
    }

    async fn run(self) {
        let Holder {
            dir,
            listener,
            mut info,
            program,
        } = self;
        let Program {
            mut child,
            tree,
            master,
        } = program;
        let mut ring = Ring::new(HOLDER_BACKLOG);
        let mut input: Vec<u8> = Vec::new();
        let mut client: Option<Client> = None;
        // The attached agent's frames, apart from `client` so both can be awaited at once.
        let mut inputs: Option<mpsc::Receiver<TerminalInput>> = None;
        let (hello_tx, mut hellos) = mpsc::channel::<(UnixStream, HolderHello)>(4);
        let mut buf = vec![0u8; MAX_OUTPUT_CHUNK];
        let mut pty_open = true;
        let mut exit_status: Option<TerminalEvent> = None;
        let mut drain_until: Option<Instant> = None;
        let mut ended: Option<TerminalEvent> = None;
        let mut ended_at: Option<Instant> = None;
        let mut kill_at: Option<Instant> = None;
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        loop {
            if let Some(c) = client.as_mut() {
                c.fill(&ring, ended.as_ref());
            }
            // Read output while the attached agent keeps up (lossless), or always when none is
            // attached (the oldest output is forgotten).
            let room = match &client {
                Some(c) => HOLDER_BACKLOG.saturating_sub((ring.end() - c.cursor) as usize),
                None => MAX_OUTPUT_CHUNK,
            }
            .min(MAX_OUTPUT_CHUNK);
            let reading = pty_open && room > 0;
            let writing_input = pty_open && !input.is_empty();
            let taking_input = input.len() < MAX_INPUT_QUEUE;
            let sending = client.as_ref().is_some_and(Client::has_pending);
            let finished = ended.is_some()
                && client
                    .as_ref()
                    .is_some_and(|c| c.exit_sent && !c.has_pending() && c.closed);
            if finished {
                return;
            }
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let hello_tx = hello_tx.clone();
                        tokio::spawn(async move {
                            if let Ok(Some(hello)) = tokio::time::timeout(HELLO_TIMEOUT, read_hello(&stream)).await {
                                let _ = hello_tx.send((stream, hello)).await;
                            }
                        });
                    }
                }
                Some((stream, hello)) = hellos.recv() => {
                    let cursor = match hello.resume {
                        Some(r) if r.run == info.run => r.offset.clamp(ring.first(), ring.end()),
                        _ => ring.first(),
                    };
                    info.first_offset = ring.first();
                    info.started_now = false;
                    // The replaced agent (if any) is dropped: its socket closes.
                    let (attached, frames) = Client::new(stream, cursor, &info);
                    client = Some(attached);
                    inputs = Some(frames);
                }
                read = master.read(&mut buf[..room.max(1)]), if reading => match read {
                    Ok(0) | Err(_) => pty_open = false,
                    Ok(n) => {
                        ring.push(&buf[..n]);
                        // A terminal gives a few KiB a read: take what else it has now, up
                        // to a whole chunk, so a flood goes out in full chunks.
                        let mut taken = n;
                        while taken < room {
                            match master.try_read(&mut buf[..room - taken]) {
                                Ok(Some(0)) | Err(_) => {
                                    pty_open = false;
                                    break;
                                }
                                Ok(Some(n)) => {
                                    ring.push(&buf[..n]);
                                    taken += n;
                                }
                                Ok(None) => break,
                            }
                        }
                    }
                },
                wrote = master.write(&input), if writing_input => match wrote {
                    Ok(n) => { input.drain(..n); }
                    Err(_) => input.clear(),
                },
                message = recv_input(&mut inputs), if taking_input => match message {
                    Some(TerminalInput::Input(data)) => input.extend_from_slice(&data),
                    Some(TerminalInput::Resize(size)) => {
                        let size = size.clamped();
                        info.size = size;
                        let _ = master.resize(window(size));
                    }
                    Some(TerminalInput::Stop) => {
                        stop(&tree, &mut kill_at);
                    }
                    None => {
                        inputs = None;
                        if let Some(c) = client.as_mut() {
                            c.closed = true;
                        }
                        if ended.is_none() || client.as_ref().is_some_and(|c| !c.exit_sent) {
                            client = None;
                        }
                    }
                },
                sent = send_pending(&mut client), if sending => {
                    if sent.is_err() {
                        client = None;
                        inputs = None;
                    }
                }
                status = child.wait(), if exit_status.is_none() => {
                    exit_status = Some(match status {
                        Ok(status) => {
                            use std::os::unix::process::ExitStatusExt;
                            TerminalEvent::Exited { code: status.code(), signal: status.signal() }
                        }
                        Err(_) => TerminalEvent::Exited { code: None, signal: None },
                    });
                    drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                }
                () = sleep_until(drain_until), if drain_until.is_some() && pty_open => {
                    pty_open = false;
                }
                () = sleep_until(kill_at), if kill_at.is_some() => {
                    tree.signal(libc::SIGKILL);
                    kill_at = None;
                }
                _ = check.tick() => {
                    if !dir.exists() {
                        stop(&tree, &mut kill_at);
                        if ended.is_some() {
                            return;
                        }
                    }
                    if ended_at.is_some_and(|at| at.elapsed() > LINGER_AFTER_END) && client.is_none() {
                        return;
                    }
                }
            }
            if ended.is_none()
                && !pty_open
                && let Some(status) = exit_status.clone()
            {
                ended = Some(status);
                ended_at = Some(Instant::now());
            }
        }
    }
}

/// SIGHUP and SIGTERM to the program's processes now, SIGKILL after [`STOP_GRACE`].
fn stop(tree: &ProcessTree, kill_at: &mut Option<Instant>) {
    tree.signal(libc::SIGHUP);
    tree.signal(libc::SIGTERM);
    tree.signal(libc::SIGCONT);
    kill_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One attached agent; its frames come from the reader task through a channel (which is
/// cancel-safe to wait on).
struct Client {
    reader: tokio::task::JoinHandle<()>,
    writer: OwnedWriteHalf,
    /// The next output offset to send.
    cursor: u64,
    /// Framed bytes being written, and how far.
    pending: Vec<u8>,
    written: usize,
    exit_sent: bool,
    /// The agent closed its side.
    closed: bool,
}

impl Client {
    fn new(
        stream: UnixStream,
        cursor: u64,
        info: &RunInfo,
    ) -> (Client, mpsc::Receiver<TerminalInput>) {
        let (mut read, writer) = stream.into_split();
        let (tx, inputs) = mpsc::channel(8);
        let reader = tokio::spawn(async move {
            while let Ok(Some(body)) = read_frame(&mut read).await {
                let Ok(input) = decode::<TerminalInput>(&body) else {
                    break;
                };
                if tx.send(input).await.is_err() {
                    break;
                }
            }
        });
        let client = Client {
            reader,
            writer,
            cursor,
            pending: frame(&encode(info)),
            written: 0,
            exit_sent: false,
            closed: false,
        };
        (client, inputs)
    }

    fn has_pending(&self) -> bool {
        self.written < self.pending.len()
    }

    /// Frames the next output chunk (or the end) when nothing is being written.
    fn fill(&mut self, ring: &Ring, ended: Option<&TerminalEvent>) {
        if self.has_pending() {
            return;
        }
        self.pending.clear();
        self.written = 0;
        if self.cursor < ring.end() {
            let (offset, data) = ring.read(self.cursor, MAX_OUTPUT_CHUNK);
            self.cursor = offset + data.len() as u64;
            self.pending = frame(&encode(&TerminalEvent::Output { offset, data }));
        } else if let Some(end) = ended
            && !self.exit_sent
        {
            self.pending = frame(&encode(end));
            self.exit_sent = true;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn recv_input(inputs: &mut Option<mpsc::Receiver<TerminalInput>>) -> Option<TerminalInput> {
    match inputs {
        Some(inputs) => inputs.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_pending(client: &mut Option<Client>) -> std::io::Result<()> {
    let Some(c) = client else {
        return std::future::pending().await;
    };
    let n = c.writer.write(&c.pending[c.written..]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    c.written += n;
    Ok(())
}

async fn read_hello(stream: &UnixStream) -> Option<HolderHello> {
    let mut header = [0u8; 4];
    read_exact(stream, &mut header).await?;
    let len = frame_len(header).ok()?;
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body).await?;
    decode(&body).ok()
}

/// `read_exact` on a shared reference (the stream is split only once the hello is read).
async fn read_exact(stream: &UnixStream, mut buf: &mut [u8]) -> Option<()> {
    while !buf.is_empty() {
        stream.readable().await.ok()?;
        match stream.try_read(buf) {
            Ok(0) => return None,
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
    Some(())
}

/// One frame's body; `None` at a clean end.
pub async fn read_frame<R: AsyncReadExt + Unpin>(read: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match read.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = frame_len(header).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    read.read_exact(&mut body).await?;
    Ok(Some(body))
}

fn window(size: Size) -> WindowSize {
    WindowSize {
        cols: size.cols.into(),
        rows: size.rows.into(),
        pix_width: 0,
        pix_height: 0,
    }
}

/// Starts the program in a new PTY; it and the command line recordings show.
fn spawn(dir: &Path, spec: &HolderSpec, size: Size) -> Result<(Program, String), String> {
    // The ssh driver's settings, for its client on descriptor 3.
    let mut settings: Option<Vec<u8>> = None;
    let (mut command, shown) = match &spec.launch.driver {
        Driver::Ssh(ssh) => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find the agent's binary: {e}"))?;
            let mut command = std::process::Command::new(exe);
            command.arg0(super::ssh_client::SSH_CLIENT_NAME).arg(dir);
            settings = Some(encode(ssh));
            (
                command,
                format!("ssh {}@{} -p {}", ssh.user, ssh.host, ssh.port),
            )
        }
        Driver::Cmd {
            command: Some(line),
        } => {
            let mut command = std::process::Command::new("/bin/sh");
            command.arg("-c").arg(line);
            (command, line.clone())
        }
        Driver::Cmd { command: None } => {
            let shell = login_shell();
            let name = Path::new(&shell)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sh".into());
            let mut command = std::process::Command::new(&shell);
            // A leading dash makes it a login shell, as login(1) starts it.
            command.arg0(format!("-{name}"));
            (command, shell)
        }
    };
    let home = std::env::var_os("HOME").filter(|h| Path::new(h).is_dir());
    command.current_dir(home.unwrap_or_else(|| "/".into()));
    command.env("TERM", "xterm-256color");
    command.env(NAME_ENV, &spec.name);
    command.envs(spec.launch.env.iter().map(|(k, v)| (k, v)));
    let cookie = process::new_cookie();
    command.env(process::COOKIE_VAR, &cookie);
    let pty::Pty { master, slave } =
        pty::open(window(size)).map_err(|e| format!("cannot open a terminal: {e}"))?;
    let clone = |fd: &std::os::fd::OwnedFd| {
        fd.try_clone()
            .map_err(|e| format!("cannot open a terminal: {e}"))
    };
    command
        .stdin(Stdio::from(clone(&slave)?))
        .stdout(Stdio::from(clone(&slave)?))
        .stderr(Stdio::from(slave));
    let pipe = match &settings {
        Some(_) => Some(settings_pipe().map_err(|e| format!("cannot start {shown}: {e}"))?),
        None => None,
    };
    let pipe_read = pipe.as_ref().map(|(read, _)| read.as_raw_fd());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The settings pipe as descriptor 3 (dup2 leaves it open across exec).
            if let Some(fd) = pipe_read
                && libc::dup2(fd, 3) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = tokio::process::Command::from(command)
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if let (Some((read, write)), Some(settings)) = (pipe, settings) {
        drop(read);
        // Small (a key and a few names): it fits in the pipe, so this never waits.
        let mut write = std::fs::File::from(write);
        std::io::Write::write_all(&mut write, &settings)
            .map_err(|e| format!("cannot start {shown}: {e}"))?;
    }
    let tree = ProcessTree::of(&child, true, &cookie)
        .ok_or_else(|| format!("cannot start {shown}: the process has no id"))?;
    Ok((
        Program {
            child,
            tree,
            master,
        },
        shown,
    ))
}

/// A pipe, both ends closed on exec.
fn settings_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// `$SHELL`, else the user's shell from the password database, else `/bin/sh`.
fn login_shell() -> String {
    if let Ok(shell) = std::env::var("SHELL")
        && Path::new(&shell).is_absolute()
    {
        return shell;
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once,
    // on this thread, before any other call could reuse it.
    unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if !entry.is_null() && !(*entry).pw_shell.is_null() {
            let shell = std::ffi::CStr::from_ptr((*entry).pw_shell).to_string_lossy();
            if shell.starts_with('/') {
                return shell.into_owned();
            }
        }
    }
    "/bin/sh".into()
}

/// Points stdin and stdout at `/dev/null`: the agent's pipes are not kept open (stderr
/// stays: it is the holder's log).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
