//! `GET /computer/NAME/ssh` and `GET /job/JOB/N/ssh`: an SSH client's raw byte stream as
//! binary WebSocket messages, piped to the SSH server inside the node's agent over one
//! channel stream. The controller never decodes it: it authenticates the request as the
//! REST API does, applies the same-origin rule, checks `Agent/Connect` (node) or
//! `Job/Debug` (build), tells the agent where the session lands and which keys may log in,
//! and then only moves bytes, a window at most each way.
//!
//! Refusals come before the upgrade, as a status and a one-line reason: 401 (no or bad
//! credentials), 403 (permission, origin), 404 (no such node or build, or the build has
//! ended), 503 (the node is offline, or its agent has no SSH server).

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use steward_channel::call::{self, CallError};
use steward_channel::{MuxStream, RecvHalf, SendHalf, StreamError};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{Request, Response as AgentResponse};
use steward_protocol::shown::Shown;
use steward_protocol::ssh::TargetName;
use tokio_util::sync::CancellationToken;

use super::api::ApiError;
use crate::audit::{Action, Actor};
use crate::auth::{AuthError, Identity, authenticate};
use crate::keepalive::{Keepalive, Tick};
use crate::ssh::connections::ConnectionGuard;
use crate::ssh::targets::{self, Resolved, TargetError};
use crate::state::AppState;

/// Largest WebSocket message taken from a client. SSH clients and stdio bridges write at
/// most a few tens of KiB at a time; the limit bounds what one message holds in memory.
pub const MAX_SSH_MESSAGE: usize = 256 * 1024;
/// What the WebSocket reads from the socket at a time. Small: an idle session should cost
/// little, and the socket reader below batches reads while bulk data flows.
const READ_BUFFER: usize = 8 * 1024;
/// How long a side that has finished waits for the other to finish too (the client's
/// close answer, the agent's last bytes) before the connection is dropped.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn node(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    forward(
        state,
        TargetName::Node(name),
        remote,
        headers,
        upgrade,
        "/computer/NAME/ssh",
    )
    .await
}

pub async fn build(
    State(state): State<AppState>,
    Path((job, number)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let number = match number.parse::<u64>() {
        Ok(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return ApiError::not_found(format!("No such build #{}", Shown(&number)))
                .into_response();
        }
    };
    let target = TargetName::Build { job, number };
    forward(state, target, remote, headers, upgrade, "/job/JOB/N/ssh").await
}

async fn forward(
    state: AppState,
    target: TargetName,
    remote: SocketAddr,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    route: &'static str,
) -> Response {
    if let Err(refused) = super::origin::websocket(&state.config, &headers, route) {
        return refused.into_response();
    }
    let identity = match authenticate(&state.store, &headers).await {
        Ok(Identity::Anonymous(_)) => {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "Authentication required: send user:token as Basic credentials, as for the REST API".into(),
            )
            .into_response();
        }
        Ok(identity) => identity,
        Err(AuthError::Store(e)) => return ApiError::internal(e).into_response(),
        Err(e) => return ApiError(StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let resolved = match targets::resolve(&state, &identity, &target).await {
        Ok(resolved) => resolved,
        Err(e) => return refusal(e).into_response(),
    };
    let user = identity.name().to_owned();
    let address = remote.to_string();
    let guard = match state.ssh.open(
        &resolved.node,
        resolved.build.as_ref().map(|b| b.row.id),
        &user,
        &address,
        crate::builds::now_ms(),
    ) {
        Ok(guard) => guard,
        Err(full) => {
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, full.to_string()).into_response();
        }
    };
    // A build that ended (or whose breakpoint ended) between the lookup and the
    // registration closed its connections without this one: look again now.
    if let Some(build) = &resolved.build {
        let ended = state
            .builds
            .running_build(&build.row.job, build.row.number)
            .is_none()
            || state
                .breakpoints
                .of_build(build.row.id)
                .is_some_and(|held| held.ending());
        if ended {
            return ApiError::not_found(format!(
                "Build {}#{} has ended: SSH reaches a build only while it runs or is held at a breakpoint",
                Shown(&build.row.job),
                build.row.number
            ))
            .into_response();
        }
    }
    let stream = match open(&state, &resolved, &guard, &user, &address).await {
        Ok(stream) => stream,
        Err(e) => return e.into_response(),
    };
    tracing::info!(target = ?resolved.describe(), node = ?resolved.node, user, remote = %remote, connection = guard.id(), "SSH connection forwarded");
    let build = resolved.build.clone();
    let target = resolved.describe();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_SSH_MESSAGE)
        .max_frame_size(MAX_SSH_MESSAGE)
        .on_upgrade(move |socket| async move {
            let by = Actor::new(&user, Some(remote.ip()));
            let since = std::time::Instant::now();
            state.audit.record(
                &by,
                Action::SshConnect,
                &target,
                json!({ "connection": guard.id() }),
            );
            let ended = pump(socket, stream, &guard, &state).await;
            tracing::info!(connection = guard.id(), why = ended, "SSH connection ended");
            let info = guard.info();
            let login = info.as_ref().and_then(|i| i.login.as_ref());
            state.audit.record(
                &by,
                Action::SshEnd,
                &target,
                json!({
                    "connection": guard.id(),
                    "keyFingerprint": login.map(|l| &l.key_fingerprint),
                    "sshUser": login.map(|l| &l.ssh_user),
                    "why": ended,
                    "durationMs": u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                }),
            );
            if let Some(build) = build {
                crate::ssh::console::disconnected(&build, info.as_ref(), ended);
            }
            drop(guard);
        })
}

