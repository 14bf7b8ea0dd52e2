//! One connection attempt (compat §1, §3.3): `GET <root>login` until it answers 200, then
//! the `/wsagents/` upgrade with the agent's headers, and the reading of the 101 answer
//! (connection cookie, chosen channel version).
//!
//! The header building and the answer reading are pure functions; [`attempt`] does the
//! I/O through [`steward_transport`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use steward_protocol::channel::MAX_MESSAGE_LEN;
use steward_protocol::handshake::{
    self, CHANNEL_VERSIONS, HEADER_CHANNEL_PROTOCOL, HEADER_CONNECTION_COOKIE, HEADER_NODE_NAME,
    HEADER_REMOTING_CAPABILITY, HEADER_SECRET_KEY, LOGIN_PATH, REMOTING_CAPABILITY, WSAGENTS_PATH,
};
use steward_protocol::secret::NodeSecret;
use steward_protocol::shown::shown;
use steward_transport::{UntrustedCertificate, WsConnectError, WsStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use url::Url;

use crate::options::Credentials;

/// Bound on the `GET login` probe, body included: the controller answers it from memory.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest refusal body we print: enough for any message of ours, short enough for a line.
pub const MAX_BODY_IN_LOG: usize = 512;
/// Bound on telling a controller whose 101 answer we cannot use that we are leaving.
const REJECT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the agent is and where it connects.
#[derive(Clone)]
pub struct Endpoint {
    /// The controller root URL, ending in `/`.
    pub root: Url,
    pub node_name: String,
    pub secret: NodeSecret,
    /// `-webSocketHeader` pairs, added last so they win over ours.
    pub extra_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Endpoint {
    // Header values may carry credentials for a reverse proxy: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("root", &self.root.as_str())
            .field("node_name", &self.node_name)
            .field("secret", &self.secret)
            .field(
                "extra_headers",
                &crate::options::header_names(&self.extra_headers),
            )
            .finish()
    }
}

/// The network set-up every attempt shares.
#[derive(Debug, Clone)]
pub struct Transport {
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
    pub proxy_credentials: Option<Credentials>,
}

/// Why an attempt failed; `Display` is the reason after `Failed to connect: `.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("{url} is not ready: HTTP {status}")]
    NotReady { url: Url, status: u16 },
    #[error("{url} is not reachable: {reason}")]
    Unreachable { url: Url, reason: String },
    /// The server's certificate was refused: retrying alone will not help.
    #[error("{url}: {problem}")]
    Untrusted {
        url: Url,
        problem: UntrustedCertificate,
    },
    #[error("Handshake error: HTTP {status}")]
    Refused { status: u16, body: String },
    #[error("{0}")]
    Connect(String),
    #[error("unusable answer from the controller: {0}")]
    BadAnswer(String),
}

/// What the controller's 101 said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeAnswer {
    /// The cookie to present on the next reconnect.
    pub cookie: Option<String>,
    /// The channel version the controller chose.
    pub channel_version: u16,
}

/// The `/wsagents/` request headers (compat §1.1 plus our channel offer), then `-webSocketHeader`s.
pub fn handshake_headers(endpoint: &Endpoint, cookie: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        (HEADER_NODE_NAME.to_owned(), endpoint.node_name.clone()),
        (
            HEADER_SECRET_KEY.to_owned(),
            endpoint.secret.expose().to_owned(),
        ),
        (
            HEADER_REMOTING_CAPABILITY.to_owned(),
            REMOTING_CAPABILITY.to_owned(),
        ),
    ];
    if let Some(cookie) = cookie {
        headers.push((HEADER_CONNECTION_COOKIE.to_owned(), cookie.to_owned()));
    }
    headers.push((
        HEADER_CHANNEL_PROTOCOL.to_owned(),
        handshake::channel_offer(CHANNEL_VERSIONS),
    ));
    headers.push((
        "Origin".to_owned(),
        steward_transport::origin_of(&endpoint.root),
    ));
    for (name, value) in &endpoint.extra_headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.clone(), value.clone()));
    }
    headers
}

