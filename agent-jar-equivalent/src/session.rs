//! One agent connection after the upgrade: the hello exchange, keepalive, and how the
//! connection ends (compat §3.3, §9; frames in [`steward_protocol::channel`]).
//!
//! [`run_session`] is written over any `Sink<Message> + Stream<Item = Result<Message, _>>`,
//! so the same loop runs over the real WebSocket and over in-memory channels in the tests
//! below. It sends our hello, waits for the controller's, then keeps reading: pongs to the
//! controller's pings are flushed at once, and a controller silent for longer than its idle
//! timeout is taken for dead. It returns why the connection ended; the caller
//! ([`crate::reconnect`]) prints the status lines and decides whether to reconnect.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use steward_protocol::channel::{FEATURE_MUX, Frame, GoAway, Hello, Role};
use steward_protocol::shown::Shown;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::connect::printable;
use crate::services;

mod mux;

/// How long the controller has to send its hello after the upgrade: it answers at once
/// when healthy, and a wedged controller should cost one short retry, not a minute.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// Silence after which the connection is taken for dead until the controller's hello names
/// its own timeout: the controller's default idle close (compat §9).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one write (our hello, a pong, a close): a peer that does not drain its socket
/// for this long is gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the controller's close frame after sending ours before dropping
/// the socket; the controller answers within milliseconds when alive.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the session needs to know about this connection.
#[derive(Debug, Clone)]
pub struct SessionParams {
    pub node_name: String,
    /// The version the controller chose in its 101 answer.
    pub channel_version: u16,
    /// Our idle timeout, announced in our hello and used until the controller's arrives.
    pub idle_timeout: Duration,
    /// What the services run with, once the channel is up.
    pub services: services::Context,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown was requested; we closed with 1001.
    Shutdown,
    /// The controller said goodbye with a `GOAWAY` frame.
    GoAway(GoAway),
    /// The controller closed the WebSocket (`code` is `None` when the socket just ended).
    Closed { code: Option<u16>, reason: String },
    /// Nothing arrived for this long.
    IdleTimeout(Duration),
    /// The controller's hello did not arrive within [`HELLO_TIMEOUT`].
    HelloTimeout,
    /// The controller broke the channel protocol; we closed with 1002.
    ProtocolError(String),
    /// Reading or writing the socket failed.
    Transport(String),
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Shutdown => f.write_str("the agent is shutting down"),
            SessionEnd::GoAway(g) => write!(
                f,
                "the controller said goodbye ({:?}): {}",
                g.code, g.reason
            ),
            SessionEnd::Closed {
                code: Some(code),
                reason,
            } if reason.is_empty() => {
                write!(f, "the controller closed the connection (code {code})")
            }
            SessionEnd::Closed {
                code: Some(code),
                reason,
            } => {
                write!(
                    f,
                    "the controller closed the connection (code {code}: {reason})"
                )
            }
            SessionEnd::Closed { code: None, reason } => write!(f, "{reason}"),
            SessionEnd::IdleTimeout(d) => write!(
                f,
                "nothing received from the controller for {}s: the connection is dead",
                d.as_secs()
            ),
            SessionEnd::HelloTimeout => write!(
                f,
                "the controller sent no hello within {}s",
                HELLO_TIMEOUT.as_secs()
            ),
            SessionEnd::ProtocolError(reason) => write!(f, "protocol error: {reason}"),
            SessionEnd::Transport(reason) => write!(f, "connection lost: {reason}"),
        }
    }
}

/// How a session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutcome {
    /// Whether the controller's hello arrived, i.e. the agent was connected.
    pub established: bool,
    pub end: SessionEnd,
}

