//! `POST /cli?remoting=false` (compat §5): the CLI over two HTTP requests. The download
//! side answers at once with `Hudson-Duplex: true` and a `0x00` byte, then waits (in
//! [`super::pairing`]) for the upload side with the same `Session`, which must authenticate
//! as the download side did; frames carry a 4-byte length.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use steward_protocol::plaincli::{self, Frame};
use tokio::sync::{mpsc, oneshot};

use super::io::OUTPUT_QUEUE;
use super::pairing::{PAIRING_TIMEOUT, Principal, Take, WaitRefusal};
use super::session::{self, FrameStream, Transport};
use crate::auth::{AuthError, authenticate};
use crate::state::AppState;

/// Longest `Session` header accepted (clients send a 36-character UUID).
pub const MAX_SESSION_ID_LEN: usize = 128;
/// An upload silent this long is dead: the real client sends ENCODING every 3 s.
pub const UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// After this long without output, the download side sends an empty `STDOUT` frame, which
/// clients write as nothing: a quiet command keeps its connection through any proxy whose
/// read timeout is longer (nginx's default is 60 s), and the client can tell a quiet
/// command from a dead controller (our cli's idle timeout is 60 s). It is half the
/// WebSocket ping interval when that is shorter (15 s at the default 30 s), and never
/// longer, whatever the pings (or their absence): an HTTP client has no other way to tell.
pub const DOWNLOAD_KEEPALIVE: Duration = Duration::from_secs(15);

/// The download side's keepalive period for `config`.
fn download_keepalive(config: &crate::config::Config) -> Duration {
    config
        .ws_ping_interval
        .map(|ping| (ping / 2).min(DOWNLOAD_KEEPALIVE))
        .filter(|half| !half.is_zero())
        .unwrap_or(DOWNLOAD_KEEPALIVE)
}

/// What the download side's wait ends with: the upload side, authenticated as the download
/// side, with its body and a way to say when the session is over.
pub struct Handoff {
    body: Body,
    done: oneshot::Sender<()>,
}

/// The exit code of a session whose credentials do not check out, on either side (the
/// code a command answers bad credentials with).
const EXIT_BAD_CREDENTIALS: i32 = 7;

/// The upload side's answer when no download side waits for it under its credentials.
pub const MSG_NO_SESSION_FOR_UPLOAD: &str = "No CLI session waits for this upload side under its credentials: it timed out, or the upload side did not send the credentials of its download side";

fn plain(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

pub async fn cli_post(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if query.get("remoting").map(String::as_str) != Some("false") {
        return plain(
            StatusCode::FORBIDDEN,
            "Remoting-based CLI is not supported; use ?remoting=false",
        );
    }
    let session = match headers.get("Session").and_then(|v| v.to_str().ok()) {
        Some(s) if !s.is_empty() && s.len() <= MAX_SESSION_ID_LEN => s.to_owned(),
        _ => return plain(StatusCode::BAD_REQUEST, "Missing or invalid Session header"),
    };
    match headers.get("Side").and_then(|v| v.to_str().ok()) {
        Some("download") => download(state, session, remote, &headers).await,
        Some("upload") => upload(state, session, remote, &headers, body).await,
        _ => plain(
            StatusCode::BAD_REQUEST,
            "Missing or invalid Side header: expected download or upload",
        ),
    }
}

async fn download(
    state: AppState,
    session_id: String,
    remote: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    let identity = match authenticate(&state.store, headers).await {
        Ok(identity) => identity,
        Err(AuthError::Store(e)) => {
            tracing::error!(error = ?e.to_string(), "authentication failed on a database error");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "database error");
        }
        // Every command would answer this and exit 7: say it now, without waiting for an
        // upload side, so bad credentials never hold a place.
        Err(e) => {
            let mut body = BytesMut::from(&[0u8][..]);
            encode_ending(&format!("\nERROR: {e}\n"), EXIT_BAD_CREDENTIALS, &mut body);
            return duplex_response(Body::from(body.freeze()));
        }
    };
    let principal = Principal::of(&identity);
    let handoff_rx = match state.duplex.wait(&session_id, principal, remote.ip()) {
        Ok(rx) => rx,
        Err(refusal @ WaitRefusal::Duplicate) => {
            return plain(StatusCode::BAD_REQUEST, &refusal.to_string());
        }
        Err(refusal) => return plain(StatusCode::SERVICE_UNAVAILABLE, &refusal.to_string()),
    };
    let explicit_interrupts = super::explicit_interrupts(headers);
    let credentials = super::session::credentials_of(headers);
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BODY_QUEUE);
    let _ = body_tx.try_send(Ok(Bytes::from_static(&[0])));
    let task_state = state.clone();
    state.tasks.spawn(async move {
        let handoff = tokio::select! {
            handoff = tokio::time::timeout(PAIRING_TIMEOUT, handoff_rx) => match handoff {
                Ok(Ok(handoff)) => Some(handoff),
                // Timed out (or the controller is going away): tell the client why its
                // session ended, with an EXIT like every other ending.
                _ => {
                    let _ = body_tx.try_send(Ok(pairing_timeout_frames()));
                    None
                }
            },
            // The client hung up its download side: forget the session now, not later.
            () = body_tx.closed() => None,
        };
        let Handoff { body, done } = match handoff {
            Some(handoff) => handoff,
            None => {
                task_state.duplex.forget(&session_id);
                tracing::debug!(session = ?session_id, "CLI download side got no upload side");
                return;
            }
        };
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
        let gone = tokio_util::sync::CancellationToken::new();
        let transport = Transport {
            incoming: upload_frames(body),
            outgoing: out_tx,
            gone: gone.clone(),
            explicit_interrupts,
            credentials,
            remote: Some(remote.ip()),
        };
        let keepalive = download_keepalive(&task_state.config);
        let writer = async {
            encode_frames(out_rx, body_tx, keepalive).await;
            gone.cancel();
        };
        tokio::join!(session::run(transport, Ok(identity), task_state), writer);
        let _ = done.send(());
    });
    duplex_response(Body::from_stream(tokio_stream_from(body_rx)))
}

