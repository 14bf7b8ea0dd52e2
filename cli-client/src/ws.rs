//! The WebSocket transport (compat §4): `GET <root>cli/ws`, one PlainCLI frame per binary
//! message.
//!
//! [`dial`] opens the socket through `steward-transport` and decides what a refusal means:
//! statuses that say "no WebSocket CLI here" fall back to full-duplex HTTP (`http.rs`), any
//! other is a failed handshake. [`frames`] turns an open socket into the frame sink and
//! stream that `session.rs` runs on.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use steward_protocol::plaincli::{self, FEATURE_INTERRUPT, Frame, HEADER_STEWARD_CLI};
use steward_transport::{WsConnectError, WsStream};
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;

use crate::answer;
use crate::auth::{AUTHORIZATION, Credentials};
use crate::error::CliError;
use crate::session::{Outgoing, SessionError};

/// Path of the WebSocket CLI endpoint, relative to the root URL.
pub const CLI_WS_PATH: &str = "cli/ws";
/// Largest message we accept: the protocol's largest payload plus its opcode byte, so any
/// frame the server may legally send fits and nothing larger is buffered.
pub const MAX_WS_MESSAGE: usize = plaincli::MAX_FRAME_PAYLOAD + 1;

/// The outcome of the upgrade request.
pub enum Dialed {
    /// 101: the session can start; whether the controller honours `INTERRUPT`.
    Open {
        socket: Box<WsStream>,
        interrupt: bool,
    },
    /// Refused in a way that means "use full-duplex HTTP instead", and how (`HTTP 404`).
    FallBack { answer: String },
}

/// Whether a refused upgrade should be retried over full-duplex HTTP: 404 (a controller
/// without `/cli/ws`, or a URL that leads to no controller, which the full-duplex side
/// finds out), or 400/426/501 (a proxy in between that does not pass WebSockets). Anything
/// else, such as 401 or a 403 origin mismatch, is the controller's answer to us.
pub fn falls_back_to_http(status: u16) -> bool {
    matches!(status, 400 | 404 | 426 | 501)
}

/// Whether a refusal with `status` and `headers` is a Jenkins-compatible controller's: it
/// carries `X-Jenkins`, or is an authentication refusal (401, 403), which a proxy in front
/// of the controller may give too.
fn refused_by_controller(status: u16, headers: &http::HeaderMap) -> bool {
    answer::from_jenkins(headers) || matches!(status, 401 | 403)
}

/// Sends the upgrade request with our credentials and the root's `Origin`, waiting at most
/// `idle_timeout` for the answer.
pub async fn dial(
    root: &Url,
    credentials: Option<&Credentials>,
    tls: &Arc<rustls::ClientConfig>,
    idle_timeout: Option<Duration>,
) -> Result<Dialed, CliError> {
    let url = steward_transport::ws_url(root, CLI_WS_PATH)?;
    // The controller compares Origin with its configured root URL (cross-site WebSocket
    // hijacking defence), so it must be the root's, not the ws:// URL's.
    let mut headers = vec![
        ("Origin".to_owned(), steward_transport::origin_of(root)),
        (HEADER_STEWARD_CLI.to_owned(), FEATURE_INTERRUPT.to_owned()),
    ];
    if let Some(credentials) = credentials {
        headers.push((AUTHORIZATION.to_owned(), credentials.header_value()));
    }
    let dialing = steward_transport::connect_websocket_within(
        &url,
        &headers,
        tls,
        MAX_WS_MESSAGE,
        idle_timeout,
    );
    match dialing.await {
        Ok((socket, response)) => Ok(Dialed::Open {
            socket: Box::new(socket),
            interrupt: answer::honours_interrupt(response.headers()),
        }),
        Err(WsConnectError::Refused { status, .. }) if falls_back_to_http(status) => {
            Ok(Dialed::FallBack {
                answer: format!("HTTP {status}"),
            })
        }
        // An HTTP/1.0 server, or a proxy that cannot carry a WebSocket: whether a
        // controller answers over plain HTTP, the full-duplex side finds out.
        Err(WsConnectError::NotHttp11 { .. }) => Ok(Dialed::FallBack {
            answer: "not an HTTP/1.1 answer".into(),
        }),
        Err(WsConnectError::Refused {
            status, headers, ..
        }) if refused_by_controller(status, &headers) => Err(CliError::HandshakeRefused {
            status,
            message: answer::cli_error(&headers),
        }),
        Err(WsConnectError::Refused {
            status, headers, ..
        }) if !answer::is_proxy_failure(status, &headers) => Err(CliError::NotJenkins {
            url: root.to_string(),
            reason: format!(
                "it answered the WebSocket upgrade with HTTP {status} and no {} header",
                answer::HEADER_X_JENKINS
            ),
        }),
        Err(e) => Err(dial_failed(&url, e)),
    }
}

/// What a failed dial means for the client: a proxy answering for the controller, a
/// certificate not trusted, no answer in time, or another connection failure. A refusal
/// from the controller itself is named by the caller, who knows what its route answers.
pub fn dial_failed(url: &Url, error: WsConnectError) -> CliError {
    let url = url.to_string();
    match error {
        WsConnectError::Refused {
            status, headers, ..
        } if answer::is_proxy_failure(status, &headers) => CliError::Proxy { url, status },
        WsConnectError::Refused { status, body, .. } => CliError::Connect {
            url,
            reason: if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {body}")
            },
        },
        WsConnectError::Untrusted { problem, .. } => CliError::Untrusted { url, problem },
        WsConnectError::TimedOut { after, .. } => CliError::NoAnswer { url, after },
        e @ WsConnectError::NotHttp11 { .. } => CliError::Connect {
            url,
            reason: e.to_string(),
        },
        WsConnectError::Other(reason) => CliError::Connect { url, reason },
    }
}

