//! One logical stream: a send half that spends credit, a receive half that grants it back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use steward_protocol::channel::{
    Frame, HEADER_LEN, MAX_DATA_PAYLOAD, ResetCode, write_data_header,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Inbound, Outgoing, Shared, StreamEntry};

/// Why a stream operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("stream reset by the peer ({code:?}): {reason}")]
    Reset { code: ResetCode, reason: String },
    #[error("connection lost: {0}")]
    ChannelLost(String),
    #[error("stream data over the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the stream is already finished")]
    Finished,
}

/// A buffer for [`SendHalf::send_buffer`]: the frame header's room, filled with zeros, and
/// capacity for `payload` more bytes (at most `MAX_DATA_PAYLOAD`).
pub fn data_buffer(payload: usize) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(HEADER_LEN + payload);
    buffer.resize(HEADER_LEN, 0);
    buffer
}

/// Removes the stream from the channel once both halves are gone.
struct StreamGuard {
    shared: Arc<Shared>,
    id: u32,
    /// This side sent EOF: its last DATA and EOF may still wait in the data queue.
    eof_sent: AtomicBool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.streams().remove(&self.id);
    }
}

pub(crate) fn new_pair(
    shared: &Arc<Shared>,
    id: u32,
    peer_window: u32,
) -> (StreamEntry, MuxStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let credit = Arc::new(Semaphore::new(peer_window as usize));
    let failure = Arc::new(Mutex::new(None));
    let closed = CancellationToken::new();
    let guard = Arc::new(StreamGuard {
        shared: shared.clone(),
        id,
        eof_sent: AtomicBool::new(false),
    });
    let entry = StreamEntry {
        inbound: tx,
        recv_remaining: shared.window,
        credit: credit.clone(),
        failure: failure.clone(),
        closed: closed.clone(),
    };
    let stream = MuxStream {
        send: SendHalf {
            id,
            shared: shared.clone(),
            credit,
            failure,
            closed,
            finished: false,
            guard: guard.clone(),
        },
        recv: RecvHalf {
            id,
            shared: shared.clone(),
            rx,
            held: None,
            consumed: 0,
            done: false,
            guard,
        },
    };
    (entry, stream)
}

/// A stream, both directions.
pub struct MuxStream {
    pub send: SendHalf,
    pub recv: RecvHalf,
}

impl MuxStream {
    pub fn id(&self) -> u32 {
        self.send.id
    }

    pub fn into_split(self) -> (SendHalf, RecvHalf) {
        (self.send, self.recv)
    }

    pub async fn send(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.send.send(data).await
    }

    pub async fn finish(&mut self) -> Result<(), StreamError> {
        self.send.finish().await
    }

    pub async fn recv(&mut self) -> Option<Result<Bytes, StreamError>> {
        self.recv.recv().await
    }

    /// Resets both directions.
    pub fn reset(self, code: ResetCode, reason: &str) {
        self.send.reset(code, reason);
    }
}

/// Sends DATA within the credit the peer granted.
pub struct SendHalf {
    id: u32,
    shared: Arc<Shared>,
    credit: Arc<Semaphore>,
    failure: Arc<Mutex<Option<StreamError>>>,
    closed: CancellationToken,
    finished: bool,
    guard: Arc<StreamGuard>,
}

impl SendHalf {
    fn failed(&self) -> StreamError {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| StreamError::ChannelLost(self.shared.reason()))
    }

    /// Completes when the peer resets the stream or the channel is lost, with why. Lets a
    /// side that has nothing to send or read (a running process) notice a cancel at once.
    pub async fn closed(&self) -> StreamError {
        self.closed.cancelled().await;
        self.failed()
    }

    /// A token cancelled on reset or loss, for code that cannot hold this half.
    pub fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Sends `data`, waiting for credit as needed; cut into frames of at most 64 KiB.
    ///
    /// Each frame is laid out here, in the sender's task, so the copy runs in parallel
    /// with the connection's driver rather than inside it.
    pub async fn send(&mut self, data: Bytes) -> Result<(), StreamError> {
        if self.finished {
            return Err(StreamError::Finished);
        }
        for chunk in data.chunks(MAX_DATA_PAYLOAD) {
            let mut buffer = data_buffer(chunk.len());
            buffer.extend_from_slice(chunk);
            self.send_framed(buffer).await?;
        }
        Ok(())
    }

    /// Sends a buffer made by [`data_buffer`] whose payload follows the reserved header: the
    /// header is written in place and the buffer goes to the socket without a copy.
    pub async fn send_buffer(&mut self, mut buffer: BytesMut) -> Result<(), StreamError> {
        let payload = buffer.len().saturating_sub(HEADER_LEN);
        if buffer.len() < HEADER_LEN || payload > MAX_DATA_PAYLOAD {
            // Not laid out by `data_buffer`: take the copying path.
            let data = if buffer.len() < HEADER_LEN {
                Bytes::new()
            } else {
                buffer.split_off(HEADER_LEN).freeze()
            };
            return self.send(data).await;
        }
        if self.finished {
            return Err(StreamError::Finished);
        }
        self.send_framed(buffer).await
    }

    /// Waits for credit for `buffer`'s payload, writes the header and queues it.
    async fn send_framed(&mut self, mut buffer: BytesMut) -> Result<(), StreamError> {
        let payload = buffer.len() - HEADER_LEN;
        if payload == 0 {
            return Ok(());
        }
        let permit = self
            .credit
            .acquire_many(payload as u32)
            .await
            .map_err(|_| self.failed())?;
        permit.forget();
        write_data_header(&mut buffer, self.id);
        self.shared
            .data_tx
            .send(Outgoing::Encoded(buffer.freeze()))
            .await
            .map_err(|_| StreamError::ChannelLost(self.shared.reason()))
    }

    /// Sends EOF: no more data in this direction.
    pub async fn finish(&mut self) -> Result<(), StreamError> {
        if self.finished {
            return Ok(());
        }
        if self.credit.is_closed() {
            return Err(self.failed());
        }
        self.finished = true;
        self.guard.eof_sent.store(true, Ordering::Release);
        // EOF shares the data queue so it cannot overtake this stream's DATA.
        self.shared
            .data_tx
            .send(Outgoing::Frame(Box::new(Frame::Eof { stream: self.id })))
            .await
            .map_err(|_| StreamError::ChannelLost(self.shared.reason()))
    }

    /// Aborts the stream, telling the peer why.
    pub fn reset(mut self, code: ResetCode, reason: &str) {
        self.finished = true;
        let reason: String = reason.chars().take(200).collect();
        self.shared.try_control(Frame::Reset {
            stream: self.id,
            code,
            reason,
        });
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        if !self.finished && !self.credit.is_closed() {
            self.shared.try_control(Frame::Reset {
                stream: self.id,
                code: ResetCode::Cancelled,
                reason: "sender went away".into(),
            });
        }
    }
}