/// Reads the cookie and channel version out of a 101's headers.
pub fn read_upgrade_answer(headers: &http::HeaderMap) -> Result<UpgradeAnswer, String> {
    let channel = headers
        .get(HEADER_CHANNEL_PROTOCOL)
        .ok_or_else(|| {
            format!(
                "no {HEADER_CHANNEL_PROTOCOL} header in the 101 answer: is this a Steward controller?"
            )
        })?
        .to_str()
        .map_err(|_| format!("{HEADER_CHANNEL_PROTOCOL} header is not text"))?;
    let channel_version = handshake::parse_channel_answer(channel).map_err(|e| e.to_string())?;
    if !CHANNEL_VERSIONS.contains(&channel_version) {
        return Err(format!(
            "the controller chose {}, which this agent does not speak (it offered {})",
            handshake::channel_answer(channel_version),
            handshake::channel_offer(CHANNEL_VERSIONS)
        ));
    }
    let cookie = match headers.get(HEADER_CONNECTION_COOKIE) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(c) if handshake::is_well_formed_cookie(c) => Some(c.to_owned()),
            _ => {
                tracing::warn!(
                    "ignoring a malformed {HEADER_CONNECTION_COOKIE} from the controller"
                );
                None
            }
        },
    };
    Ok(UpgradeAnswer {
        cookie,
        channel_version,
    })
}

/// `GET <root>login` once; `Ok` on 200.
pub async fn probe_login(http: &reqwest::Client, root: &Url) -> Result<(), AttemptError> {
    let url = root
        .join(LOGIN_PATH)
        .map_err(|e| AttemptError::Connect(format!("cannot build the login URL: {e}")))?;
    let request = async {
        let response = http.get(url.clone()).send().await?;
        let status = response.status().as_u16();
        // Read the (small) body so the connection can be reused.
        let _ = response.bytes().await;
        Ok::<u16, reqwest::Error>(status)
    };
    match tokio::time::timeout(LOGIN_TIMEOUT, request).await {
        Ok(Ok(200)) => Ok(()),
        Ok(Ok(status)) => Err(AttemptError::NotReady { url, status }),
        Ok(Err(e)) => Err(match UntrustedCertificate::find(&e) {
            Some(problem) => AttemptError::Untrusted { url, problem },
            None => AttemptError::Unreachable {
                url,
                reason: error_chain(&e),
            },
        }),
        Err(_) => Err(AttemptError::Unreachable {
            url,
            reason: format!("no answer within {}s", LOGIN_TIMEOUT.as_secs()),
        }),
    }
}

/// One full attempt: the login probe, then the upgrade.
pub async fn attempt(
    endpoint: &Endpoint,
    transport: &Transport,
    cookie: Option<&str>,
) -> Result<(WsStream, UpgradeAnswer), AttemptError> {
    probe_login(&transport.http, &endpoint.root).await?;
    let url = steward_transport::ws_url(&endpoint.root, WSAGENTS_PATH)
        .map_err(|e| AttemptError::Connect(e.to_string()))?;
    let headers = handshake_headers(endpoint, cookie);
    let (mut ws, response) = steward_transport::connect_websocket_with(
        &url,
        &headers,
        &transport.tls,
        MAX_MESSAGE_LEN,
        transport
            .proxy_credentials
            .as_ref()
            .map(Credentials::expose),
    )
    .await
    .map_err(|e| match e {
        WsConnectError::Refused { status, body, .. } => AttemptError::Refused {
            status,
            body: printable(&body),
        },
        WsConnectError::Untrusted { problem, .. } => AttemptError::Untrusted {
            url: url.clone(),
            problem,
        },
        e @ (WsConnectError::TimedOut { .. } | WsConnectError::NotHttp11 { .. }) => {
            AttemptError::Connect(e.to_string())
        }
        WsConnectError::Other(reason) => AttemptError::Connect(reason),
    })?;
    match read_upgrade_answer(response.headers()) {
        Ok(answer) => Ok((ws, answer)),
        Err(reason) => {
            let close = ws.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Protocol,
                reason: "channel version".into(),
            })));
            let _ = tokio::time::timeout(REJECT_CLOSE_TIMEOUT, close).await;
            Err(AttemptError::BadAnswer(reason))
        }
    }
}

