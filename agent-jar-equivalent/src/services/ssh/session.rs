//! One `shell` or `exec` session: the process it starts (on a pty or on pipes), the pumps
//! between it and the channel, and how it ends.
//!
//! The channel's input goes to the process (stdin, or the terminal's keyboard), along with
//! window changes and signals; the process's output goes to the channel as it is produced,
//! one chunk at a time within the client's window, so a client that stops reading stops the
//! process on its next write. When the process exits, whatever it left running is ended
//! ([`ProcessTree`]), the rest of the output is sent, then the exit status (or signal), EOF
//! and close. When the client closes the channel, or the connection ends, the processes are
//! ended and nothing more is sent.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::input::{self, InputReceiver, InputSender};
use super::process::{self, ProcessTree};
use super::pty::{self, Master, WindowSize};
use super::recorder::Recorder;
use super::registry::TerminalGuard;

/// Most output bytes sent per channel message: one SSH packet's worth, so output reaches
/// the client as it is produced.
pub const OUTPUT_CHUNK: usize = 32 * 1024;
/// How long the output of a pty is still read once its processes were killed: a process
/// that escaped into a session of its own may hold the terminal open for ever.
const PTY_DRAIN: Duration = Duration::from_secs(1);

/// Where and with what the sessions of a connection start.
#[derive(Debug, Clone)]
pub struct Setting {
    pub cwd: PathBuf,
    /// The environment every process starts with (before the client's own variables).
    pub env: Vec<(String, String)>,
    /// The login shell, for `shell` requests.
    pub shell: String,
    /// Where input the process has not read yet may wait on disk (`input`).
    pub input_dir: PathBuf,
}

/// A `pty-req`, remembered until the shell or command starts.
#[derive(Debug, Clone)]
pub struct PtyRequest {
    pub term: String,
    pub size: WindowSize,
}

/// What a session runs.
#[derive(Debug, Clone)]
pub enum Program {
    /// The login shell.
    Shell,
    /// `sh -c COMMAND`.
    Command(String),
}

/// A started process and its end of the I/O.
pub struct Started {
    child: Child,
    tree: ProcessTree,
    io: Io,
    input_dir: PathBuf,
}

enum Io {
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<tokio::process::ChildStdout>,
        stderr: Option<tokio::process::ChildStderr>,
    },
    Pty(Master),
}

/// Starts `program`, on a new pty if one was requested.
pub fn start(
    setting: &Setting,
    program: &Program,
    pty: Option<&PtyRequest>,
    client_env: &[(String, String)],
) -> io::Result<Started> {
    let mut command = match program {
        Program::Shell => {
            let mut command = Command::new(&setting.shell);
            // A leading dash makes it a login shell, as sshd starts it.
            let name = std::path::Path::new(&setting.shell)
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| OsString::from("sh"));
            let mut arg0 = OsString::from("-");
            arg0.push(name);
            command.arg0(arg0);
            command
        }
        Program::Command(line) => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(line);
            command
        }
    };
    command
        .env_clear()
        .envs(setting.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&setting.cwd)
        .kill_on_drop(true);
    if let Some(pty) = pty {
        command.env("TERM", &pty.term);
    }
    command.envs(client_env.iter().map(|(k, v)| (k, v)));
    // Set last, so no client variable can take it: it is how escaped processes are found.
    let cookie = process::new_cookie();
    command.env(process::COOKIE_VAR, &cookie);

    match pty {
        None => {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            let mut child = command.spawn()?;
            let tree = ProcessTree::of(&child, false, &cookie).ok_or_else(no_pid)?;
            let io = Io::Pipes {
                stdin: child.stdin.take(),
                stdout: child.stdout.take(),
                stderr: child.stderr.take(),
            };
            Ok(Started {
                child,
                tree,
                io,
                input_dir: setting.input_dir.clone(),
            })
        }
        Some(request) => {
            let pty::Pty { master, slave } = pty::open(request.size)?;
            command
                .stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave));
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    // A session of its own, with the terminal (its stdin) as controlling one.
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = command.spawn()?;
            let tree = ProcessTree::of(&child, true, &cookie).ok_or_else(no_pid)?;
            Ok(Started {
                child,
                tree,
                io: Io::Pty(master),
                input_dir: setting.input_dir.clone(),
            })
        }
    }
}

