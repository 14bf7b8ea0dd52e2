//! `GET /cli/ws` (compat §4): the CLI over WebSocket, one PlainCLI frame per binary message.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue, StatusCode};
use steward_protocol::plaincli::{self, Frame, HEADER_STEWARD_CLI, MAX_FRAME_PAYLOAD};
use tokio::sync::mpsc;

use super::io::OUTPUT_QUEUE;
use super::session::{self, FrameStream, Transport};
use crate::agents::session::SEND_TIMEOUT;
use crate::auth::{AuthError, authenticate};
use crate::http::api::Remote;
use crate::keepalive::Keepalive;
use crate::state::AppState;
use crate::ws_close;

/// Header carrying the reason for a refused CLI handshake.
pub const HEADER_CLI_ERROR: &str = "X-CLI-Error";
/// Message for a cross-site (or misconfigured proxy) request.
pub const MSG_BAD_ORIGIN: &str = "Unexpected request origin (check your reverse proxy settings)";

/// A refusal before the upgrade: status, `X-CLI-Error`, empty body.
pub fn cli_refusal(status: StatusCode, text: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(text) {
        response.headers_mut().insert(HEADER_CLI_ERROR, v);
    }
    response
}

pub async fn cli_ws(
    State(state): State<AppState>,
    Remote(remote): Remote,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !state.config.websocket_cli {
        return cli_refusal(
            StatusCode::NOT_FOUND,
            "The WebSocket CLI is turned off on this controller",
        );
    }
    let expected = state.config.origin_for(&headers);
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if origin.is_none() || origin != expected.as_deref() {
        // As sent, even when it is not ASCII, and quoted: it is the peer's text.
        let sent = headers
            .get(ORIGIN)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        tracing::warn!(
            origin = ?sent.as_deref().unwrap_or("(none)"),
            expected = ?expected.as_deref().unwrap_or("(no Host)"),
            "refused CLI WebSocket: unexpected origin"
        );
        return cli_refusal(StatusCode::FORBIDDEN, MSG_BAD_ORIGIN);
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return cli_refusal(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let auth = match authenticate(&state.store, &headers).await {
        Err(AuthError::Store(e)) => {
            tracing::error!(error = ?e.to_string(), "authentication failed on a database error");
            return cli_refusal(StatusCode::INTERNAL_SERVER_ERROR, "database error");
        }
        other => other,
    };
    let explicit_interrupts = super::explicit_interrupts(&headers);
    let credentials = session::credentials_of(&headers);
    let mut response = upgrade
        .max_message_size(MAX_FRAME_PAYLOAD + 1)
        .max_frame_size(MAX_FRAME_PAYLOAD + 1)
        .on_upgrade(move |socket| {
            serve(
                socket,
                auth,
                credentials,
                explicit_interrupts,
                remote,
                state,
            )
        });
    response.headers_mut().insert(
        HEADER_STEWARD_CLI,
        HeaderValue::from_static(super::FEATURES),
    );
    response
}

/// The close frame the writer ends with when the client broke the protocol; empty means a
/// normal close (1000).
type CloseSlot = Arc<Mutex<Option<ws_close::Close>>>;

async fn serve(
    socket: WebSocket,
    auth: Result<crate::auth::Identity, AuthError>,
    credentials: http::HeaderMap,
    explicit_interrupts: bool,
    remote: Option<std::net::IpAddr>,
    state: AppState,
) {
    let (sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let close_with = CloseSlot::default();
    let incoming = incoming_frames(stream, state.config.ws_idle_timeout, close_with.clone());
    let gone = tokio_util::sync::CancellationToken::new();
    let writer = async {
        write_frames(sink, out_rx, state.config.ws_ping_interval, close_with).await;
        // After the close frame, or on a failed send: either way nothing more reaches the
        // client, so a command still running for it should stop.
        gone.cancel();
    };
    let transport = Transport {
        incoming,
        outgoing: out_tx,
        gone: gone.clone(),
        explicit_interrupts,
        credentials,
        remote,
    };
    tokio::join!(session::run(transport, auth, state.clone()), writer);
}

/// Client messages as frames. Pings and pongs only prove the client alive; silence past the
/// idle timeout, a close, a text message (close 1003), a malformed PlainCLI frame (1002) or a
/// broken WebSocket (1002 or 1009, see [`ws_close`]) end the session; the close code goes
/// into `close_with` for the writer.
fn incoming_frames(
    stream: SplitStream<WebSocket>,
    idle_timeout: Option<std::time::Duration>,
    close_with: CloseSlot,
) -> FrameStream {
    let state = Some(stream);
    Box::pin(futures_util::stream::unfold(state, move |state| {
        let close_with = close_with.clone();
        async move {
            let mut stream = state?;
            loop {
                let next = match idle_timeout {
                    Some(t) => match tokio::time::timeout(t, stream.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            return Some((
                                Err(format!("no message for {}s (idle timeout)", t.as_secs())),
                                None,
                            ));
                        }
                    },
                    None => stream.next().await,
                };
                let close = |c: ws_close::Close| {
                    *close_with.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
                };
                let item = match next {
                    None | Some(Ok(Message::Close(_))) => {
                        Err("client closed the connection".to_owned())
                    }
                    Some(Err(e)) => {
                        if let Some(c) = ws_close::for_receive_error(&e) {
                            close(c);
                        }
                        Err(format!("connection error: {e}"))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(_))) => {
                        close((
                            close_code::UNSUPPORTED,
                            "text messages are not part of the CLI protocol",
                        ));
                        Err("text message on the CLI WebSocket".to_owned())
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        plaincli::decode_ws(bytes, plaincli::Direction::ClientToServer).map_err(
                            |e| {
                                close((close_code::PROTOCOL, "malformed CLI frame"));
                                e.to_string()
                            },
                        )
                    }
                };
                let more = item.is_ok();
                return Some((item, more.then_some(stream)));
            }
        }
    }))
}

/// Sends the session's frames and the keepalive pings; closes normally when the session
/// drops its sender (after `EXIT`). Frames already queued behind the first go out with it,
/// up to [`WRITE_BATCH`] bytes, in one flush: a command printing fast costs a system call
/// per batch rather than per frame, and one printing slowly a flush per frame.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Frame>,
    ping: Option<std::time::Duration>,
    close_with: CloseSlot,
) {
    let mut keepalive = Keepalive::new(ping, None);
    loop {
        let message = tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => {
                    let Some(first) = encoded(&frame) else { continue };
                    match feed_queued(&mut sink, &mut frames, first).await {
                        Ok(()) => continue,
                        Err(SendFailed::Socket) => {
                            // As below: flush the close frame tungstenite may have queued.
                            let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
                            return;
                        }
                        Err(SendFailed::Stalled) => return,
                    }
                }
                None => {
                    let (code, reason) = close_with.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or((close_code::NORMAL, ""));
                    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
                }
            },
            _ = keepalive.tick() => Message::Ping(Default::default()),
        };
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Err(_)) => {
                // The client closed first (or the socket broke): flush the close frame
                // tungstenite queued to answer the client's, if any.
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
                return;
            }
            _ => return,
        }
    }
}