/// Receives DATA and grants credit back as it is consumed.
pub struct RecvHalf {
    id: u32,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Inbound>,
    /// What [`RecvHalf::try_recv`] took off the queue and was not DATA: `recv` returns it.
    held: Option<Inbound>,
    consumed: u32,
    done: bool,
    guard: Arc<StreamGuard>,
}

impl RecvHalf {
    /// The next chunk; `None` after EOF.
    pub async fn recv(&mut self) -> Option<Result<Bytes, StreamError>> {
        if self.done {
            return None;
        }
        // Chunks taken by `try_recv` are granted back here, where waiting is allowed.
        if self.consumed >= self.shared.window / 2 {
            self.grant().await;
        }
        let item = match self.held.take() {
            Some(held) => Some(held),
            None => self.rx.recv().await,
        };
        match item {
            Some(Inbound::Data(bytes)) => {
                self.consumed += bytes.len() as u32;
                if self.consumed >= self.shared.window / 2 {
                    self.grant().await;
                }
                Some(Ok(bytes))
            }
            Some(Inbound::Eof) => {
                self.done = true;
                None
            }
            Some(Inbound::Reset(code, reason)) => {
                self.done = true;
                Some(Err(StreamError::Reset { code, reason }))
            }
            Some(Inbound::Lost(reason)) => {
                self.done = true;
                Some(Err(StreamError::ChannelLost(reason)))
            }
            None => {
                self.done = true;
                Some(Err(StreamError::ChannelLost(self.shared.reason())))
            }
        }
    }

    /// A chunk that has already arrived, without waiting; `None` when there is none (or
    /// the stream has ended or failed: the next [`RecvHalf::recv`] says so). Lets a reader
    /// take what is queued in one go. Its credit goes back to the peer at the next `recv`,
    /// so a reader calls `recv` again after a run of these, as it does anyway to wait.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        if self.done || self.held.is_some() {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Inbound::Data(bytes)) => {
                self.consumed += bytes.len() as u32;
                Some(bytes)
            }
            Ok(other) => {
                self.held = Some(other);
                None
            }
            // Empty, or the channel is gone: `recv` reports the latter.
            Err(_) => None,
        }
    }

    /// Reads everything until EOF, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Bytes, StreamError> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.recv().await {
            let chunk = chunk?;
            if all.len() + chunk.len() > limit {
                self.done = true;
                self.shared.try_control(Frame::Reset {
                    stream: self.id,
                    code: ResetCode::ProtocolError,
                    reason: format!("response over {limit} bytes"),
                });
                return Err(StreamError::TooLarge(limit));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    async fn grant(&mut self) {
        let increment = std::mem::take(&mut self.consumed);
        if let Some(entry) = self.shared.streams().get_mut(&self.id) {
            entry.recv_remaining = entry.recv_remaining.saturating_add(increment);
        }
        let _ = self
            .shared
            .control_tx
            .send(Box::new(Frame::Window {
                stream: self.id,
                increment,
            }))
            .await;
    }
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let reset = Frame::Reset {
            stream: self.id,
            code: ResetCode::Cancelled,
            reason: "reader went away".into(),
        };
        if !self.guard.eof_sent.load(Ordering::Acquire) {
            self.shared.try_control(reset);
            return;
        }
        // Our answer (DATA, then EOF) may still be queued: the RESET that stops the peer's
        // sending must not overtake it, so it goes through the data queue behind it.
        if let Err(mpsc::error::TrySendError::Full(reset)) = self
            .shared
            .data_tx
            .try_send(Outgoing::Frame(Box::new(reset)))
        {
            let data_tx = self.shared.data_tx.clone();
            tokio::spawn(async move {
                let _ = data_tx.send(reset).await;
            });
        }
    }
}