fn no_pid() -> io::Error {
    io::Error::other("the process has no id")
}

/// Runs the session until the process has ended and everything is sent, or the client
/// closed the channel, or `cancel` fires (the connection ends).
pub async fn run(
    started: Started,
    reader: ChannelReadHalf,
    writer: ChannelWriteHalf<Msg>,
    handle: Handle,
    cancel: CancellationToken,
    terminal: TerminalGuard,
    recorder: Recorder,
) {
    let Started {
        mut child,
        tree,
        io,
        input_dir,
    } = started;
    let id = writer.id();
    let pgid = tree.pgid();
    debug!(pgid, channel = %id, "ssh session started");
    let (stdin, master, stdout, stderr) = match io {
        Io::Pipes {
            stdin,
            stdout,
            stderr,
        } => (stdin, None, stdout.map(Output::Pipe), stderr),
        Io::Pty(master) => (None, Some(master.clone()), Some(Output::Pty(master)), None),
    };

    let (to_process, queued) = input::queue(&input_dir);
    let input = pump_input(reader, to_process, master.clone(), &tree, &recorder);
    let feeding = feed(queued, stdin, master.clone());
    let output = pump_output(&writer, stdout, stderr, &recorder);
    tokio::pin!(input, feeding, output);
    let mut fed = false;
    let mut status = None;
    let mut output_done = false;
    // Set once the process has exited: when what it left behind gets SIGKILL.
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut killed = false;
    let exited = loop {
        if output_done && status.is_some() && (killed || !tree.alive()) {
            break status.take();
        }
        let kill_timer = async {
            match kill_at {
                Some(at) if !killed => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => break None,
            // The client closed the channel: nobody is left to read.
            () = &mut input => break None,
            () = &mut feeding, if !fed => fed = true,
            sent = &mut output, if !output_done => {
                output_done = true;
                if sent.is_err() {
                    break None;
                }
            }
            waited = child.wait(), if status.is_none() => {
                status = Some(waited);
                // What the process left behind ends with it.
                tree.signal(libc::SIGHUP);
                tree.signal(libc::SIGTERM);
                tree.signal(libc::SIGCONT);
                kill_at = Some(tokio::time::Instant::now() + process::TERMINATE_GRACE);
            }
            () = kill_timer => {
                killed = true;
                tree.signal(libc::SIGKILL);
                if master.is_some() && !output_done {
                    // Whatever still holds the terminal is not ours to wait for.
                    kill_at = None;
                    let drained = tokio::time::timeout(PTY_DRAIN, &mut output).await;
                    output_done = true;
                    if !matches!(drained, Ok(Ok(()))) {
                        break None;
                    }
                }
            }
        }
    };
    drop(terminal);
    let Some(status) = exited else {
        debug!(pgid, channel = %id, "ssh session closed; ending its processes");
        tree.terminate(&mut child).await;
        let _ = writer.close().await;
        return;
    };
    let _ = writer.eof().await;
    match status {
        Ok(status) => {
            if let Some(code) = status.code() {
                let _ = writer.exit_status(code as u32).await;
            } else if let Some(signal) = status.signal() {
                match process::signal_name(signal) {
                    Some(name) => {
                        let core = status.core_dumped();
                        let _ = handle
                            .exit_signal_request(id, name, core, String::new(), String::new())
                            .await;
                    }
                    None => {
                        let _ = writer.exit_status(128 + signal as u32).await;
                    }
                }
            }
            debug!(pgid, channel = %id, ?status, "ssh session ended");
        }
        Err(e) => debug!(pgid, channel = %id, error = %e, "cannot wait for the session's process"),
    }
    let _ = writer.close().await;
}

/// Takes the channel's messages until the client closes the channel: input goes to the
/// queue (never waiting for the process, see `input`), window changes and signals to the
/// terminal and the process group.
async fn pump_input(
    mut reader: ChannelReadHalf,
    to_process: InputSender,
    master: Option<Master>,
    tree: &ProcessTree,
    recorder: &Recorder,
) {
    let mut to_process = Some(to_process);
    while let Some(message) = reader.wait().await {
        match message {
            ChannelMsg::Data { data } => {
                // Keystrokes are recorded; a command's piped input (a file, say) is not.
                if master.is_some() {
                    recorder.input(&data);
                }
                if let Some(queue) = &to_process {
                    queue.push(data).await;
                }
            }
            // Closing stdin is how the process learns its input ended. A terminal has no
            // such thing; the user types ^D.
            ChannelMsg::Eof => to_process = None,
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                recorder.resize(col_width, row_height);
                if let Some(master) = &master {
                    let size = WindowSize {
                        cols: col_width,
                        rows: row_height,
                        pix_width,
                        pix_height,
                    };
                    if let Err(e) = master.resize(size) {
                        debug!(error = %e, "cannot resize the terminal");
                    }
                }
            }
            ChannelMsg::Signal { signal } => match process::signal_number(&signal) {
                Some(number) => tree.signal(number),
                None => debug!(?signal, "ignoring an unknown signal"),
            },
            ChannelMsg::Close => return,
            _ => {}
        }
    }
}

