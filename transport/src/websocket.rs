//! Dialing a WebSocket: TCP (direct or through a proxy), TLS for `wss://`, then the upgrade
//! with the caller's headers. A refused upgrade comes back with its status, headers and body
//! so callers can act on them (the CLI falls back to HTTP, the agent logs the reason).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, http as ws_http};

use crate::proxy;
use crate::untrusted::UntrustedCertificate;

/// Bound on TCP connect, TLS and the upgrade together.
pub const WS_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest refusal body kept for messages.
pub const MAX_REFUSAL_BODY: usize = 4096;

/// Any byte stream a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub type BoxedIo = Box<dyn Io>;
/// A client WebSocket over plain TCP or TLS, direct or tunnelled.
pub type WsStream = WebSocketStream<BoxedIo>;

/// Why a WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WsConnectError {
    /// The server answered the upgrade with something other than 101.
    #[error("HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Refused {
        status: u16,
        headers: http::HeaderMap,
        body: String,
    },
    /// The server's certificate was refused.
    #[error("TLS handshake with {server} failed: {problem}")]
    Untrusted {
        /// `host:port`.
        server: String,
        problem: UntrustedCertificate,
    },
    /// The server answered, but not in HTTP/1.1, which a WebSocket upgrade needs: an
    /// HTTP/1.0 server (or proxy), or something that does not speak HTTP at all.
    #[error("WebSocket upgrade to {url} failed: {reason}")]
    NotHttp11 { url: String, reason: String },
    /// No answer within the time allowed.
    #[error("timed out after {after:?} connecting to {url}")]
    TimedOut { url: String, after: Duration },
    /// Anything else: DNS, TCP, TLS, proxy, protocol.
    #[error("{0}")]
    Other(String),
}

/// Opens a WebSocket to `url` with extra request `headers`; proxies come from the environment.
pub async fn connect_websocket(
    url: &url::Url,
    headers: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    max_message_len: usize,
) -> Result<(WsStream, http::Response<()>), WsConnectError> {
    connect_websocket_with(url, headers, tls, max_message_len, None).await
}

/// [`connect_websocket`] with explicit proxy credentials (`-proxyCredentials USER:PASS`).
pub async fn connect_websocket_with(
    url: &url::Url,
    headers: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    max_message_len: usize,
    proxy_credentials: Option<&str>,
) -> Result<(WsStream, http::Response<()>), WsConnectError> {
    let dialing = dial(url, headers, tls, max_message_len, proxy_credentials);
    within(url, Some(WS_CONNECT_TIMEOUT), dialing).await
}

/// [`connect_websocket`] within `limit` instead of [`WS_CONNECT_TIMEOUT`] (`None`: no limit),
/// for a client whose user set how long to wait.
pub async fn connect_websocket_within(
    url: &url::Url,
    headers: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    max_message_len: usize,
    limit: Option<Duration>,
) -> Result<(WsStream, http::Response<()>), WsConnectError> {
    within(url, limit, dial(url, headers, tls, max_message_len, None)).await
}

async fn within<T>(
    url: &url::Url,
    limit: Option<Duration>,
    dialing: impl std::future::Future<Output = Result<T, WsConnectError>>,
) -> Result<T, WsConnectError> {
    let Some(after) = limit else {
        return dialing.await;
    };
    tokio::time::timeout(after, dialing)
        .await
        .map_err(|_| WsConnectError::TimedOut {
            url: url.to_string(),
            after,
        })?
}

async fn dial(
    url: &url::Url,
    headers: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    max_message_len: usize,
    proxy_credentials: Option<&str>,
) -> Result<(WsStream, http::Response<()>), WsConnectError> {
    let other = WsConnectError::Other;
    let secure = match url.scheme() {
        "ws" => false,
        "wss" => true,
        s => return Err(other(format!("unsupported WebSocket scheme {s}: in {url}"))),
    };
    let host = url
        .host_str()
        .ok_or_else(|| other(format!("no host in {url}")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });

    let tcp = match proxy::route_for(url, proxy_credentials).map_err(other)? {
        Some(route) => proxy::tunnel(&route, &host, port).await.map_err(other)?,
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| other(format!("cannot connect to {host}:{port}: {e}")))?,
    };
    let _ = tcp.set_nodelay(true);
    let io: BoxedIo = if secure {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| other(format!("invalid TLS server name {host}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| match UntrustedCertificate::find(&e) {
                Some(problem) => WsConnectError::Untrusted {
                    server: format!("{host}:{port}"),
                    problem,
                },
                None => other(format!("TLS handshake with {host}:{port} failed: {e}")),
            })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };

    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| other(format!("bad URL {url}: {e}")))?;
    for (name, value) in headers {
        let name = ws_http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| other(format!("invalid header name {name:?}")))?;
        let value = ws_http::HeaderValue::from_str(value)
            .map_err(|_| other(format!("invalid value for header {name}")))?;
        request.headers_mut().insert(name, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_len))
        .max_frame_size(Some(max_message_len));
    match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
        Ok((ws, response)) => {
            let (parts, _) = response.into_parts();
            Ok((ws, http::Response::from_parts(parts, ())))
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.body().as_deref().unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(MAX_REFUSAL_BODY)])
                .trim()
                .to_owned();
            Err(WsConnectError::Refused {
                status,
                headers,
                body,
            })
        }
        Err(
            e @ tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::WrongHttpVersion
                | tungstenite::error::ProtocolError::HttparseError(_),
            ),
        ) => Err(WsConnectError::NotHttp11 {
            url: url.to_string(),
            reason: e.to_string(),
        }),
        Err(e) => Err(other(format!("WebSocket upgrade to {url} failed: {e}"))),
    }
}
