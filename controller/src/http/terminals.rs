//! Terminals over HTTP: the REST API (`/terminals`, `/terminals/NAME`, the bulk
//! `/bulk/terminals`, recordings) and the WebSocket a client attaches with
//! (`/terminals/NAME/attach[?readOnly=true]`).
//!
//! The attach socket carries the terminal's output as binary messages (the screen first),
//! and keystrokes the other way, also binary. Text messages are JSON: from the client
//! `{"type":"resize","cols":C,"rows":R}`, `{"type":"replay"}` and `{"type":"who"}`; from
//! the controller `{"type":"attached",…}` first, then `{"type":"message","text":…}` lines
//! (a replay, who is attached, the program's exit…) and, before a close it decides,
//! `{"type":"closed","reason":…}`. Escapes (`^Ec.`…) are the client's business.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use steward_protocol::terminals::Size;

use super::api::{ApiError, Remote, caller};
use crate::audit::{Action, Actor};
use crate::auth::{Identity, Permission};
use crate::keepalive::{Keepalive, Tick};
use crate::state::AppState;
use crate::terminals::hub::ToClient;
use crate::terminals::{self, NewTerminal, TerminalChanges, TerminalError};

/// Largest message taken from a client: keystrokes and pastes.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Output sent to a client in one message, at most (queued chunks are joined up to it).
const MAX_OUTPUT_MESSAGE: usize = 64 * 1024;
/// Output chunks at least this large are sent as they are, not joined.
const JOIN_BELOW: usize = 16 * 1024;
/// What the socket reads at a time.
const READ_BUFFER: usize = 4 * 1024;
/// Most items in one bulk request.
pub const MAX_BULK: usize = 1000;

impl From<TerminalError> for ApiError {
    fn from(e: TerminalError) -> Self {
        match e {
            TerminalError::NotFound(_) => ApiError::not_found(e.to_string()),
            TerminalError::Exists(_) => ApiError::conflict(e.to_string()),
            TerminalError::Store(s) => ApiError::internal(s),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// A terminal as the REST API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalBody {
    name: Option<String>,
    node: Option<String>,
    driver: Option<String>,
    ondemand: Option<bool>,
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a terminal: {e}")))
}

/// `GET /terminals`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let views: Vec<_> = state
        .terminals
        .all()
        .iter()
        .map(|t| terminals::view(t))
        .collect();
    let outputs = state.terminals.logs().stats();
    Ok(Json(json!({ "terminals": views, "logOutputs": outputs })).into_response())
}

/// `POST /terminals`.
pub async fn create(
    State(state): State<AppState>,
    remote: Remote,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::TerminalConfigure).await?;
    let body: TerminalBody = parse_body(&body)?;
    create_one(&state, body, &remote.actor(&identity)).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn create_one(state: &AppState, body: TerminalBody, by: &Actor) -> Result<(), ApiError> {
    let name = body
        .name
        .ok_or_else(|| ApiError::bad_request("the terminal has no \"name\""))?;
    let node = body
        .node
        .ok_or_else(|| ApiError::bad_request("the terminal has no \"node\""))?;
    terminals::create(
        state,
        NewTerminal {
            name,
            node,
            driver: body.driver.unwrap_or_else(|| "cmd".into()),
            ondemand: body.ondemand.unwrap_or(false),
            params: body.params.into_iter().collect(),
        },
        by,
    )
    .await?;
    Ok(())
}

/// `GET /terminals/NAME`.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let terminal = terminals::find(&state, &name)?;
    Ok(Json(terminals::view(&terminal)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct StateQuery {
    state: Option<String>,
}

impl StateQuery {
    /// `?state=on` or `off`: whether to turn terminals on or off, if asked.
    fn on(&self) -> Result<Option<bool>, ApiError> {
        match self.state.as_deref() {
            None => Ok(None),
            Some("on") => Ok(Some(true)),
            Some("off") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "state ‘{other}’ is not on or off"
            ))),
        }
    }
}

/// `PUT /terminals/NAME[?state=on|off]`, with changes as the body (or none).
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<StateQuery>,
    remote: Remote,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::TerminalConfigure).await?;
    let on = query.on()?;
    let changes: Option<TerminalBody> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body)?)
    };
    update_one(&state, &name, changes, on, &remote.actor(&identity)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn update_one(
    state: &AppState,
    name: &str,
    body: Option<TerminalBody>,
    on: Option<bool>,
    by: &Actor,
) -> Result<(), ApiError> {
    terminals::find(state, name)?;
    if let Some(body) = body {
        if body.name.as_deref().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("a terminal cannot be renamed"));
        }
        let changes = TerminalChanges {
            node: body.node,
            driver: body.driver,
            ondemand: body.ondemand,
            params: body.params.into_iter().collect(),
        };
        terminals::update(state, name, changes, by).await?;
    }
    if let Some(on) = on {
        terminals::set_enabled(state, name, on, by).await?;
    }
    Ok(())
}