/// Writes the queued input into the process's stdin (or its terminal) as it takes it; at
/// the input's end, closes stdin. A process that stops reading holds up only this.
async fn feed(mut queued: InputReceiver, mut stdin: Option<ChildStdin>, master: Option<Master>) {
    while let Some(data) = queued.next().await {
        if let Some(master) = &master {
            // A terminal nobody reads any more: the input has nowhere to go.
            if master.write_all(&data).await.is_err() {
                return;
            }
        } else if let Some(pipe) = stdin.as_mut() {
            if pipe.write_all(&data).await.is_err() {
                return;
            }
        } else {
            return;
        }
    }
    // EOF: dropping stdin closes it.
    drop(stdin);
}

enum Output {
    Pipe(tokio::process::ChildStdout),
    Pty(Master),
}

impl Output {
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Output::Pipe(pipe) => pipe.read(buffer).await,
            Output::Pty(master) => master.read(buffer).await,
        }
    }
}

/// Sends stdout (or the terminal) and stderr to the channel until both end. `Err` when the
/// channel is gone.
async fn pump_output(
    writer: &ChannelWriteHalf<Msg>,
    mut stdout: Option<Output>,
    mut stderr: Option<impl AsyncRead + Unpin>,
    recorder: &Recorder,
) -> Result<(), russh::Error> {
    let mut out_buffer = vec![0u8; OUTPUT_CHUNK];
    let mut err_buffer = vec![0u8; OUTPUT_CHUNK];
    while stdout.is_some() || stderr.is_some() {
        // Reads are cancel-safe: the read that loses the race has taken nothing.
        tokio::select! {
            n = read_output(&mut stdout, &mut out_buffer) => match n {
                0 => stdout = None,
                n => {
                    recorder.output(&out_buffer[..n]);
                    writer.data_bytes(Bytes::copy_from_slice(&out_buffer[..n])).await?
                }
            },
            n = read_pipe(&mut stderr, &mut err_buffer) => match n {
                0 => stderr = None,
                n => {
                    recorder.output(&err_buffer[..n]);
                    let chunk = Bytes::copy_from_slice(&err_buffer[..n]);
                    writer.extended_data_bytes(1, chunk).await?
                }
            },
        }
    }
    Ok(())
}

/// One read; 0 at the end or on an error. Never completes once the output is gone.
async fn read_output(output: &mut Option<Output>, buffer: &mut [u8]) -> usize {
    match output {
        Some(output) => output.read(buffer).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

async fn read_pipe(pipe: &mut Option<impl AsyncRead + Unpin>, buffer: &mut [u8]) -> usize {
    match pipe {
        Some(pipe) => pipe.read(buffer).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}
