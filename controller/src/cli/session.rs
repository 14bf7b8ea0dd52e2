//! One CLI session, whatever the transport: arguments until `START`, then the command with
//! stdin flowing in and output flowing out, then `EXIT`.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use steward_protocol::plaincli::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::commands::{self, Invocation};
use super::io::{Output, STDIN_QUEUE, Stdin};
use crate::auth::{AuthError, Identity};
use crate::state::AppState;

/// How long a client has to send `START` after connecting (Jenkins waits 15 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a finished session waits for the client to close its side.
pub const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most arguments a command line may have.
pub const MAX_ARGS: usize = 1024;
/// Most bytes of arguments held before `START`: a command line is a few KiB, and an
/// anonymous client must not make the controller hold more.
pub const MAX_ARG_BYTES: usize = 1024 * 1024;

/// Frames from the client. An `Err` means the client is gone (the text says why, for the
/// log); a clean end means only that the client has nothing more to send.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, String>> + Send>>;

/// A transport's two directions.
pub struct Transport {
    pub incoming: FrameStream,
    pub outgoing: mpsc::Sender<Frame>,
    /// Cancelled by the transport when it can no longer deliver output (the client is gone).
    pub gone: CancellationToken,
}

/// Runs the session to its `EXIT`. The transport ends when `outgoing` is dropped.
pub async fn run(transport: Transport, auth: Result<Identity, AuthError>, state: AppState) {
    let Transport {
        mut incoming,
        outgoing,
        gone,
    } = transport;
    let out = Output::new(outgoing);
    let args = match tokio::time::timeout(START_TIMEOUT, read_until_start(&mut incoming)).await {
        Ok(Ok(args)) => args,
        Ok(Err(why)) => {
            tracing::debug!(reason = %why, "CLI client left before START");
            out.stderr("Connection closed before arguments received\n")
                .await;
            out.exit(2).await;
            return;
        }
        Err(_) => {
            out.stderr(format!(
                "No START received within {}s\n",
                START_TIMEOUT.as_secs()
            ))
            .await;
            out.exit(2).await;
            return;
        }
    };
    if args.is_empty() {
        out.stderr("Connection closed before arguments received\n")
            .await;
        out.exit(2).await;
        return;
    }

    let client_gone = gone.child_token();
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    // A command that never reads stdin must not stall the pump (which also notices a
    // client that went away): its stdin is closed and whatever the client sends is dropped.
    let stdin_rx = if commands::find(&args[0]).is_some_and(|c| c.reads_stdin) {
        stdin_rx
    } else {
        mpsc::channel(1).1
    };
    let mut pump = AbortOnDrop(tokio::spawn(pump_stdin(
        incoming,
        stdin_tx,
        client_gone.clone(),
    )));

    let invocation = Invocation {
        state: state.clone(),
        auth,
        args,
        stdin: Stdin::new(stdin_rx),
        out: out.clone(),
        cancel: client_gone.clone(),
    };
    let code = tokio::select! {
        // A client that left gets no answer, even if the command finished at the same time.
        biased;
        _ = client_gone.cancelled() => {
            tracing::debug!("CLI client disconnected during the command");
            return;
        }
        code = commands::dispatch(invocation) => code,
        _ = state.shutdown.cancelled() => {
            out.error("The controller is shutting down").await;
            1
        }
    };
    out.exit(code).await;
    drop(out);
    // Keep reading until the client closes its side: dropping a connection the client is
    // still writing to (END_STDIN, a pong) makes the kernel reset it, and a reset can
    // discard the EXIT the client has not read yet.
    let _ = tokio::time::timeout(CLOSE_DRAIN_TIMEOUT, &mut pump.0).await;
}

async fn read_until_start(incoming: &mut FrameStream) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut bytes = 0;
    while let Some(frame) = incoming.next().await {
        match frame? {
            Frame::Arg(a) if args.len() < MAX_ARGS && bytes + a.len() <= MAX_ARG_BYTES => {
                bytes += a.len();
                args.push(a);
            }
            Frame::Arg(_) => {
                return Err(format!(
                    "more than {MAX_ARGS} arguments or {MAX_ARG_BYTES} bytes of them"
                ));
            }
            Frame::Start => return Ok(args),
            _ => {}
        }
    }
    Err("connection closed".into())
}

/// Moves STDIN frames to the command; END_STDIN closes its stdin. When the transport
/// reports the client gone, `client_gone` is cancelled.
async fn pump_stdin(
    mut incoming: FrameStream,
    stdin: mpsc::Sender<Bytes>,
    client_gone: CancellationToken,
) {
    let mut stdin = Some(stdin);
    while let Some(frame) = incoming.next().await {
        match frame {
            Ok(Frame::Stdin(data)) => {
                if let Some(tx) = &stdin
                    && tx.send(data).await.is_err()
                {
                    // The command stopped reading; later stdin is discarded.
                    stdin = None;
                }
            }
            Ok(Frame::EndStdin) => stdin = None,
            // Keepalive ENCODING frames, unknown opcodes and frames in the wrong direction
            // are skipped, as the protocol says.
            Ok(_) => {}
            Err(why) => {
                tracing::debug!(reason = %why, "CLI client gone");
                client_gone.cancel();
                return;
            }
        }
    }
    // A clean end of the client's side (an HTTP upload that finished after END_STDIN) is
    // not a disconnect: the client still reads the output. Transports report a lost
    // client as an error.
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
