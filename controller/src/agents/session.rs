//! One accepted agent connection, from the 101 until it ends.
//!
//! Our agent and the controller exchange HELLO frames, then the socket stays up with pings.
//! A Java agent.jar is held the same way but never spoken to: the controller cannot run
//! Java remoting commands, so such a node shows a status saying so.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use serde_json::json;
use steward_protocol::STEWARD_VERSION;
use steward_protocol::channel::{FEATURE_MUX, Frame, GoAway, GoAwayCode, Hello, Role};
use tracing::Instrument;

use super::registry::{AgentKind, JAVA_AGENT_STATUS, Registration};
use crate::audit::entry::SYSTEM;
use crate::audit::{Action, Actor};
use crate::keepalive::{Keepalive, Tick};
use crate::state::AppState;

/// How long the agent has to send its HELLO after the upgrade.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on one send; a peer that takes longer is as good as gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How a session ended, for the log and the node's offline reason.
struct Ending {
    reason: String,
    /// Close frame to send, if the socket is still usable.
    close: Option<(u16, String)>,
}

impl Ending {
    fn quiet(reason: impl Into<String>) -> Self {
        Ending {
            reason: reason.into(),
            close: None,
        }
    }
    fn closing(reason: impl Into<String>, code: u16) -> Self {
        let reason = reason.into();
        Ending {
            close: Some((code, super::mux::close_reason(&reason))),
            reason,
        }
    }
}

/// Runs the session of a registered connection to its end.
pub async fn run(
    socket: WebSocket,
    mut registration: Registration,
    kind: AgentKind,
    remote: SocketAddr,
    state: AppState,
) {
    let span = tracing::info_span!("agent", node = ?registration.node, conn = registration.connection_id, %remote);
    // The agent speaks for its node with the node's secret: the controller's own doing, from
    // the agent's address.
    let by = Actor::new(SYSTEM, Some(remote.ip()));
    async move {
        let agent = match &kind {
            AgentKind::Steward { channel_version } => {
                tracing::info!(channel_version, "agent connected");
                json!({ "agent": "steward", "channelVersion": channel_version })
            }
            AgentKind::JavaRemoting => {
                tracing::warn!("a Java agent.jar connected: holding the connection, but the node is offline ({JAVA_AGENT_STATUS})");
                json!({ "agent": "java" })
            }
        };
        let mut details = agent;
        details["connection"] = registration.connection_id.into();
        state
            .audit
            .record(&by, Action::AgentConnect, &registration.node, details);
        let ending = drive(socket, &mut registration, &kind, &state).await;
        tracing::info!(reason = ?ending.reason, "agent disconnected");
        state.audit.record(
            &by,
            Action::AgentDisconnect,
            &registration.node,
            json!({ "connection": registration.connection_id, "reason": ending.reason }),
        );
        registration.set_end_reason(ending.reason);
    }
    .instrument(span)
    .await
}

