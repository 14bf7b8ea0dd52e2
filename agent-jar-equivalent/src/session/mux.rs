//! The multiplexed channel phase of a session: after both HELLOs listed `mux`, the socket
//! carries channel frames and the agent serves the controller's requests.
//!
//! A writer task owns the socket's sending half so the channel's sink is a plain bounded
//! queue; when the channel stops, the writer sends the close frame the session chose.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use steward_channel::{Channel, ChannelEnd, Side};
use steward_protocol::channel::{GoAway, GoAwayCode};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::{CancellationToken, PollSender};
use tracing::warn;

use super::{SEND_TIMEOUT, SessionEnd};
use crate::connect::printable;
use crate::services;

/// Messages queued for the socket writer; the channel bounds what it queues itself, this
/// only decouples the two tasks.
const SOCKET_QUEUE: usize = 32;

/// Why the socket's reading half stopped, noted by the reader for the session's outcome.
type Noted = Arc<Mutex<Option<SessionEnd>>>;

/// Runs the channel on `ws` until it ends; returns why.
pub async fn run<W, SendErr, RecvErr>(
    ws: W,
    idle_timeout: Option<Duration>,
    services: &services::Context,
    shutdown: &CancellationToken,
) -> SessionEnd
where
    W: Sink<Message, Error = SendErr>
        + Stream<Item = Result<Message, RecvErr>>
        + Send
        + Unpin
        + 'static,
    SendErr: std::fmt::Display + Send + 'static,
    RecvErr: std::fmt::Display + Send + 'static,
{
    let (sink, stream) = ws.split();
    let noted: Noted = Arc::default();
    let close_with: Arc<Mutex<Option<CloseFrame>>> = Arc::default();
    let (to_socket, from_channel) = mpsc::channel(SOCKET_QUEUE);
    let writer = write_socket(sink, from_channel, close_with.clone());
    let messages = read_socket(stream, idle_timeout, noted.clone());
    let (channel, incoming, driver) =
        Channel::start(PollSender::new(to_socket), messages, Side::Agent);
    services.set_controller(Some(channel.clone()));
    let serving = services::serve(incoming, services.clone());

    let session = async {
        tokio::pin!(driver);
        let end = tokio::select! {
            end = &mut driver => end,
            () = shutdown.cancelled() => {
                channel.close(GoAway { code: GoAwayCode::Shutdown, reason: "agent shutting down".into() }).await;
                set(&close_with, CloseCode::Away, "agent shutting down");
                let _ = driver.await;
                return SessionEnd::Shutdown;
            }
        };
        let noted = noted.lock().unwrap_or_else(|p| p.into_inner()).take();
        match end {
            ChannelEnd::GoAway(mut goaway) => {
                goaway.reason = printable(&goaway.reason);
                warn!(code = ?goaway.code, reason = ?goaway.reason, "The controller sent GOAWAY");
                set(&close_with, CloseCode::Normal, "");
                SessionEnd::GoAway(goaway)
            }
            ChannelEnd::Closed => SessionEnd::Shutdown,
            ChannelEnd::Lost(reason) => match noted {
                Some(end) => end,
                None if reason.starts_with("protocol error") => {
                    set(&close_with, CloseCode::Protocol, "protocol error");
                    SessionEnd::ProtocolError(reason)
                }
                None => SessionEnd::Transport(reason),
            },
        }
    };
    // The services stop with the channel: their streams fail, and running processes are
    // killed as their handlers drop.
    let (end, (), ()) = tokio::join!(session, writer, async {
        tokio::select! {
            () = serving => {}
            () = channel.closed() => {}
        }
    });
    services.set_controller(None);
    end
}

fn set(slot: &Mutex<Option<CloseFrame>>, code: CloseCode, reason: &str) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    });
}

/// Sends the channel's messages, flushing when none are waiting; then the close frame.
async fn write_socket<S, E>(
    mut sink: S,
    mut from_channel: mpsc::Receiver<Bytes>,
    close_with: Arc<Mutex<Option<CloseFrame>>>,
) where
    S: Sink<Message, Error = E> + Unpin,
    E: std::fmt::Display,
{
    let sent = async {
        while let Some(first) = from_channel.recv().await {
            sink.feed(Message::Binary(first))
                .await
                .map_err(|e| e.to_string())?;
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
        Ok::<(), String>(())
    };
    if sent.await.is_err() {
        return;
    }
    let frame = close_with.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// The socket's binary messages, for the channel. Pings and pongs only prove the controller
/// alive (the WebSocket layer answers pings while reading); silence past the idle timeout,
/// a close or a text message end the stream, noting why.
fn read_socket<St, E>(
    stream: St,
    idle: Option<Duration>,
    noted: Noted,
) -> impl Stream<Item = Result<Bytes, String>> + Send + Unpin
where
    St: Stream<Item = Result<Message, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let note = move |end: SessionEnd| {
        *noted.lock().unwrap_or_else(|p| p.into_inner()) = Some(end);
    };
    Box::pin(futures_util::stream::unfold(
        Some((stream, note)),
        move |state| async move {
            let (mut stream, note) = state?;
            loop {
                let next = match idle {
                    Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            note(SessionEnd::IdleTimeout(limit));
                            return Some((Err("idle timeout".to_owned()), None));
                        }
                    },
                    None => stream.next().await,
                };
                let item = match next {
                    None => {
                        note(SessionEnd::Closed {
                            code: None,
                            reason: "the connection closed without a close frame".into(),
                        });
                        return None;
                    }
                    Some(Err(e)) => Err(e.to_string()),
                    Some(Ok(Message::Binary(bytes))) => Ok(bytes),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        note(SessionEnd::Closed {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| printable(&f.reason)).unwrap_or_default(),
                        });
                        return None;
                    }
                    Some(Ok(Message::Text(_))) => {
                        note(SessionEnd::ProtocolError(
                            "text message on the agent channel".into(),
                        ));
                        Err("text message on the agent channel".to_owned())
                    }
                };
                let more = item.is_ok();
                return Some((item, more.then_some((stream, note))));
            }
        },
    ))
}