/// Most bytes of queued frames sent with one flush.
const WRITE_BATCH: usize = 1024 * 1024;

/// Feeds `first` and the frames already queued behind it (up to [`WRITE_BATCH`] bytes),
/// then flushes once. Each step has [`SEND_TIMEOUT`], as a single send has: a client that
/// reads slowly but steadily is never cut off for the size of a batch.
async fn feed_queued(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: &mut mpsc::Receiver<Frame>,
    first: Bytes,
) -> Result<(), SendFailed> {
    let mut batched = first.len();
    within_send_timeout(sink.feed(Message::Binary(first))).await?;
    while batched < WRITE_BATCH {
        let Ok(frame) = frames.try_recv() else { break };
        if let Some(bytes) = encoded(&frame) {
            batched += bytes.len();
            within_send_timeout(sink.feed(Message::Binary(bytes))).await?;
        }
    }
    within_send_timeout(sink.flush()).await
}

/// Why a batch did not go out: the socket failed, or the client stopped reading.
enum SendFailed {
    Socket,
    Stalled,
}

async fn within_send_timeout(
    step: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), SendFailed> {
    match tokio::time::timeout(SEND_TIMEOUT, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendFailed::Socket),
        Err(_) => Err(SendFailed::Stalled),
    }
}

/// A frame as a binary message's payload; `None` (logged) if it cannot be encoded.
fn encoded(frame: &Frame) -> Option<Bytes> {
    match plaincli::encode_ws(frame) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(error = %e, "unencodable CLI frame");
            None
        }
    }
}