/// A download side's 200: `Hudson-Duplex`, the extensions honoured, and `body`.
fn duplex_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert("Hudson-Duplex", HeaderValue::from_static("true"));
    h.insert(
        steward_protocol::plaincli::HEADER_STEWARD_CLI,
        HeaderValue::from_static(super::FEATURES),
    );
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

async fn upload(
    state: AppState,
    session_id: String,
    remote: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    // Authenticated first: an upload with bad credentials learns nothing about the session.
    let auth = match authenticate(&state.store, headers).await {
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "authentication failed on a database error");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "database error");
        }
        other => other,
    };
    let principal = auth.as_ref().ok().map(Principal::of);
    let waiting = match state.duplex.take(&session_id, principal.as_ref()) {
        Take::Taken(waiting) => waiting,
        // The same answer whether no session waits or one waits for someone else: an
        // upload learns nothing about sessions it may not join.
        Take::Unknown => return plain(StatusCode::FORBIDDEN, MSG_NO_SESSION_FOR_UPLOAD),
        Take::Mismatch { expected } => {
            let upload_as = match &auth {
                Ok(identity) => identity.name().to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(session = ?session_id, download_as = ?expected.to_string(), upload_as = ?upload_as, remote = %remote, "refused the upload side of a CLI session: it did not authenticate as the download side; the session waits on for its own upload");
            return plain(StatusCode::FORBIDDEN, MSG_NO_SESSION_FOR_UPLOAD);
        }
    };
    let (done_tx, done_rx) = oneshot::channel();
    if waiting
        .send(Handoff {
            body,
            done: done_tx,
        })
        .is_err()
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "CLI session timed out before the upload side arrived",
        );
    }
    // Answer only once the session is over: the client streams this body until then.
    let _ = done_rx.await;
    StatusCode::OK.into_response()
}

/// STDERR with `message`, then EXIT `code`, in the HTTP framing.
fn encode_ending(message: &str, code: i32, buf: &mut BytesMut) {
    for frame in [Frame::Stderr(message.to_owned().into()), Frame::Exit(code)] {
        plaincli::encode_http(&frame, buf).expect("a short frame encodes");
    }
}

/// What a download side whose upload side never came gets: the reason on stderr and EXIT 2,
/// as for a session that never got its `START`.
fn pairing_timeout_frames() -> Bytes {
    let message = format!(
        "\nERROR: no upload side arrived for this CLI session within {}s \
         (is a proxy buffering request bodies?)\n",
        PAIRING_TIMEOUT.as_secs()
    );
    let mut buf = BytesMut::new();
    encode_ending(&message, 2, &mut buf);
    buf.freeze()
}

/// Frames in the HTTP framing, from the upload body. A body that ends inside a frame, fails,
/// or carries a bad frame means the client is gone.
fn upload_frames(body: Body) -> FrameStream {
    let state = Some((body.into_data_stream(), BytesMut::new()));
    Box::pin(futures_util::stream::unfold(state, |state| async move {
        let (mut data, mut buf) = state?;
        loop {
            match plaincli::decode_http(&mut buf, plaincli::Direction::ClientToServer) {
                Ok(Some(frame)) => return Some((Ok(frame), Some((data, buf)))),
                Ok(None) => {}
                Err(e) => return Some((Err(e.to_string()), None)),
            }
            let next = match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, data.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Some((
                        Err(format!(
                            "upload silent for {}s",
                            UPLOAD_IDLE_TIMEOUT.as_secs()
                        )),
                        None,
                    ));
                }
            };
            match next {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Some((Err(format!("upload failed: {e}")), None)),
                None if buf.is_empty() => return None,
                None => {
                    return Some((
                        Err(format!(
                            "upload ended inside a frame ({} bytes left)",
                            buf.len()
                        )),
                        None,
                    ));
                }
            }
        }
    }))
}

