//! `GET /wsecho` (compat §8): a WebSocket echo for checking that WebSockets pass through a
//! proxy. Text `m` comes back as `hello m`; binary comes back with `a`–`z` upper-cased.
//! Needs Overall/Administer, and the same-origin rule ([`super::origin::websocket`]): a page
//! on another site must not open it with the credentials its browser holds.

use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, close_code, rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::agents::session::SEND_TIMEOUT;
use crate::auth::{AuthError, Permission, authenticate};
use crate::keepalive::{Keepalive, Tick};
use crate::state::AppState;

/// Largest echo message; the endpoint is a diagnostic, not a transport.
pub const MAX_ECHO_MESSAGE: usize = 1 << 20;

pub async fn wsecho(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refused) = super::origin::websocket(&state.config, &headers, "/wsecho") {
        return refused.into_response();
    }
    match authenticate(&state.store, &headers).await {
        Ok(identity) => {
            if let Err(denied) = identity.require(Permission::OverallAdminister) {
                return (StatusCode::FORBIDDEN, format!("{denied}\n")).into_response();
            }
        }
        Err(AuthError::Store(e)) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response(),
    }
    match upgrade {
        Ok(u) => u
            .max_message_size(MAX_ECHO_MESSAGE)
            .max_frame_size(MAX_ECHO_MESSAGE)
            .on_upgrade(move |socket| echo(socket, state)),
        Err(rejection) => rejection.into_response(),
    }
}

async fn echo(mut socket: WebSocket, state: AppState) {
    let mut keepalive = Keepalive::new(state.config.ws_ping_interval, state.config.ws_idle_timeout);
    loop {
        let reply = tokio::select! {
            _ = state.shutdown.cancelled() => Some(Message::Close(Some(axum::extract::ws::CloseFrame { code: close_code::AWAY, reason: "shutting down".into() }))),
            tick = keepalive.tick() => match tick {
                Tick::SendPing => Some(Message::Ping(Default::default())),
                Tick::IdleTimeout => Some(Message::Close(Some(axum::extract::ws::CloseFrame { code: close_code::AWAY, reason: "idle timeout".into() }))),
            },
            message = socket.recv() => {
                keepalive.seen();
                match message {
                    None | Some(Ok(Message::Close(_))) => return,
                    Some(Err(e)) => match crate::ws_close::for_receive_error(&e) {
                        Some((code, reason)) => Some(Message::Close(Some(axum::extract::ws::CloseFrame { code, reason: reason.into() }))),
                        None => return,
                    },
                    Some(Ok(Message::Text(text))) => Some(Message::Text(format!("hello {}", text.as_str()).into())),
                    Some(Ok(Message::Binary(bytes))) => Some(Message::Binary(bytes.to_ascii_uppercase().into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                }
            }
        };
        let Some(reply) = reply else { continue };
        let closing = matches!(reply, Message::Close(_));
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(reply)).await {
            Ok(Ok(())) if !closing => {}
            _ => return,
        }
    }
}
