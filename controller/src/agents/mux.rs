//! The multiplexed channel phase of an agent session: after both HELLOs listed `mux`, the
//! socket carries channel frames. The channel handle is published in the registry so CLI
//! commands can open streams to the agent.
//!
//! Alongside the channel, `monitors::watch` samples the node until the channel ends, and
//! `builds::orphans::reconcile` kills and removes steps of builds that are no longer running;
//! `terminals::runner::reconcile` stops terminals the node should not run.
//!
//! A writer task owns the socket's sending half: it forwards the channel's messages, adds
//! the keepalive pings, and sends the close frame the session chose once the channel ends.

use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use steward_channel::{Channel, ChannelEnd, Side};
use steward_protocol::channel::{GoAway, GoAwayCode};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::registry::Registration;
use super::session::SEND_TIMEOUT;
use crate::keepalive::{Keepalive, Tick};
use crate::state::AppState;

/// Messages queued for the socket writer; the channel bounds what it queues itself, this
/// only decouples the two tasks.
const SOCKET_QUEUE: usize = 32;

type CloseSlot = Arc<Mutex<Option<(u16, String)>>>;

/// Runs the channel until it ends; returns the reason the node went offline.
pub async fn run(socket: WebSocket, registration: &mut Registration, state: &AppState) -> String {
    let (sink, stream) = socket.split();
    let close_with: CloseSlot = Arc::default();
    let idle_noted: Arc<Mutex<Option<String>>> = Arc::default();
    let (to_socket, from_channel) = mpsc::channel(SOCKET_QUEUE);
    let writer = write_socket(
        sink,
        from_channel,
        close_with.clone(),
        state.config.ws_ping_interval,
    );
    let messages = read_socket(
        stream,
        state.config.ws_idle_timeout,
        idle_noted.clone(),
        close_with.clone(),
    );
    let (channel, incoming, driver) =
        Channel::start(PollSender::new(to_socket), messages, Side::Controller);
    state.agents.set_channel(
        &registration.node,
        registration.connection_id,
        channel.clone(),
    );
    let serving = super::calls::serve(state.clone(), registration.node.clone(), incoming);
    let host_key = crate::ssh::host_keys::learn(state, &registration.node, &channel);
    let monitoring = super::monitors::watch(
        channel.clone(),
        state.clone(),
        registration.node.clone(),
        registration.connection_id,
    );

    let session = async {
        tokio::pin!(driver);
        let goaway = tokio::select! {
            end = &mut driver => return describe(end, &idle_noted, &close_with),
            goaway = registration.control.recv() => goaway.unwrap_or(GoAway { code: GoAwayCode::Shutdown, reason: "controller stopping".into() }),
            () = state.shutdown.cancelled() => GoAway { code: GoAwayCode::Shutdown, reason: "controller shutting down".into() },
        };
        let code = if goaway.code == GoAwayCode::Shutdown {
            close_code::AWAY
        } else {
            close_code::NORMAL
        };
        set(&close_with, code, &goaway.reason);
        let reason = goaway.reason.clone();
        channel.close(goaway).await;
        let _ = driver.await;
        reason
    };
    let node = registration.node.clone();
    let orphans = crate::builds::orphans::reconcile(state, &node, &channel);
    let terminals = crate::terminals::runner::reconcile(state, &node, &channel);
    let (reason, (), (), (), (), (), ()) = tokio::join!(
        session, writer, serving, monitoring, orphans, host_key, terminals
    );
    reason
}

/// The node's offline reason for how the channel ended.
fn describe(end: ChannelEnd, idle_noted: &Mutex<Option<String>>, close_with: &CloseSlot) -> String {
    if let Some(idle) = idle_noted.lock().unwrap_or_else(|p| p.into_inner()).take() {
        set(close_with, close_code::AWAY, "idle timeout");
        return idle;
    }
    match end {
        ChannelEnd::GoAway(g) => format!("agent went away: {}", g.reason),
        ChannelEnd::Closed => "connection closed".into(),
        ChannelEnd::Lost(why) if why.starts_with("protocol error") => {
            // The socket reader may have chosen a more precise code (1003 for text).
            let mut slot = close_with.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some((close_code::PROTOCOL, "protocol error".into()));
            }
            why
        }
        ChannelEnd::Lost(why) => why,
    }
}