async fn drive(
    mut socket: WebSocket,
    registration: &mut Registration,
    kind: &AgentKind,
    state: &AppState,
) -> Ending {
    let mut keepalive = Keepalive::new(state.config.ws_ping_interval, state.config.ws_idle_timeout);
    let mut hello_deadline = None;
    if let AgentKind::Steward { channel_version } = *kind {
        let hello = Frame::Hello(Hello {
            role: Role::Controller,
            channel_version,
            software_version: STEWARD_VERSION.into(),
            node_name: registration.node.clone(),
            features: vec![FEATURE_MUX.to_owned()],
            ping_interval_secs: secs(state.config.ws_ping_interval),
            idle_timeout_secs: secs(state.config.ws_idle_timeout),
        });
        if let Err(e) = send(&mut socket, Message::Binary(hello.encode().into())).await {
            return Ending::quiet(format!("could not send hello: {e}"));
        }
        hello_deadline = Some(tokio::time::Instant::now() + HELLO_TIMEOUT);
    }
    let mut multiplexed = false;
    let ending = loop {
        tokio::select! {
            goaway = registration.control.recv() => {
                let goaway = goaway.unwrap_or(GoAway { code: GoAwayCode::Shutdown, reason: "controller stopping".into() });
                break go_away(&mut socket, kind, goaway).await;
            }
            _ = state.shutdown.cancelled() => {
                let goaway = GoAway { code: GoAwayCode::Shutdown, reason: "controller shutting down".into() };
                break go_away(&mut socket, kind, goaway).await;
            }
            tick = keepalive.tick() => match tick {
                Tick::SendPing => {
                    if let Err(e) = send(&mut socket, Message::Ping(Default::default())).await {
                        break Ending::quiet(format!("ping failed: {e}"));
                    }
                }
                Tick::IdleTimeout => {
                    break Ending::closing(format!("no answer for {}s (idle timeout)", keepalive.silent_for().as_secs()), close_code::AWAY);
                }
            },
            _ = async { match hello_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                break protocol_error(&mut socket, format!("no hello within {}s", HELLO_TIMEOUT.as_secs())).await;
            }
            message = socket.recv() => {
                keepalive.seen();
                match message {
                    None => break Ending::quiet("connection closed"),
                    Some(Err(e)) => break match crate::ws_close::for_receive_error(&e) {
                        Some((code, what)) => {
                            tracing::warn!(error = ?e.to_string(), "agent broke the WebSocket protocol");
                            Ending { reason: e.to_string(), close: Some((code, what.into())) }
                        }
                        None => Ending::quiet(format!("connection error: {e}")),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        // tungstenite has queued the answering close frame: send it.
                        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.flush()).await;
                        let why = frame.map(|f| format!(" ({} {})", f.code, f.reason)).unwrap_or_default();
                        break Ending::quiet(format!("agent closed the connection{why}"));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(_))) if *kind == AgentKind::JavaRemoting => {}
                    Some(Ok(Message::Text(_))) => {
                        break Ending::closing("text frames are not part of the agent protocol", close_code::UNSUPPORTED);
                    }
                    // Java remoting chunks: the agent answered something; nothing to do.
                    Some(Ok(Message::Binary(_))) if *kind == AgentKind::JavaRemoting => {}
                    Some(Ok(Message::Binary(bytes))) => match Frame::decode(&bytes) {
                        Ok(None) => {}
                        Ok(Some(Frame::Hello(hello))) if hello_deadline.is_some() => {
                            if let Err(why) = check_hello(&hello, &registration.node, kind) {
                                break protocol_error(&mut socket, why).await;
                            }
                            tracing::info!(agent_version = ?hello.software_version, "agent hello");
                            let mux = hello.features.iter().any(|f| f == FEATURE_MUX);
                            state.agents.set_agent_version(&registration.node, registration.connection_id, hello.software_version);
                            hello_deadline = None;
                            if mux {
                                multiplexed = true;
                                break Ending::quiet("");
                            }
                        }
                        Ok(Some(Frame::GoAway(g))) => break Ending::quiet(format!("agent went away: {}", g.reason)),
                        Ok(Some(other)) => break protocol_error(&mut socket, format!("unexpected {} frame", other.name())).await,
                        Err(e) => break protocol_error(&mut socket, e.to_string()).await,
                    },
                }
            }
        }
    };
    if multiplexed {
        return Ending::quiet(super::mux::run(socket, registration, state).await);
    }
    if let Some((code, reason)) = &ending.close {
        let _ = send(
            &mut socket,
            Message::Close(Some(CloseFrame {
                code: *code,
                reason: reason.as_str().into(),
            })),
        )
        .await;
    }
    ending
}

fn check_hello(hello: &Hello, node: &str, kind: &AgentKind) -> Result<(), String> {
    if hello.role != Role::Agent {
        return Err("hello from the agent claims the controller role".into());
    }
    if hello.node_name != node {
        return Err(format!(
            "hello names node {:?} but the connection is for {node:?}",
            hello.node_name
        ));
    }
    if let AgentKind::Steward { channel_version } = kind
        && hello.channel_version != *channel_version
    {
        return Err(format!(
            "hello says channel version {} but {channel_version} was negotiated",
            hello.channel_version
        ));
    }
    Ok(())
}

async fn go_away(socket: &mut WebSocket, kind: &AgentKind, goaway: GoAway) -> Ending {
    if matches!(kind, AgentKind::Steward { .. }) {
        let _ = send(
            socket,
            Message::Binary(Frame::GoAway(goaway.clone()).encode().into()),
        )
        .await;
    }
    let code = if goaway.code == GoAwayCode::Shutdown {
        close_code::AWAY
    } else {
        close_code::NORMAL
    };
    Ending::closing(goaway.reason, code)
}

async fn protocol_error(socket: &mut WebSocket, why: String) -> Ending {
    tracing::warn!(error = ?why, "agent protocol error");
    let goaway = GoAway {
        code: GoAwayCode::ProtocolError,
        reason: why.chars().take(200).collect(),
    };
    let _ = send(
        socket,
        Message::Binary(Frame::GoAway(goaway).encode().into()),
    )
    .await;
    Ending::closing(format!("protocol error: {why}"), close_code::PROTOCOL)
}

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("send blocked for {}s", SEND_TIMEOUT.as_secs())),
    }
}

fn secs(d: Option<Duration>) -> u32 {
    d.map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}
