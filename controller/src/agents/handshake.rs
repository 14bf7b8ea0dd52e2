//! `GET /wsagents/` (compat §1): who may connect, and the 101 answer.

use std::net::SocketAddr;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use steward_protocol::channel::MAX_MESSAGE_LEN;
use steward_protocol::handshake::{self as hs, CHANNEL_VERSIONS};

use super::registry::{AgentKind, RegisterError};
use super::session;
use crate::nodes::NodeError;
use crate::state::AppState;
use crate::store::nodes;

/// Longest header value copied into a log line; names and addresses are far shorter.
const MAX_LOGGED_HEADER: usize = 256;

/// A request that passed validation, before its upgrade.
struct Admitted {
    node: String,
    cookie: Option<String>,
    kind: AgentKind,
}

/// A refused request: what the agent gets, and what the controller's log says.
struct Refusal {
    status: StatusCode,
    body: String,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, body: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            body: body.into(),
            reason: reason.into(),
        }
    }
}

/// A header as text. Agents send node names as UTF-8 (Jenkins allows any Unicode name), which
/// `HeaderValue::to_str` would refuse; an empty value counts as present (an empty secret is a
/// wrong secret, 403, not a missing header).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Steps 1–5 of §1.2 plus the channel version; changes nothing.
async fn admit(state: &AppState, headers: &HeaderMap) -> Result<Admitted, Refusal> {
    let missing: Vec<&str> = [
        hs::HEADER_NODE_NAME,
        hs::HEADER_SECRET_KEY,
        hs::HEADER_REMOTING_CAPABILITY,
    ]
    .into_iter()
    .filter(|h| header(headers, h).is_none())
    .collect();
    if !missing.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            hs::MSG_MISSING_HEADERS,
            format!("missing or unreadable header(s): {}", missing.join(", ")),
        ));
    }
    let asked = header(headers, hs::HEADER_NODE_NAME).unwrap_or_default();
    let secret = header(headers, hs::HEADER_SECRET_KEY).unwrap_or_default();

    let record = match crate::nodes::get(state, asked).await {
        Ok(record) => record,
        Err(NodeError::NotFound(_)) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                hs::MSG_NO_SUCH_AGENT,
                "no such node",
            ));
        }
        Err(e) => {
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "",
                format!("database error: {e}"),
            ));
        }
    };
    // The stored name from here on (secret, registry): `asked` may be another spelling.
    let node = record.config.name.clone();
    if !state.secret_key.node_secret(&node).matches(secret) {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "", "wrong secret"));
    }
    if !record.config.is_inbound() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            hs::msg_not_inbound(&node),
            format!(
                "launcher is {}, not an inbound agent",
                record.config.launcher
            ),
        ));
    }
    let cookie = header(headers, hs::HEADER_CONNECTION_COOKIE).map(str::to_owned);
    if state.agents.would_refuse(&node, cookie.as_deref()) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            hs::msg_already_connected(&node),
            "already connected and the request does not carry the live connection's cookie",
        ));
    }
    let kind = match header(headers, hs::HEADER_CHANNEL_PROTOCOL) {
        None => AgentKind::JavaRemoting,
        Some(offer) => match hs::negotiate_channel_version(offer, CHANNEL_VERSIONS) {
            Ok(channel_version) => AgentKind::Steward { channel_version },
            Err(e) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    e.to_string(),
                    e.to_string(),
                ));
            }
        },
    };
    Ok(Admitted { node, cookie, kind })
}

/// What tungstenite reads at a time from an agent's WebSocket. It zero-fills and keeps a
/// buffer this large for every connection, idle or not, so it decides much of what an idle
/// agent costs the controller: with its default of 128 KiB an idle agent cost 177 KiB, with
/// 8 KiB about 37 KiB (16 KiB: 52). A frame larger than it is still read whole, into a
/// buffer sized for that frame. The system calls underneath are larger while bulk data
/// flows: every connection reads through [`crate::http::adaptive_read::AdaptiveRead`].
pub const AGENT_READ_BUFFER: usize = 8 * 1024;

/// The `/wsagents/` handler.
pub async fn wsagents(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let node_for_log = header(&headers, hs::HEADER_NODE_NAME)
        .unwrap_or("-")
        .chars()
        .take(MAX_LOGGED_HEADER)
        .collect::<String>();
    // Behind a reverse proxy the peer address is the proxy's; say who it forwarded for.
    let forwarded_for: String = header(&headers, "X-Forwarded-For")
        .unwrap_or("-")
        .chars()
        .take(MAX_LOGGED_HEADER)
        .collect();
    let refuse = |r: Refusal| {
        tracing::warn!(node = ?node_for_log, remote = %remote, forwarded_for = ?forwarded_for, status = r.status.as_u16(), reason = ?r.reason, "refused agent connection");
        (r.status, r.body).into_response()
    };
    let admitted = match admit(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return refuse(r),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            let why = rejection.body_text();
            return refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                why.clone(),
                format!("not a WebSocket upgrade: {why}"),
            ));
        }
    };
    let registration = match state.agents.register(
        &admitted.node,
        admitted.cookie.as_deref(),
        admitted.kind,
        remote,
    ) {
        Ok(r) => r,
        Err(RegisterError::AlreadyConnected) => {
            return refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                hs::msg_already_connected(&admitted.node),
                "already connected (another connection registered first)",
            ));
        }
    };
    // A delete or rename between the checks above and the registration would leave a live
    // connection for a node that no longer exists: look again now that we are registered
    // (a delete from here on finds the registration and disconnects it).
    let key = admitted.node.clone();
    match state.store.call(move |c| nodes::get(c, &key)).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(Refusal::new(
                StatusCode::BAD_REQUEST,
                hs::MSG_NO_SUCH_AGENT,
                "node deleted during the handshake",
            ));
        }
        Err(e) => {
            return refuse(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "",
                format!("database error: {e}"),
            ));
        }
    }
    let cookie = registration.cookie.clone();
    let kind = admitted.kind;
    let session_state = state.clone();
    let node = admitted.node.clone();
    let mut response = upgrade
        .max_message_size(MAX_MESSAGE_LEN)
        .max_frame_size(MAX_MESSAGE_LEN)
        .read_buffer_size(AGENT_READ_BUFFER)
        .on_failed_upgrade(move |e: axum::Error| tracing::warn!(node = ?node, remote = %remote, error = ?e.to_string(), "agent WebSocket upgrade failed"))
        .on_upgrade(move |socket| session::run(socket, registration, kind, remote, session_state));
    let h = response.headers_mut();
    h.insert(
        hs::HEADER_REMOTING_CAPABILITY,
        HeaderValue::from_static(hs::REMOTING_CAPABILITY),
    );
    h.insert(
        hs::HEADER_REMOTING_MINIMUM_VERSION,
        HeaderValue::from_static(hs::REMOTING_MINIMUM_VERSION),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(hs::HEADER_CONNECTION_COOKIE, v);
    }
    if let AgentKind::Steward { channel_version } = kind
        && let Ok(v) = HeaderValue::from_str(&hs::channel_answer(channel_version))
    {
        h.insert(hs::HEADER_CHANNEL_PROTOCOL, v);
    }
    response
}