fn set(slot: &CloseSlot, code: u16, reason: &str) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, close_reason(reason)));
}

/// A close reason that fits the 123 bytes a close frame allows, cut at a character boundary.
pub fn close_reason(reason: &str) -> String {
    const MAX_CLOSE_REASON: usize = 123;
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Sends the channel's messages and the keepalive pings, flushing when none are waiting;
/// when the channel's sink is dropped, sends the chosen close frame.
async fn write_socket(
    mut sink: SplitSink<WebSocket, Message>,
    mut from_channel: mpsc::Receiver<Bytes>,
    close_with: CloseSlot,
    ping_interval: Option<std::time::Duration>,
) {
    let mut keepalive = Keepalive::new(ping_interval, None);
    let sent = async {
        loop {
            let first = tokio::select! {
                message = from_channel.recv() => match message {
                    Some(m) => Message::Binary(m),
                    None => return Ok::<(), String>(()),
                },
                tick = keepalive.tick() => match tick {
                    Tick::SendPing => Message::Ping(Bytes::new()),
                    Tick::IdleTimeout => continue,
                },
            };
            sink.feed(first).await.map_err(|e| e.to_string())?;
            while let Ok(more) = from_channel.try_recv() {
                sink.feed(Message::Binary(more))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tokio::time::timeout(SEND_TIMEOUT, sink.flush())
                .await
                .map_err(|_| "write stalled".to_owned())?
                .map_err(|e| e.to_string())?;
        }
    };
    if sent.await.is_err() {
        return;
    }
    let frame = close_with.lock().unwrap_or_else(|p| p.into_inner()).take();
    let frame = frame.map(|(code, reason)| CloseFrame {
        code,
        reason: reason.into(),
    });
    let _ = tokio::time::timeout(SEND_TIMEOUT, async {
        if sink.send(Message::Close(frame)).await.is_err() {
            // The agent closed first: flush the close frame tungstenite queued to answer it.
            let _ = sink.close().await;
        }
    })
    .await;
}

/// The socket's binary messages, for the channel. Pings and pongs prove the agent alive;
/// silence past the idle timeout, a close, a text message (close 1003) or a broken WebSocket
/// (close 1002 or 1009, see [`crate::ws_close`]) end the stream; the close code goes into
/// `close_with` for the writer.
fn read_socket(
    stream: SplitStream<WebSocket>,
    idle: Option<std::time::Duration>,
    idle_noted: Arc<Mutex<Option<String>>>,
    close_with: CloseSlot,
) -> impl Stream<Item = Result<Bytes, String>> + Send + Unpin {
    Box::pin(futures_util::stream::unfold(Some(stream), move |state| {
        let idle_noted = idle_noted.clone();
        let close_with = close_with.clone();
        async move {
            let mut stream = state?;
            loop {
                let next = match idle {
                    Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let why = format!("no answer for {}s (idle timeout)", limit.as_secs());
                            *idle_noted.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(why.clone());
                            return Some((Err(why), None));
                        }
                    },
                    None => stream.next().await,
                };
                let item = match next {
                    None => return None,
                    Some(Err(e)) => match crate::ws_close::for_receive_error(&e) {
                        Some((code, what)) => {
                            set(&close_with, code, what);
                            Err(format!("protocol error: {e}"))
                        }
                        None => Err(format!("connection error: {e}")),
                    },
                    Some(Ok(Message::Binary(bytes))) => Ok(bytes),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame
                            .map(|f| format!(" ({} {})", f.code, f.reason))
                            .unwrap_or_default();
                        return Some((Err(format!("agent closed the connection{why}")), None));
                    }
                    Some(Ok(Message::Text(_))) => {
                        set(
                            &close_with,
                            close_code::UNSUPPORTED,
                            "text messages are not part of the agent protocol",
                        );
                        Err("protocol error: text message on the agent channel".to_owned())
                    }
                };
                let more = item.is_ok();
                return Some((item, more.then_some(stream)));
            }
        }
    }))
}