/// Runs one connection until it ends; see the module doc.
pub async fn run_session<W, SendErr, RecvErr>(
    mut ws: W,
    params: &SessionParams,
    shutdown: &CancellationToken,
) -> SessionOutcome
where
    W: Sink<Message, Error = SendErr>
        + Stream<Item = Result<Message, RecvErr>>
        + Send
        + Unpin
        + 'static,
    SendErr: std::fmt::Display + Send + 'static,
    RecvErr: std::fmt::Display + Send + 'static,
{
    let started = Instant::now();
    let mut controller: Option<Hello> = None;
    let outcome = |controller: &Option<Hello>, end| SessionOutcome {
        established: controller.is_some(),
        end,
    };

    let hello = Frame::Hello(Hello {
        role: Role::Agent,
        channel_version: params.channel_version,
        software_version: steward_protocol::STEWARD_VERSION.to_owned(),
        node_name: params.node_name.clone(),
        features: vec![FEATURE_MUX.to_owned()],
        ping_interval_secs: 0,
        idle_timeout_secs: u32::try_from(params.idle_timeout.as_secs()).unwrap_or(u32::MAX),
    });
    if let Err(e) = send(&mut ws, Message::binary(hello.encode())).await {
        return outcome(&controller, SessionEnd::Transport(e));
    }

    let mut idle_timeout = Some(params.idle_timeout).filter(|d| !d.is_zero());
    let mut last_received = Instant::now();
    loop {
        let idle_deadline = idle_timeout.map(|d| last_received + d);
        let hello_deadline = controller.is_none().then(|| started + HELLO_TIMEOUT);
        let deadline = match (idle_deadline, hello_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let item = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                close(&mut ws, CloseCode::Away, "agent shutting down", true).await;
                return outcome(&controller, SessionEnd::Shutdown);
            }
            () = sleep_until_some(deadline) => {
                if hello_deadline.is_some_and(|h| Instant::now() >= h) {
                    close(&mut ws, CloseCode::Protocol, "no hello", false).await;
                    return outcome(&controller, SessionEnd::HelloTimeout);
                }
                let idle = idle_timeout.unwrap_or_default();
                // The peer is presumably gone: say goodbye without waiting for an answer.
                close(&mut ws, CloseCode::Normal, "idle timeout", false).await;
                return outcome(&controller, SessionEnd::IdleTimeout(idle));
            }
            item = ws.next() => item,
        };
        last_received = Instant::now();

        let message = match item {
            None => {
                let end = SessionEnd::Closed {
                    code: None,
                    reason: "the connection closed without a close frame".to_owned(),
                };
                return outcome(&controller, end);
            }
            Some(Err(e)) => return outcome(&controller, SessionEnd::Transport(e.to_string())),
            Some(Ok(message)) => message,
        };
        match message {
            // The WebSocket layer queued the pong; flush it now rather than with the next read.
            Message::Ping(_) => {
                if let Err(e) = flush(&mut ws).await {
                    return outcome(&controller, SessionEnd::Transport(e));
                }
            }
            Message::Pong(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                // Sends the close answer the WebSocket layer queued.
                let _ = flush(&mut ws).await;
                let end = SessionEnd::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| printable(&f.reason)).unwrap_or_default(),
                };
                return outcome(&controller, end);
            }
            Message::Text(_) => {
                let reason = "text message on the agent channel".to_owned();
                return protocol_error(&mut ws, controller.is_some(), reason).await;
            }
            Message::Binary(bytes) => match Frame::decode(&bytes) {
                Ok(None) => debug!(kind = bytes.first().copied(), "skipping extension frame"),
                Ok(Some(Frame::Hello(hello))) => {
                    if let Err(reason) = check_hello(&hello, params, controller.is_some()) {
                        return protocol_error(&mut ws, controller.is_some(), reason).await;
                    }
                    idle_timeout = Some(Duration::from_secs(u64::from(hello.idle_timeout_secs)))
                        .filter(|d| !d.is_zero());
                    info!(
                        controller_version = ?printable(&hello.software_version),
                        idle_timeout_secs = hello.idle_timeout_secs,
                        ping_interval_secs = hello.ping_interval_secs,
                        "Connected"
                    );
                    let mux = hello.features.iter().any(|f| f == FEATURE_MUX);
                    controller = Some(hello);
                    if mux {
                        let end = mux::run(ws, idle_timeout, &params.services, shutdown).await;
                        return outcome(&controller, end);
                    }
                }
                Ok(Some(Frame::GoAway(mut goaway))) => {
                    goaway.reason = printable(&goaway.reason);
                    warn!(code = ?goaway.code, reason = ?goaway.reason, "The controller sent GOAWAY");
                    close(&mut ws, CloseCode::Normal, "", true).await;
                    return outcome(&controller, SessionEnd::GoAway(goaway));
                }
                Ok(Some(other)) => {
                    let reason = format!(
                        "{} frame before the multiplexed channel was agreed (channel version {})",
                        other.name(),
                        params.channel_version
                    );
                    return protocol_error(&mut ws, controller.is_some(), reason).await;
                }
                Err(e) => {
                    return protocol_error(&mut ws, controller.is_some(), e.to_string()).await;
                }
            },
        }
    }
}

/// The controller's hello must be its first, from a controller, on the negotiated version.
fn check_hello(hello: &Hello, params: &SessionParams, already: bool) -> Result<(), String> {
    if already {
        return Err("a second HELLO".to_owned());
    }
    if hello.role != Role::Controller {
        return Err(format!(
            "HELLO from role {:?}, expected Controller",
            hello.role
        ));
    }
    if hello.channel_version != params.channel_version {
        return Err(format!(
            "HELLO names channel version {}, but {} was negotiated",
            hello.channel_version, params.channel_version
        ));
    }
    Ok(())
}

async fn protocol_error<W, SendErr, RecvErr>(
    ws: &mut W,
    established: bool,
    reason: String,
) -> SessionOutcome
where
    W: Sink<Message, Error = SendErr> + Stream<Item = Result<Message, RecvErr>> + Unpin,
    SendErr: std::fmt::Display,
{
    tracing::error!("Protocol error from the controller: {}", Shown(&reason));
    close(ws, CloseCode::Protocol, "protocol error", true).await;
    SessionOutcome {
        established,
        end: SessionEnd::ProtocolError(reason),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn send<W, E>(ws: &mut W, message: Message) -> Result<(), String>
where
    W: Sink<Message, Error = E> + Unpin,
    E: std::fmt::Display,
{
    match timeout(SEND_TIMEOUT, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("write stalled for {}s", SEND_TIMEOUT.as_secs())),
    }
}

async fn flush<W, E>(ws: &mut W) -> Result<(), String>
where
    W: Sink<Message, Error = E> + Unpin,
    E: std::fmt::Display,
{
    match timeout(SEND_TIMEOUT, ws.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("write stalled for {}s", SEND_TIMEOUT.as_secs())),
    }
}

/// Sends a close frame; with `await_answer`, reads until the controller's close (or the end
/// of the socket), both bounded by timeouts. Failures only mean the socket is already gone.
async fn close<W, SendErr, RecvErr>(ws: &mut W, code: CloseCode, reason: &str, await_answer: bool)
where
    W: Sink<Message, Error = SendErr> + Stream<Item = Result<Message, RecvErr>> + Unpin,
    SendErr: std::fmt::Display,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if let Err(e) = send(ws, Message::Close(Some(frame))).await {
        debug!("could not send the close frame: {e}");
        return;
    }
    if await_answer {
        let drain = async {
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = timeout(CLOSE_TIMEOUT, drain).await;
    }
}

#[cfg(test)]
mod tests;