/// Splits an open socket into a sink of frames to the server and a stream of frames from it.
///
/// Only binary messages carry frames; text, ping and pong messages are skipped (tungstenite
/// answers pings itself while the stream is read), and a close ends the stream. Keepalives
/// go out as pings. Any message proves the controller alive: with nothing at all for
/// `idle_timeout`, the stream ends with [`SessionError::Idle`].
pub fn frames<W>(
    socket: W,
    idle_timeout: Option<Duration>,
) -> (
    impl Sink<Outgoing, Error = SessionError>,
    impl Stream<Item = Result<Frame, SessionError>>,
)
where
    W: Sink<Message, Error = tungstenite::Error>
        + Stream<Item = Result<Message, tungstenite::Error>>,
{
    let (tx, rx) = socket.split();
    // Fed frames wait in the socket's write buffer until it fills or the session flushes.
    let sink = tx
        .sink_map_err(|e| SessionError::Connection(e.to_string()))
        .with(|out: Outgoing| {
            std::future::ready(match out {
                Outgoing::Frame(frame) => plaincli::encode_ws(&frame)
                    .map(Message::Binary)
                    .map_err(SessionError::Encode),
                Outgoing::Keepalive => Ok(Message::Ping(Default::default())),
            })
        });
    let stream = futures_util::stream::unfold(Some(Box::pin(rx)), move |rx| async move {
        let mut rx = rx?;
        loop {
            let next = match idle_timeout {
                Some(limit) => match tokio::time::timeout(limit, rx.next()).await {
                    Ok(next) => next,
                    Err(_) => return Some((Err(SessionError::Idle(limit)), None)),
                },
                None => rx.next().await,
            };
            let item = match next? {
                Ok(Message::Binary(bytes)) => {
                    plaincli::decode_ws(bytes, plaincli::Direction::ServerToClient)
                        .map_err(Into::into)
                }
                Ok(_) => continue,
                Err(e) => Err(SessionError::Connection(e.to_string())),
            };
            return Some((item, Some(rx)));
        }
    });
    (sink, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn fallback_statuses() {
        for status in [400, 404, 426, 501] {
            assert!(falls_back_to_http(status), "{status}");
        }
        for status in [401, 403, 500, 502, 503] {
            assert!(!falls_back_to_http(status), "{status}");
        }
    }

    #[test]
    fn a_refusal_without_x_jenkins_is_not_the_controllers() {
        let mut headers = http::HeaderMap::new();
        assert!(refused_by_controller(401, &headers));
        assert!(refused_by_controller(403, &headers));
        assert!(!refused_by_controller(200, &headers));
        assert!(!refused_by_controller(405, &headers));
        headers.insert(
            answer::HEADER_X_JENKINS,
            http::HeaderValue::from_static("2.579"),
        );
        assert!(refused_by_controller(405, &headers));
    }

    #[tokio::test]
    async fn frames_travel_as_binary_messages() {
        let (client_io, server_io) = tokio::io::duplex(1024);
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let (sink, stream) = frames(client, None);
        let mut sink = std::pin::pin!(sink);
        let mut stream = std::pin::pin!(stream);

        sink.send(Outgoing::Frame(Frame::Arg("who-am-i".into())))
            .await
            .unwrap();
        let Some(Ok(Message::Binary(sent))) = server.next().await else {
            panic!("expected a binary message");
        };
        assert_eq!(sent.as_ref(), b"\x00\x00\x08who-am-i");

        server.send(Message::text("ignored")).await.unwrap();
        server
            .send(Message::Binary(Bytes::from_static(b"\x07hi")))
            .await
            .unwrap();
        server
            .send(Message::Binary(Bytes::from_static(&[0x90])))
            .await
            .unwrap();
        let server_side = async move {
            server.close(None).await.unwrap();
            // Wait for the client's answering close, then drop the connection: a client
            // ends only once the server closed the TCP connection.
            while let Some(Ok(_)) = server.next().await {}
        };
        let client_side = async {
            let mut seen = Vec::new();
            while let Some(item) = stream.next().await {
                seen.push(item);
            }
            seen
        };
        let ((), seen) = tokio::join!(server_side, client_side);
        assert!(
            matches!(
                seen.as_slice(),
                [
                    Ok(Frame::Stdout(out)),
                    Err(SessionError::BadFrame(plaincli::FrameError::FatalOpcode(0x90))),
                ] if out.as_ref() == b"hi"
            ),
            "{seen:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keepalives_are_pings_and_a_silent_controller_is_an_idle_timeout() {
        let (client_io, server_io) = tokio::io::duplex(1024);
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let idle = std::time::Duration::from_secs(60);
        let (sink, stream) = frames(client, Some(idle));
        let mut sink = std::pin::pin!(sink);
        let mut stream = std::pin::pin!(stream);

        sink.send(Outgoing::Keepalive).await.unwrap();
        assert!(matches!(server.next().await, Some(Ok(Message::Ping(_)))));

        // A ping from the controller is life: it resets the timer.
        let start = tokio::time::Instant::now();
        tokio::time::sleep(idle / 2).await;
        server
            .send(Message::Ping(Default::default()))
            .await
            .unwrap();
        let silent = stream.next().await;
        assert!(
            matches!(silent, Some(Err(SessionError::Idle(d))) if d == idle),
            "{silent:?}"
        );
        assert_eq!(start.elapsed(), idle / 2 + idle);
        assert!(stream.next().await.is_none());
    }
}