fn refusal(e: TargetError) -> ApiError {
    match e {
        TargetError::NotFound(why) => ApiError::not_found(why),
        TargetError::Denied(denied) => ApiError(StatusCode::FORBIDDEN, denied.0),
        TargetError::Unavailable(why) => ApiError(StatusCode::SERVICE_UNAVAILABLE, why),
        TargetError::Store(e) => ApiError::internal(e),
    }
}

/// Opens the agent's side: the request, and its answer before anything else.
async fn open(
    state: &AppState,
    resolved: &Resolved,
    guard: &ConnectionGuard,
    user: &str,
    address: &str,
) -> Result<MuxStream, ApiError> {
    let request = targets::request(state, resolved, guard.id(), user, address)
        .await
        .map_err(refusal)?;
    let node = Shown(&resolved.node);
    let unavailable = |why: String| ApiError(StatusCode::SERVICE_UNAVAILABLE, why);
    let mut stream = call::open(&resolved.channel, &Request::Ssh(request))
        .await
        .map_err(|e| unavailable(format!("Node ‘{node}’ cannot take a connection: {e}")))?;
    let answer = tokio::time::timeout(
        targets::AGENT_ANSWER_TIMEOUT,
        call::read_response(&mut stream),
    )
    .await
    .map_err(|_| {
        unavailable(format!(
            "Node ‘{node}’ did not answer within {} s",
            targets::AGENT_ANSWER_TIMEOUT.as_secs()
        ))
    })?;
    match answer {
        Ok(AgentResponse::SshStarted) => Ok(stream),
        Ok(AgentResponse::Error { message }) => Err(unavailable(format!(
            "Node ‘{node}’ refused the SSH connection: {message}"
        ))),
        Ok(other) => Err(unavailable(format!(
            "Node ‘{node}’ answered {other:?} to an SSH connection"
        ))),
        Err(CallError::Stream(StreamError::Reset {
            code: ResetCode::Refused,
            reason,
        })) => Err(unavailable(format!(
            "Node ‘{node}’ has no SSH server ({reason}): update its agent"
        ))),
        Err(e) => Err(unavailable(format!("Node ‘{node}’ did not answer: {e}"))),
    }
}

/// Why a forwarded connection ended when the client's side went without a close (the
/// ProxyCommand killed with its `ssh`, a network failure).
const CLIENT_BROKE: &str = "the client's connection broke";