/// `DELETE /terminals/NAME`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::TerminalConfigure).await?;
    terminals::delete(&state, &name, &remote.actor(&identity)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct BulkBody {
    terminals: Vec<serde_json::Value>,
}

/// `POST`, `PUT` and `DELETE /bulk/terminals` with `{"terminals":[…]}`: each item done on
/// its own, the answer saying for each how it went (`status` as the single call answers).
pub async fn bulk(
    State(state): State<AppState>,
    method: http::Method,
    Query(query): Query<StateQuery>,
    remote: Remote,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::TerminalConfigure).await?;
    let by = remote.actor(&identity);
    let body: BulkBody = parse_body(&body)?;
    if body.terminals.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "more than {MAX_BULK} terminals in one request"
        )));
    }
    let on = query.on()?;
    let mut results = Vec::new();
    for item in body.terminals {
        let name = match &item {
            serde_json::Value::String(name) => Some(name.clone()),
            other => other
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned),
        };
        let outcome: Result<StatusCode, ApiError> = async {
            match method {
                http::Method::POST => {
                    let body: TerminalBody = serde_json::from_value(item)
                        .map_err(|e| ApiError::bad_request(format!("not a terminal: {e}")))?;
                    create_one(&state, body, &by)
                        .await
                        .map(|()| StatusCode::CREATED)
                }
                http::Method::PUT => {
                    let name = name
                        .clone()
                        .ok_or_else(|| ApiError::bad_request("an item has no name"))?;
                    let body =
                        match item {
                            serde_json::Value::String(_) => None,
                            other => Some(serde_json::from_value::<TerminalBody>(other).map_err(
                                |e| ApiError::bad_request(format!("not a terminal: {e}")),
                            )?),
                        };
                    update_one(&state, &name, body, on, &by)
                        .await
                        .map(|()| StatusCode::NO_CONTENT)
                }
                _ => {
                    let name = name
                        .clone()
                        .ok_or_else(|| ApiError::bad_request("an item has no name"))?;
                    terminals::delete(&state, &name, &by).await?;
                    Ok(StatusCode::NO_CONTENT)
                }
            }
        }
        .await;
        results.push(match outcome {
            Ok(status) => json!({ "name": name, "status": status.as_u16() }),
            Err(ApiError(status, message)) => {
                json!({ "name": name, "status": status.as_u16(), "message": message })
            }
        });
    }
    Ok(Json(json!({ "terminals": results })).into_response())
}

/// `GET /terminals/NAME/recordings`.
pub async fn recordings(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::TerminalConfigure).await?;
    let rows = terminals::recordings(&state, Some(&name)).await?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "run": r.run, "startedMs": r.started_ms, "endedMs": r.ended_ms,
                "outputBytes": r.output_bytes, "width": r.width, "height": r.height,
            })
        })
        .collect();
    Ok(Json(json!({ "terminal": name, "recordings": list })).into_response())
}

/// `GET /terminals/NAME/recordings/ID` (with or without `.cast`): the asciicast file.
pub async fn recording(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::TerminalConfigure).await?;
    let terminal = terminals::find(&state, &name)?;
    let id = id.strip_suffix(".cast").unwrap_or(&id);
    let path = terminals::recording_path(&terminal, id)
        .ok_or_else(|| ApiError::not_found(format!("No recording ‘{id}’")))?;
    let file = tokio::fs::File::open(&path).await.map_err(|_| {
        ApiError::not_found(format!("No recording ‘{id}’ of terminal {}", terminal.name))
    })?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [(http::header::CONTENT_TYPE, "application/x-asciicast")],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct AttachQuery {
    #[serde(rename = "readOnly")]
    read_only: Option<bool>,
}

