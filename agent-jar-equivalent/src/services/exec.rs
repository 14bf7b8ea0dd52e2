//! `Exec`: runs a process for the controller and streams what happens to it as
//! [`ExecEvent`]s, one encoded event per DATA frame: `Started`, then `Stdout`/`Stderr` as
//! the output is produced, then `Exited` (or `Failed` if it never started), then EOF.
//!
//! The process runs in its own process group, and the group is the unit of killing: when
//! the controller resets the stream, when the channel is lost, when this handler is dropped
//! (the session aborts handlers when the channel closes) and when the timeout expires, every
//! member dies with SIGKILL, grandchildren included. Once the process itself exits, members
//! it left behind are killed too, as Jenkins' ProcessTreeKiller does, so the output pipes
//! reach EOF and nothing outlives the request.
//!
//! Flow control is the channel's: when the controller stops reading, sending an event waits
//! for credit, the pipe fills, and the process blocks on its writes. Nothing is buffered
//! beyond one chunk per pipe.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use steward_channel::{MuxStream, RecvHalf, SendHalf, StreamError};
use steward_protocol::services::{self, ExecEvent, ExecRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;
use tracing::debug;

use super::{Context, linger};

/// Most output bytes per event. An encoded event must fit one DATA frame (64 KiB); half of
/// that leaves ample room for the encoding and still makes the per-event cost negligible.
pub const OUTPUT_CHUNK: usize = 32 * 1024;

/// Serves one `Exec` request on `stream` until the process has ended or was cancelled.
pub async fn run(stream: MuxStream, request: ExecRequest, context: &Context) {
    let (mut send, mut recv) = stream.into_split();
    let program = request.argv.first().cloned().unwrap_or_default();
    let mut child = match spawn(&request, context) {
        Ok(child) => child,
        Err(error) => {
            debug!(?error, "exec failed to start");
            let failed = ExecEvent::Failed { error };
            if emit(&mut send, &failed).await.is_ok() && send.finish().await.is_ok() {
                linger(&mut recv).await;
            }
            return;
        }
    };
    let pid = child.id().unwrap_or_default();
    // Declared after `child`, so dropped first: the group dies before `kill_on_drop` runs.
    let mut group = ProcessGroup::new(pid);
    debug!(pid, ?program, "exec started");

    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    if emit(&mut send, &ExecEvent::Started { pid }).await.is_err() {
        return cancel(group, &mut child).await;
    }

    // A RESET from the controller (a cancel) or a lost channel, seen even while nothing is
    // being sent or read.
    let cancelled = send.closed_token();
    let send = Mutex::new(send);
    let deadline = request
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let mut timed_out = false;
    let outcome = {
        let pump = pump_stdin(&mut recv, stdin);
        let output = forward_output(&send, stdout, stderr);
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(pump, output, timeout);
        let (mut pump_done, mut output_done) = (false, false);
        let mut status = None;
        loop {
            if output_done && status.is_some() {
                break status.take();
            }
            tokio::select! {
                pumped = &mut pump, if !pump_done => {
                    pump_done = true;
                    if let Err(e) = pumped {
                        debug!(pid, error = %e, "exec cancelled");
                        break None;
                    }
                }
                sent = &mut output, if !output_done => {
                    output_done = true;
                    if let Err(e) = sent {
                        debug!(pid, error = %e, "exec cancelled");
                        break None;
                    }
                }
                () = cancelled.cancelled() => {
                    debug!(pid, "exec cancelled");
                    break None;
                }
                waited = child.wait(), if status.is_none() => {
                    // Whatever the process left running goes with it; then the pipes end.
                    group.kill();
                    group.forget();
                    status = Some(waited);
                }
                () = &mut timeout, if !timed_out && status.is_none() => {
                    debug!(pid, "exec timed out");
                    timed_out = true;
                    group.kill();
                }
            }
        }
    };
    let mut send = send.into_inner();
    let event = match outcome {
        None => return cancel(group, &mut child).await,
        Some(Ok(status)) => ExecEvent::Exited {
            code: status.code(),
            signal: status.signal(),
            timed_out,
        },
        Some(Err(e)) => ExecEvent::Failed {
            error: format!("cannot wait for {program}: {e}"),
        },
    };
    debug!(pid, ?event, "exec ended");
    if emit(&mut send, &event).await.is_ok() && send.finish().await.is_ok() {
        linger(&mut recv).await;
    }
}

/// Starts the process with piped output, in a new process group.
fn spawn(request: &ExecRequest, context: &Context) -> Result<Child, String> {
    let Some(program) = request.argv.first() else {
        return Err("cannot run an empty command line".into());
    };
    let cwd = match &request.cwd {
        Some(cwd) => context.resolve(cwd),
        None => context.work_dir().to_path_buf(),
    };
    // A missing directory fails the spawn with ENOENT, which would read as a missing program.
    if let Err(e) = std::fs::metadata(&cwd) {
        return Err(format!("cannot run {program} in {}: {e}", cwd.display()));
    }
    Command::new(program)
        .args(&request.argv[1..])
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))
}