/// Text from the controller (a refusal body, a close or GOAWAY reason) made safe for one
/// log line: whitespace runs folded, control and bidirectional characters escaped
/// ([`steward_protocol::shown`]), length bounded.
pub fn printable(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = shown(&folded).chars().take(MAX_BODY_IN_LOG).collect();
    if text.chars().count() > MAX_BODY_IN_LOG {
        out.push('…');
    }
    out
}

/// An error's causes, `: `-separated. The outermost message is left out when there are
/// causes: reqwest's repeats the URL, which the caller already names.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(extra: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            root: Url::parse("https://ci.example.com:8443/jenkins/").unwrap(),
            node_name: "linux-1".into(),
            secret: NodeSecret::new("ab".repeat(32)),
            extra_headers: extra
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn first_connection_headers() {
        let headers = handshake_headers(&endpoint(&[]), None);
        assert_eq!(header(&headers, "Node-Name"), Some("linux-1"));
        assert_eq!(
            header(&headers, "Secret-Key"),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(
            header(&headers, "X-Remoting-Capability"),
            Some(REMOTING_CAPABILITY)
        );
        assert_eq!(
            header(&headers, "X-Steward-Channel"),
            Some("steward-channel/1")
        );
        assert_eq!(
            header(&headers, "Origin"),
            Some("https://ci.example.com:8443")
        );
        assert_eq!(header(&headers, "Connection-Cookie"), None);
    }

    #[test]
    fn reconnect_sends_the_cookie_and_user_headers_win() {
        let cookie = "cd".repeat(32);
        let headers = handshake_headers(
            &endpoint(&[("X-Extra", "1"), ("origin", "https://proxy.example")]),
            Some(&cookie),
        );
        assert_eq!(header(&headers, "Connection-Cookie"), Some(cookie.as_str()));
        assert_eq!(header(&headers, "X-Extra"), Some("1"));
        assert_eq!(header(&headers, "Origin"), Some("https://proxy.example"));
        assert_eq!(
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("origin"))
                .count(),
            1
        );
    }

    fn answer(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_cookie_and_channel_version() {
        let cookie = "0f".repeat(32);
        assert_eq!(
            read_upgrade_answer(&answer(&[
                ("x-steward-channel", "steward-channel/1"),
                ("connection-cookie", &cookie)
            ])),
            Ok(UpgradeAnswer {
                cookie: Some(cookie),
                channel_version: 1
            })
        );
        // A malformed cookie is dropped, not sent back.
        assert_eq!(
            read_upgrade_answer(&answer(&[
                ("x-steward-channel", "steward-channel/1"),
                ("connection-cookie", "nope")
            ]))
            .map(|a| a.cookie),
            Ok(None)
        );
    }

    #[test]
    fn refuses_missing_malformed_or_foreign_channel_versions() {
        let missing = read_upgrade_answer(&answer(&[])).unwrap_err();
        assert!(missing.contains("no X-Steward-Channel header"), "{missing}");
        let malformed =
            read_upgrade_answer(&answer(&[("x-steward-channel", "steward-channel/1,2")]))
                .unwrap_err();
        assert!(malformed.contains("malformed"), "{malformed}");
        let foreign = read_upgrade_answer(&answer(&[("x-steward-channel", "steward-channel/7")]))
            .unwrap_err();
        assert!(
            foreign.contains("steward-channel/7") && foreign.contains("steward-channel/1"),
            "{foreign}"
        );
    }

    #[test]
    fn printable_folds_and_bounds() {
        assert_eq!(
            printable(" a\r\n b\u{1b}[31m\u{202e} "),
            "a b\\u{1b}[31m\\u{202e}"
        );
        let long = "x".repeat(MAX_BODY_IN_LOG + 10);
        assert_eq!(printable(&long).chars().count(), MAX_BODY_IN_LOG + 1);
    }

    #[test]
    fn refused_reason_reads_like_the_real_agent() {
        let e = AttemptError::Refused {
            status: 403,
            body: String::new(),
        };
        assert_eq!(e.to_string(), "Handshake error: HTTP 403");
    }
}