/// Most bytes of queued frames encoded into one chunk of the download body.
const BODY_BATCH: usize = 1024 * 1024;
/// Body chunks queued for a client that reads slowly (each up to [`BODY_BATCH`]; the
/// `0x00` byte and a pairing timeout's frames are the first ones). With the session's
/// [`OUTPUT_QUEUE`] frames, what a session holds for a slow client is about 3 MiB.
const BODY_QUEUE: usize = 2;

/// Writes the session's frames into the download body. Frames already queued behind the
/// first go into the same body chunk, up to [`BODY_BATCH`] bytes: one write for a burst of
/// output, and a chunk per frame when output is slow. After `keepalive` without a frame, an
/// empty `STDOUT` frame goes out instead.
async fn encode_frames(
    mut frames: mpsc::Receiver<Frame>,
    body: mpsc::Sender<Result<Bytes, std::io::Error>>,
    keepalive: Duration,
) {
    loop {
        let first = match tokio::time::timeout(keepalive, frames.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(_) => Frame::Stdout(Bytes::new()),
        };
        let mut buf = BytesMut::new();
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if let Err(e) = plaincli::encode_http(&frame, &mut buf) {
                tracing::error!(error = %e, "unencodable CLI frame");
            }
            if buf.len() < BODY_BATCH {
                next = frames.try_recv().ok();
            }
        }
        if !buf.is_empty() && body.send(Ok(buf.freeze())).await.is_err() {
            return;
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_session_sends_empty_stdout_frames_between_its_output() {
        let (frames, frames_rx) = mpsc::channel(4);
        let (body_tx, mut body) = mpsc::channel(4);
        let keepalive = Duration::from_secs(15);
        let writer = tokio::spawn(encode_frames(frames_rx, body_tx, keepalive));
        let start = tokio::time::Instant::now();
        let decode = |chunk: Bytes| {
            let mut buf = BytesMut::from(&chunk[..]);
            plaincli::decode_http(&mut buf, plaincli::Direction::ServerToClient)
                .unwrap()
                .unwrap()
        };
        let first = body.recv().await.unwrap().unwrap();
        assert_eq!(decode(first), Frame::Stdout(Bytes::new()));
        assert_eq!(start.elapsed(), keepalive);
        frames
            .send(Frame::Stdout(Bytes::from_static(b"out")))
            .await
            .unwrap();
        let out = body.recv().await.unwrap().unwrap();
        assert_eq!(decode(out), Frame::Stdout(Bytes::from_static(b"out")));
        // The next keepalive counts from the last output.
        let second = body.recv().await.unwrap().unwrap();
        assert_eq!(decode(second), Frame::Stdout(Bytes::new()));
        assert_eq!(start.elapsed(), keepalive * 2);
        drop(frames);
        writer.await.unwrap();
        assert!(body.recv().await.is_none());
    }

    #[test]
    fn the_keepalive_follows_the_ping_interval() {
        let mut config = crate::config::Config::new(
            std::path::PathBuf::from("/nonexistent"),
            "127.0.0.1:0".parse().unwrap(),
        );
        config.ws_ping_interval = Some(Duration::from_secs(4));
        assert_eq!(download_keepalive(&config), Duration::from_secs(2));
        config.ws_ping_interval = None;
        assert_eq!(download_keepalive(&config), DOWNLOAD_KEEPALIVE);
        // Rare pings do not make it rare: proxies and clients time out at 60 s.
        config.ws_ping_interval = Some(Duration::from_secs(300));
        assert_eq!(download_keepalive(&config), DOWNLOAD_KEEPALIVE);
    }

    #[test]
    fn a_pairing_timeout_ends_with_the_reason_and_exit_2() {
        let mut buf = BytesMut::from(&pairing_timeout_frames()[..]);
        let from = plaincli::Direction::ServerToClient;
        let Ok(Some(Frame::Stderr(text))) = plaincli::decode_http(&mut buf, from) else {
            panic!("a STDERR frame first");
        };
        assert!(String::from_utf8_lossy(&text).contains("no upload side arrived"));
        assert_eq!(
            plaincli::decode_http(&mut buf, from),
            Ok(Some(Frame::Exit(2)))
        );
        assert!(buf.is_empty());
    }
}