/// `GET /terminals/NAME/attach[?readOnly=true]`: the WebSocket.
pub async fn attach(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<AttachQuery>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refused) =
        super::origin::websocket(&state.config, &headers, "/terminals/NAME/attach")
    {
        return refused.into_response();
    }
    let identity = match caller(&state, &headers, Permission::TerminalAttach).await {
        Ok(Identity::Anonymous(_)) => {
            return ApiError(StatusCode::UNAUTHORIZED, "Authentication required".into())
                .into_response();
        }
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let terminal = match terminals::find(&state, &name) {
        Ok(terminal) => terminal,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let read_only = query.read_only.unwrap_or(false);
    let user = identity.name().to_owned();
    // Small buffers: a thousand idle clients should cost little; output goes out a message
    // at a time anyway.
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let by = Actor::new(&user, Some(remote.ip()));
            let since = std::time::Instant::now();
            state.audit.record(
                &by,
                Action::TerminalStart,
                &terminal.name,
                json!({ "readOnly": read_only, "node": terminal.settings().node }),
            );
            let client = terminal.attach(&user, &remote.to_string(), read_only);
            let why = serve(socket, client, read_only, &state).await;
            state.audit.record(
                &by,
                Action::TerminalEnd,
                &terminal.name,
                json!({
                    "readOnly": read_only,
                    "why": why,
                    "durationMs": u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                }),
            );
        })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ClientText {
    Resize { cols: u16, rows: u16 },
    Replay,
    Who,
}

async fn serve(
    socket: WebSocket,
    mut client: terminals::Attached,
    read_only: bool,
    state: &AppState,
) -> String {
    let (mut tx, mut rx) = socket.split();
    let hello = json!({
        "type": "attached",
        "terminal": client.terminal.name,
        "readOnly": read_only,
        "state": client.terminal.status().word(),
    });
    if tx
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return CLIENT_GONE.to_owned();
    }
    if read_only {
        let text = json!({"type": "message", "text": "=== Attached to read-only session ==="});
        if tx
            .send(Message::Text(text.to_string().into()))
            .await
            .is_err()
        {
            return CLIENT_GONE.to_owned();
        }
    }
    let mut keepalive = Keepalive::new(state.config.ws_ping_interval, None);
    let (code, reason) = loop {
        let outgoing = tokio::select! {
            next = client.queue.next() => match next {
                Some(ToClient::Output(data)) => Message::Binary(join_queued(data, &mut client)),
                Some(ToClient::Message(text)) => Message::Text(json!({"type": "message", "text": text}).to_string().into()),
                Some(ToClient::Closed(why)) => {
                    let _ = tx.send(Message::Text(json!({"type": "closed", "reason": why}).to_string().into())).await;
                    break (close_code::POLICY, why);
                }
                None => break (close_code::AWAY, "the terminal is gone".to_owned()),
            },
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    client.input(&data).await;
                    continue;
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientText>(&text) {
                    Ok(ClientText::Resize { cols, rows }) => {
                        client.resize(Size { cols, rows });
                        continue;
                    }
                    Ok(ClientText::Replay) => Message::Text(json!({"type": "message", "text": client.replay()}).to_string().into()),
                    Ok(ClientText::Who) => Message::Text(json!({"type": "message", "text": client.who()}).to_string().into()),
                    Err(e) => break (close_code::PROTOCOL, format!("a text message that is not a command: {e}")),
                },
                Some(Ok(Message::Close(_))) => return "the client detached".to_owned(),
                None | Some(Err(_)) => return CLIENT_GONE.to_owned(),
                Some(Ok(_)) => continue,
            },
            tick = keepalive.tick() => match tick {
                Tick::SendPing => Message::Ping(Default::default()),
                Tick::IdleTimeout => continue,
            },
            () = state.shutdown.cancelled() => break (close_code::AWAY, "the controller is shutting down".to_owned()),
        };
        if tx.send(outgoing).await.is_err() {
            return CLIENT_GONE.to_owned();
        }
    };
    let frame = CloseFrame {
        code,
        reason: reason.chars().take(100).collect::<String>().into(),
    };
    let _ = tx.send(Message::Close(Some(frame))).await;
    reason
}

/// Why a client's session ended when its connection went without a close.
const CLIENT_GONE: &str = "the client's connection ended";

/// `first` and the output queued behind it, up to [`MAX_OUTPUT_MESSAGE`], as one message.
/// A large chunk (a flood's) goes as it is, shared with the other clients, not copied.
fn join_queued(first: Bytes, client: &mut terminals::Attached) -> Bytes {
    if first.len() >= JOIN_BELOW {
        return first;
    }
    let mut joined: Option<BytesMut> = None;
    while joined.as_ref().map_or(first.len(), BytesMut::len) < MAX_OUTPUT_MESSAGE {
        let room = MAX_OUTPUT_MESSAGE - joined.as_ref().map_or(first.len(), BytesMut::len);
        let Some(next) = client.queue.try_next_output(room) else {
            break;
        };
        joined
            .get_or_insert_with(|| BytesMut::from(&first[..]))
            .extend_from_slice(&next);
    }
    joined.map_or(first, BytesMut::freeze)
}
