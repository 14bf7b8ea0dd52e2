//! One CLI session, whatever the transport: arguments until `START`, then the command with
//! stdin flowing in and output flowing out, then `EXIT`.
//!
//! A command can be stopped before it finishes: by the user's interrupt, by the client going
//! away, or by the controller shutting down. The session records which ([`StopCause`])
//! before it drops the command. A client that announced the `interrupt` extension (our cli)
//! sends `INTERRUPT` when its user interrupts it, so its lost connection is only a lost
//! connection; for any other client (jenkins-cli.jar), as in Jenkins, a lost connection is
//! the interrupt.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use steward_protocol::plaincli::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::commands::{self, Invocation};
use super::io::{Output, STDIN_QUEUE, Stdin};
use super::stop::{Stop, StopCause};
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
/// The exit code a command interrupted by its user ends with: what a shell reports for a
/// process ended by SIGINT (128 + 2).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Frames from the client. An `Err` means the client is gone (the text says why, for the
/// log); a clean end means only that the client has nothing more to send.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, String>> + Send>>;

/// A transport's two directions.
pub struct Transport {
    pub incoming: FrameStream,
    pub outgoing: mpsc::Sender<Frame>,
    /// Cancelled by the transport when it can no longer deliver output (the client is gone).
    pub gone: CancellationToken,
    /// The client sends `INTERRUPT` when its user interrupts it (it announced the
    /// `interrupt` extension), so losing it is not an interrupt.
    pub explicit_interrupts: bool,
    /// The `Authorization` the session opened with (empty for anonymous): checked again
    /// when the command starts, so a token revoked or a password changed since the
    /// handshake stops the next command of a session already open.
    pub credentials: http::HeaderMap,
    /// The client's address, for the audit log.
    pub remote: Option<std::net::IpAddr>,
}

/// The `Authorization` header of `headers` alone, for [`Transport::credentials`].
pub fn credentials_of(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut kept = http::HeaderMap::new();
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        kept.insert(http::header::AUTHORIZATION, value.clone());
    }
    kept
}

/// Runs the session to its `EXIT`. The transport ends when `outgoing` is dropped.
pub async fn run(transport: Transport, auth: Result<Identity, AuthError>, state: AppState) {
    let Transport {
        mut incoming,
        outgoing,
        gone,
        explicit_interrupts,
        credentials,
        remote,
    } = transport;
    let out = Output::new(outgoing);
    let args = match tokio::time::timeout(START_TIMEOUT, read_until_start(&mut incoming)).await {
        Ok(Ok(args)) => args,
        Ok(Err(why)) => {
            tracing::debug!(reason = ?why, "CLI client left before START");
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

    // The credentials again, now that the command starts: what a user may do is what holds
    // now, not at the handshake.
    let auth = match auth {
        Ok(_) => match crate::auth::authenticate(&state.store, &credentials).await {
            Err(AuthError::BadCredentials) => Err(AuthError::Revoked),
            other => other,
        },
        refused => refused,
    };

    // Cancelled when this function returns: the answer is out and the client has closed
    // (or the drain gave up on it).
    let answered = CancellationToken::new();
    let _answered = answered.clone().drop_guard();
    let events = ClientEvents {
        gone: gone.child_token(),
        interrupted: CancellationToken::new(),
        reason: Default::default(),
    };
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    // A command that never reads stdin must not stall the pump (which also notices a
    // client that went away): its stdin is closed and whatever the client sends is dropped.
    let stdin_rx = if commands::find(&args[0]).is_some_and(|c| c.reads_stdin) {
        stdin_rx
    } else {
        mpsc::channel(1).1
    };
    let mut pump = AbortOnDrop(tokio::spawn(pump_stdin(incoming, stdin_tx, events.clone())));

    let stop = StopCause::default();
    let invocation = Invocation {
        state: state.clone(),
        auth,
        remote,
        args,
        stdin: Stdin::new(stdin_rx),
        out: out.clone(),
        cancel: events.gone.clone(),
        stop: stop.clone(),
        answered,
    };
    // Boxed so it can be dropped explicitly, after its stop cause is recorded.
    let mut command = Box::pin(commands::dispatch(invocation));
    let code = tokio::select! {
        // A client that left gets no answer, even if the command finished at the same time.
        biased;
        _ = events.gone.cancelled() => {
            let why = events.reason().unwrap_or_else(|| "the connection closed".to_owned());
            stop.set(if state.shutdown.is_cancelled() {
                Stop::Shutdown
            } else if events.interrupted.is_cancelled() || !explicit_interrupts {
                // An INTERRUPT that came just before the connection closed (a second
                // Ctrl-C exits the client at once) is still the user's interrupt.
                Stop::Interrupted(why)
            } else {
                Stop::ClientLost(why)
            });
            drop(command);
            tracing::debug!("CLI client disconnected during the command");
            return;
        }
        _ = events.interrupted.cancelled() => {
            let why = events.reason().unwrap_or_else(|| "interrupted".to_owned());
            tracing::debug!(reason = ?why, "CLI command interrupted by its user");
            stop.set(Stop::Interrupted(why));
            drop(command);
            EXIT_INTERRUPTED
        }
        code = &mut command => code,
        _ = state.shutdown.cancelled() => {
            stop.set(Stop::Shutdown);
            drop(command);
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

/// What the stdin pump learns of the client besides its stdin.
#[derive(Clone)]
struct ClientEvents {
    /// The client is gone.
    gone: CancellationToken,
    /// The client's user interrupted it (`INTERRUPT`).
    interrupted: CancellationToken,
    /// Why, in words, for the log and the build's console.
    reason: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl ClientEvents {
    fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_reason(&self, why: String) {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }
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
/// reports the client gone, `events.gone` is cancelled; an `INTERRUPT` cancels
/// `events.interrupted`.
async fn pump_stdin(mut incoming: FrameStream, stdin: mpsc::Sender<Bytes>, events: ClientEvents) {
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
            Ok(Frame::Interrupt(how)) => {
                let how: String = how.chars().filter(|c| !c.is_control()).take(32).collect();
                events.set_reason(format!("the user interrupted the client ({how})"));
                events.interrupted.cancel();
            }
            // Keepalive ENCODING frames, unknown opcodes and frames in the wrong direction
            // are skipped, as the protocol says.
            Ok(_) => {}
            Err(why) => {
                tracing::debug!(reason = ?why, "CLI client gone");
                events.set_reason(why);
                events.gone.cancel();
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
