//! The relay: the agent's local socket for the `breakpoint` command.
//!
//! The agent listens on `WORKDIR/remoting/agent.sock` (mode 0600: only the agent's user,
//! whom steps and SSH sessions run as). Each connection carries one framed
//! [`BreakpointCall`]; the relay passes it to the controller as
//! [`AgentCall::Breakpoint`] over whichever connection is up and writes back one framed
//! [`BreakpointReply`]. Whatever goes wrong on the way becomes a
//! [`BreakpointReply::Refused`] naming it, so the command always has something to print.
//!
//! A `Wait` is answered only when its breakpoint ends, hours later perhaps. If the
//! connection to the controller drops meanwhile, the same call (same token) is sent on the
//! next one: the controller joins the breakpoint it started. If the command goes away, the
//! call's stream is dropped, which tells the controller nobody waits any more; so a client
//! keeps its end open until the answer (shutting down its writing half reads as leaving).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_channel::call::{CallError, agent_call};
use steward_channel::{ChannelError, StreamError};
use steward_protocol::agent_calls::{AgentCall, AgentReply};
use steward_protocol::breakpoint::{
    self as wire, BreakpointCall, BreakpointCommand, BreakpointReply,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::socket_path;
use crate::services::Context;

/// Connections served at once. Each `wait` holds one for as long as its breakpoint lasts;
/// 64 is far more than the people and steps at one agent, and bounds tasks and descriptors.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its call. The command writes it at once; a
/// connection that does not is not the command, and must not hold a slot.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a connection to the controller. A reconnecting agent is
/// usually back within its first retries; past this the user had better hear why.
pub const CONTROLLER_PATIENCE: Duration = Duration::from_secs(30);
/// How long the controller may take to answer anything but a `Wait`: it answers them from
/// what it holds in memory, so this is only there for a controller that hangs.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long writing the answer may take: it is small and the command is reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept (out of descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the command prints when no controller is reachable.
pub const NOT_CONNECTED: &str = "the agent is not connected to the controller";

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot create the breakpoint socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The listening socket and the task serving it. Dropping it stops the task (and every
/// call in flight) and removes the socket file.
#[derive(Debug)]
pub struct Relay {
    path: PathBuf,
    /// Device and inode of the socket file, so that only our own is removed at the end
    /// (another agent started on the same work dir may have replaced it).
    identity: (u64, u64),
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `WORKDIR/remoting/agent.sock` and relays to `context`'s controller.
    pub fn start(work_dir: &Path, context: Context) -> Result<Relay, RelayError> {
        Relay::start_at(&socket_path(work_dir), context, CONTROLLER_PATIENCE)
    }

    /// Listens on `path`, waiting up to `patience` for a controller connection per call.
    /// Must be called within a tokio runtime.
    pub fn start_at(
        path: &Path,
        context: Context,
        patience: Duration,
    ) -> Result<Relay, RelayError> {
        let failed = |source| RelayError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let (listener, identity) = bind(path).map_err(failed)?;
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixListener::from_std(listener))
            .map_err(failed)?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, context, patience, stop.clone()));
        debug!(socket = %path.display(), "breakpoint socket listening");
        Ok(Relay {
            path: path.to_path_buf(),
            identity,
            stop,
            task: Some(task),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving, waits for the task to end, and removes the socket.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds a socket at `path` with mode 0600. It is bound in a fresh 0700 directory, given
/// its mode, and only then renamed into place, so no one can connect while it is still
/// open to others, and a stale socket from an earlier run is replaced in one step.
fn bind(path: &Path) -> std::io::Result<(std::os::unix::net::UnixListener, (u64, u64))> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let private = dir.join(format!(".agent-sock-{:016x}", rand::random::<u64>()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let temp = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&temp)?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temp, path)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok((listener, (meta.dev(), meta.ino())))
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Accepts connections until `stop`, each served by a task of its own.
async fn serve(
    listener: tokio::net::UnixListener,
    context: Context,
    patience: Duration,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() >= MAX_CONNECTIONS => busy(stream),
                Ok((stream, _)) => {
                    connections.spawn(relay(stream, context.clone(), patience));
                }
                Err(e) => {
                    warn!(error = %e, "breakpoint socket: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Turns a connection away when [`MAX_CONNECTIONS`] are served. The answer is a few dozen
/// bytes, which an empty socket buffer takes without waiting; if it does not, the command
/// sees the connection closed instead.
fn busy(stream: UnixStream) {
    let reply = refused(format!(
        "the agent is already serving {MAX_CONNECTIONS} breakpoint commands; try again later"
    ));
    let _ = stream.try_write(&wire::frame(&reply));
}

/// Serves one connection: its call, relayed, and the answer.
async fn relay(mut stream: UnixStream, context: Context, patience: Duration) {
    let reply = match tokio::time::timeout(REQUEST_TIMEOUT, read_call(&mut stream)).await {
        Err(_) => refused(format!("no request within {}s", REQUEST_TIMEOUT.as_secs())),
        Ok(Err(message)) => refused(message),
        Ok(Ok(call)) => {
            let (mut from_command, _) = stream.split();
            tokio::select! {
                reply = forward(&context, call, patience) => reply,
                // The command is gone (killed, or its session closed): dropping the call
                // resets its stream, and the controller stops counting it.
                () = hung_up(&mut from_command) => return,
            }
        }
    };
    let framed = wire::frame(&reply);
    let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&framed)).await;
    if !matches!(written, Ok(Ok(()))) {
        debug!("breakpoint socket: the command left before its answer");
    }
}

/// Reads one framed call; the error is the reason, for the command to print.
async fn read_call(stream: &mut UnixStream) -> Result<BreakpointCall, String> {
    let unreadable = |e: std::io::Error| format!("unreadable request: {e}");
    let mut header = [0; 4];
    stream.read_exact(&mut header).await.map_err(unreadable)?;
    let len = wire::frame_len(header).map_err(|e| e.to_string())?;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.map_err(unreadable)?;
    wire::unframe(&body).map_err(|e| e.to_string())
}

/// Returns once the command closes its end (or sends more than its one call, which the
/// command never does).
async fn hung_up(from_command: &mut tokio::net::unix::ReadHalf<'_>) {
    let mut byte = [0; 1];
    let _ = from_command.read(&mut byte).await;
}

/// Asks the controller, asking a `Wait` again on the next connection if this one drops.
async fn forward(context: &Context, call: BreakpointCall, patience: Duration) -> BreakpointReply {
    let waits = matches!(call.command, BreakpointCommand::Wait { .. });
    let build = format!("{} #{}", call.build.job, call.build.number);
    let call = AgentCall::Breakpoint(call);
    loop {
        let Some(channel) = context.controller(patience).await else {
            return refused(NOT_CONNECTED.to_owned());
        };
        let answered = if waits {
            Ok(agent_call(&channel, &call).await)
        } else {
            tokio::time::timeout(CALL_TIMEOUT, agent_call(&channel, &call)).await
        };
        match answered {
            Ok(Ok(AgentReply::Breakpoint(reply))) => return reply,
            Ok(Ok(AgentReply::Error { message })) => return refused(message),
            Ok(Ok(AgentReply::Done)) => {
                return refused("the controller answered without a breakpoint reply".into());
            }
            Ok(Err(e)) if waits && connection_lost(&e) => {
                debug!(build, error = %e, "connection lost during breakpoint wait; asking again");
            }
            Ok(Err(e)) => return refused(format!("the call to the controller failed: {e}")),
            Err(_) => {
                return refused(format!(
                    "the controller did not answer within {}s",
                    CALL_TIMEOUT.as_secs()
                ));
            }
        }
    }
}

/// Whether a call failed because its connection ended (rather than being refused).
fn connection_lost(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Channel(ChannelError::Closed(_))
            | CallError::Stream(StreamError::ChannelLost(_))
    )
}

fn refused(message: String) -> BreakpointReply {
    BreakpointReply::Refused { message }
}
