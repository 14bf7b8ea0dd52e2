//! The driver: one reader and one writer over the connection, in one future.
//!
//! The writer sends control frames before data and flushes once the queues are empty, so
//! bulk transfers batch well and small frames do not wait behind them. The reader applies
//! each frame to the stream it names.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use steward_protocol::channel::{Frame, GoAway, GoAwayCode, ResetCode};
use tokio::sync::mpsc;

use crate::stream::{self, StreamError};
use crate::{
    ChannelEnd, Inbound, IncomingStream, MAX_CREDIT, MAX_STREAMS, MIN_WINDOW, Outgoing, Shared,
};

/// Frames written before a flush when more are ready: enough to fill a socket buffer.
const WRITE_BATCH: usize = 32;
/// How long a failed write waits for the reader to reach a GOAWAY the peer sent.
const READ_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// How long the writer gets to send the GOAWAY(ProtocolError) that explains a protocol
/// error, before the connection is dropped anyway.
const WRITE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

pub(crate) async fn run<Tx, Rx, TxErr, RxErr>(
    shared: Arc<Shared>,
    mut sink: Tx,
    mut messages: Rx,
    mut data_rx: mpsc::Receiver<Outgoing>,
    mut control_rx: mpsc::Receiver<Box<Frame>>,
    accept_tx: mpsc::Sender<Box<IncomingStream>>,
) -> ChannelEnd
where
    Tx: Sink<Bytes, Error = TxErr> + Send + Unpin,
    Rx: Stream<Item = Result<Bytes, RxErr>> + Send + Unpin,
    TxErr: std::fmt::Display,
    RxErr: std::fmt::Display,
{
    // Cancelled when the reader found a protocol error: the writer sends what control
    // frames are queued (the GOAWAY saying why) and stops.
    let goaway_queued = tokio_util::sync::CancellationToken::new();
    let writer = async {
        loop {
            let message = tokio::select! {
                biased;
                frame = control_rx.recv() => frame.map(|f| Bytes::from(f.encode())),
                _ = async {
                    tokio::select! {
                        _ = shared.closing.cancelled() => {}
                        _ = goaway_queued.cancelled() => {}
                    }
                } => {
                    while let Ok(frame) = control_rx.try_recv() {
                        sink.feed(Bytes::from(frame.encode())).await.map_err(|e| e.to_string())?;
                    }
                    sink.flush().await.map_err(|e| e.to_string())?;
                    return Ok::<(), String>(());
                }
                data = data_rx.recv() => data.map(Outgoing::into_message),
            };
            let Some(message) = message else {
                return Ok(());
            };
            sink.feed(message)
                .await
                .map_err(|e| format!("send failed: {e}"))?;
            for _ in 0..WRITE_BATCH {
                let next = match control_rx.try_recv() {
                    Ok(frame) => Bytes::from(frame.encode()),
                    Err(_) => match data_rx.try_recv() {
                        Ok(data) => data.into_message(),
                        Err(_) => break,
                    },
                };
                sink.feed(next)
                    .await
                    .map_err(|e| format!("send failed: {e}"))?;
            }
            sink.flush()
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
    };
    let reader = async {
        loop {
            let message = match messages.next().await {
                None => return ChannelEnd::Lost("connection closed".into()),
                Some(Err(e)) => return ChannelEnd::Lost(e.to_string()),
                Some(Ok(message)) => message,
            };
            match Frame::decode_bytes(message) {
                Ok(None) => {}
                Ok(Some(Frame::GoAway(goaway))) => return ChannelEnd::GoAway(goaway),
                Ok(Some(frame)) => {
                    if let Err(why) = apply(&shared, frame, &accept_tx) {
                        protocol_error(&shared, &why);
                        goaway_queued.cancel();
                        return ChannelEnd::Lost(format!("protocol error: {why}"));
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    protocol_error(&shared, &why);
                    goaway_queued.cancel();
                    return ChannelEnd::Lost(format!("protocol error: {why}"));
                }
            }
        }
    };
    tokio::pin!(reader, writer);
    let end = tokio::select! {
        end = &mut reader => {
            if goaway_queued.is_cancelled() {
                let _ = tokio::time::timeout(WRITE_GRACE, &mut writer).await;
            }
            end
        }
        written = &mut writer => match written {
            Ok(()) => ChannelEnd::Closed,
            // A failed write usually means the peer hung up, maybe right after a GOAWAY
            // still waiting to be read: give the reader a moment to tell why.
            Err(e) => match tokio::time::timeout(READ_GRACE, &mut reader).await {
                Ok(end @ ChannelEnd::GoAway(_)) => end,
                _ => ChannelEnd::Lost(e),
            },
        },
    };
    // After a local close, the peer hanging up or a failed last write is the expected end.
    let end = if shared.closing.is_cancelled() && !matches!(end, ChannelEnd::GoAway(_)) {
        ChannelEnd::Closed
    } else {
        end
    };
    let reason = match &end {
        ChannelEnd::GoAway(g) => format!("the peer went away: {}", g.reason),
        ChannelEnd::Closed => shared.reason(),
        ChannelEnd::Lost(why) => why.clone(),
    };
    shared.shut(reason);
    end
}

/// Queues a GOAWAY saying why; the writer may or may not get it out before the end.
fn protocol_error(shared: &Shared, why: &str) {
    tracing::warn!(error = ?why, "channel protocol error");
    shared.try_control(Frame::GoAway(GoAway {
        code: GoAwayCode::ProtocolError,
        reason: why.chars().take(200).collect(),
    }));
}

fn reset(shared: &Shared, stream: u32, code: ResetCode, reason: &str) {
    shared.try_control(Frame::Reset {
        stream,
        code,
        reason: reason.into(),
    });
}

/// Applies one frame; `Err` is a connection-level protocol error.
fn apply(
    shared: &Arc<Shared>,
    frame: Frame,
    accept_tx: &mpsc::Sender<Box<IncomingStream>>,
) -> Result<(), String> {
    match frame {
        Frame::Hello(_) => return Err("HELLO after the channel started".into()),
        // The reader ends the channel on GOAWAY before calling here.
        Frame::GoAway(_) => {}
        Frame::Open { stream: id, open } => {
            if shared.owns(id) {
                return Err(format!(
                    "OPEN with stream id {id}, which belongs to this side"
                ));
            }
            if !shared.accepting.load(Ordering::Acquire) {
                reset(shared, id, ResetCode::Refused, "the channel is closing");
                return Ok(());
            }
            if open.window < MIN_WINDOW {
                reset(
                    shared,
                    id,
                    ResetCode::ProtocolError,
                    "window below one frame",
                );
                return Ok(());
            }
            let mut streams = shared.streams();
            if streams.contains_key(&id) {
                return Err(format!("OPEN for stream {id}, which is open"));
            }
            if streams.len() >= MAX_STREAMS {
                drop(streams);
                reset(shared, id, ResetCode::TooManyStreams, "too many streams");
                return Ok(());
            }
            let (entry, stream) = stream::new_pair(shared, id, open.window);
            streams.insert(id, entry);
            drop(streams);
            if let Err(full) = accept_tx.try_send(Box::new(IncomingStream {
                header: open.header,
                stream,
            })) {
                // Dropping the stream resets it and removes the entry.
                drop(full);
                tracing::debug!(stream = id, "accept backlog full");
            }
        }
        Frame::Data {
            stream: id,
            payload,
        } => {
            let mut streams = shared.streams();
            let Some(entry) = streams.get_mut(&id) else {
                return Ok(());
            };
            let len = payload.len() as u32;
            if len > entry.recv_remaining {
                let entry = streams.remove(&id).expect("present");
                drop(streams);
                let why = "DATA beyond the granted window";
                let _ = entry
                    .inbound
                    .send(Inbound::Reset(ResetCode::ProtocolError, why.into()));
                fail(&entry, ResetCode::ProtocolError, why);
                reset(shared, id, ResetCode::ProtocolError, why);
                return Ok(());
            }
            entry.recv_remaining -= len;
            let _ = entry.inbound.send(Inbound::Data(payload));
        }
        Frame::Eof { stream: id } => {
            if let Some(entry) = shared.streams().get(&id) {
                let _ = entry.inbound.send(Inbound::Eof);
            }
        }
        Frame::Reset {
            stream: id,
            code,
            reason,
        } => {
            if let Some(entry) = shared.streams().remove(&id) {
                let _ = entry.inbound.send(Inbound::Reset(code, reason.clone()));
                fail(&entry, code, &reason);
            }
        }
        Frame::Window {
            stream: id,
            increment,
        } => {
            let streams = shared.streams();
            let Some(entry) = streams.get(&id) else {
                return Ok(());
            };
            if entry.credit.available_permits() + increment as usize > MAX_CREDIT {
                drop(streams);
                let why = format!("WINDOW raises credit over {MAX_CREDIT} bytes");
                if let Some(entry) = shared.streams().remove(&id) {
                    let _ = entry
                        .inbound
                        .send(Inbound::Reset(ResetCode::ProtocolError, why.clone()));
                    fail(&entry, ResetCode::ProtocolError, &why);
                }
                reset(shared, id, ResetCode::ProtocolError, &why);
                return Ok(());
            }
            entry.credit.add_permits(increment as usize);
        }
        Frame::Ping { nonce } => {
            shared.try_control(Frame::Pong { nonce });
        }
        Frame::Pong { nonce } => {
            if let Some(waiter) = shared
                .pings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&nonce)
            {
                let _ = waiter.send(());
            }
        }
    }
    Ok(())
}

fn fail(entry: &crate::StreamEntry, code: ResetCode, reason: &str) {
    *entry.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(StreamError::Reset {
        code,
        reason: reason.into(),
    });
    entry.credit.close();
    entry.closed.cancel();
}