/// Kills the group and reaps the process after a cancel; the stream is already dead.
async fn cancel(mut group: ProcessGroup, child: &mut Child) {
    group.kill();
    group.forget();
    let _ = child.wait().await;
}

async fn emit(send: &mut SendHalf, event: &ExecEvent) -> Result<(), StreamError> {
    send.send(Bytes::from(services::encode(event))).await
}

/// Copies the stream's data to the process's stdin (or drops it when there is none) and
/// closes stdin at EOF. `Err` is a RESET or a lost channel.
async fn pump_stdin(recv: &mut RecvHalf, mut stdin: Option<ChildStdin>) -> Result<(), StreamError> {
    loop {
        let next = recv.recv().await;
        match next {
            // Dropping `stdin` here closes it: the process reads EOF.
            None => return Ok(()),
            Some(Err(e)) => return Err(e),
            Some(Ok(chunk)) => {
                if let Some(pipe) = stdin.as_mut()
                    && pipe.write_all(&chunk).await.is_err()
                {
                    // The process closed its stdin; the rest of the data has no reader.
                    stdin = None;
                }
            }
        }
    }
}

/// Sends stdout and stderr as events while they are produced, until both pipes end.
async fn forward_output(
    send: &Mutex<SendHalf>,
    mut stdout: Option<impl AsyncRead + Unpin>,
    mut stderr: Option<impl AsyncRead + Unpin>,
) -> Result<(), StreamError> {
    let mut out_buffer = vec![0u8; OUTPUT_CHUNK];
    let mut err_buffer = vec![0u8; OUTPUT_CHUNK];
    while stdout.is_some() || stderr.is_some() {
        // Reads are cancel-safe: the read that loses the race has taken nothing.
        let event = tokio::select! {
            n = read_pipe(&mut stdout, &mut out_buffer) => match n {
                0 => { stdout = None; continue; }
                n => ExecEvent::Stdout(out_buffer[..n].to_vec()),
            },
            n = read_pipe(&mut stderr, &mut err_buffer) => match n {
                0 => { stderr = None; continue; }
                n => ExecEvent::Stderr(err_buffer[..n].to_vec()),
            },
        };
        emit(&mut *send.lock().await, &event).await?;
    }
    Ok(())
}

/// One read from a pipe; 0 at EOF or on an error. Never completes for a closed pipe.
async fn read_pipe(pipe: &mut Option<impl AsyncRead + Unpin>, buffer: &mut [u8]) -> usize {
    match pipe {
        Some(pipe) => pipe.read(buffer).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

/// The process group of a child, killed with SIGKILL when dropped: the group dies on every
/// path out of [`run`], including an abort.
struct ProcessGroup {
    pgid: Option<libc::pid_t>,
}

impl ProcessGroup {
    fn new(pid: u32) -> Self {
        // Never 0 or negative: killpg(0) would be this agent's own group.
        let pgid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0);
        ProcessGroup { pgid }
    }

    /// SIGKILL to every member.
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg only sends a signal; no memory is involved.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }

    /// Once the group has been killed after its leader was reaped, its id may be reused
    /// by an unrelated group: never signal it again.
    fn forget(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