/// Moves bytes both ways until either side ends, the controller closes the connection, or
/// it shuts down; says which.
async fn pump(
    socket: WebSocket,
    stream: MuxStream,
    guard: &ConnectionGuard,
    state: &AppState,
) -> &'static str {
    let (ws_tx, ws_rx) = socket.split();
    let (send, recv) = stream.into_split();
    let stop = CancellationToken::new();
    let up = client_to_agent(ws_rx, send, stop.clone());
    let down = agent_to_client(recv, ws_tx, stop.clone(), state.config.ws_ping_interval);
    tokio::pin!(up, down);
    let closed_by_controller = async {
        tokio::select! {
            () = guard.stopped().cancelled() => "closed by the controller (the build's breakpoint ended, or it was aborted)",
            () = state.shutdown.cancelled() => "the controller is shutting down",
        }
    };
    tokio::select! {
        why = &mut up => {
            // A client that closed cleanly still reads until our close: let the agent's
            // last bytes out, within a bound. One whose connection broke reads nothing more.
            if why != CLIENT_BROKE {
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut down).await;
            }
            stop.cancel();
            why
        }
        why = &mut down => {
            stop.cancel();
            let _ = tokio::time::timeout(CLOSE_WAIT, &mut up).await;
            why
        }
        why = closed_by_controller => {
            stop.cancel();
            let _ = tokio::time::timeout(CLOSE_WAIT, async { tokio::join!(&mut up, &mut down) }).await;
            why
        }
    }
}

/// Client → agent: each binary message goes out as the client sent it, within the
/// stream's credit (a client faster than the agent waits).
async fn client_to_agent(
    mut ws_rx: futures_util::stream::SplitStream<WebSocket>,
    mut send: SendHalf,
    stop: CancellationToken,
) -> &'static str {
    loop {
        let message = tokio::select! {
            message = ws_rx.next() => message,
            () = stop.cancelled() => {
                send.reset(ResetCode::Cancelled, "the SSH connection was closed");
                return "closed";
            }
        };
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                let sent = tokio::select! {
                    sent = send.send(bytes) => sent,
                    () = stop.cancelled() => {
                        send.reset(ResetCode::Cancelled, "the SSH connection was closed");
                        return "closed";
                    }
                };
                if sent.is_err() {
                    return "the agent's side ended";
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Text(_))) => {
                send.reset(ResetCode::Cancelled, "the client sent text");
                return "the client sent a text message (SSH bytes travel as binary messages)";
            }
            Some(Ok(Message::Close(_))) | None => {
                let _ = send.finish().await;
                return "the client closed the connection";
            }
            Some(Err(_)) => {
                send.reset(ResetCode::Cancelled, CLIENT_BROKE);
                return CLIENT_BROKE;
            }
        }
    }
}

/// Agent → client: each chunk as one binary message, sent before the next is read, so a
/// client that stops reading stops the agent after one window. Pings keep proxies from
/// taking an idle session for a dead one.
async fn agent_to_client(
    mut recv: RecvHalf,
    mut ws_tx: futures_util::stream::SplitSink<WebSocket, Message>,
    stop: CancellationToken,
    ping_interval: Option<std::time::Duration>,
) -> &'static str {
    let mut keepalive = Keepalive::new(ping_interval, None);
    let (code, why) = loop {
        let message = tokio::select! {
            chunk = recv.recv() => match chunk {
                Some(Ok(bytes)) => Message::Binary(bytes),
                None => break (close_code::NORMAL, "the SSH server ended the connection"),
                Some(Err(StreamError::ChannelLost(_))) => break (close_code::AWAY, "the agent's connection was lost"),
                Some(Err(_)) => break (close_code::AWAY, "the SSH server ended the connection"),
            },
            tick = keepalive.tick() => match tick {
                Tick::SendPing => Message::Ping(Default::default()),
                Tick::IdleTimeout => continue,
            },
            () = stop.cancelled() => break (close_code::AWAY, "closed"),
        };
        let sent = tokio::select! {
            sent = ws_tx.send(message) => sent,
            () = stop.cancelled() => break (close_code::AWAY, "closed"),
        };
        if sent.is_err() {
            return "the client's connection broke";
        }
    };
    let frame = CloseFrame {
        code,
        reason: why.into(),
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, ws_tx.send(Message::Close(Some(frame)))).await;
    why
}
