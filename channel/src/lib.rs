//! The Steward channel at run time: many logical streams over one agent connection, with
//! per-stream credit-based flow control, typed calls and round-trip pings.
//!
//! - [`Channel::start`] takes the connection as a `Sink`/`Stream` of whole messages (binary
//!   WebSocket messages in production, in-memory pipes in tests) and returns a handle, the
//!   stream of streams the peer opens, and the driver future that moves frames.
//! - [`stream::MuxStream`] is one stream: `send`/`recv`/`finish`, split into halves for
//!   concurrent use. A reader that stops reading stops its peer after one window.
//! - [`call`] runs typed request/response exchanges on top of streams; [`steps`] the
//!   caller's side of durable build steps.
//!
//! Frame formats live in `steward_protocol::channel`; this crate owns the state machines.

pub mod allocator;
pub mod call;
mod driver;
pub mod steps;
pub mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use steward_protocol::channel::{Frame, GoAway, MAX_DATA_PAYLOAD, Open, ResetCode};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use stream::{MuxStream, RecvHalf, SendHalf, StreamError, data_buffer};

/// Default receive window per stream. Large enough to keep loopback transfers at full speed
/// (the window covers many round trips), small enough that a stalled reader holds little.
pub const DEFAULT_WINDOW: u32 = 1024 * 1024;
/// Smallest window a peer may announce: one full DATA frame.
pub const MIN_WINDOW: u32 = MAX_DATA_PAYLOAD as u32;
/// Largest send credit a stream may accumulate; more is a peer bug or an attack.
pub const MAX_CREDIT: usize = 64 * 1024 * 1024;
/// Most streams open at once on one channel.
pub const MAX_STREAMS: usize = 1024;
/// Streams the peer opened that wait for the local side to accept them.
pub const ACCEPT_BACKLOG: usize = 64;
/// DATA frames queued for the socket. Together with per-stream credit this bounds what waits
/// in memory; a small queue keeps an interactive frame close to the head.
pub const DATA_QUEUE: usize = 8;
/// Control frames (OPEN, WINDOW, RESET, PING, PONG, GOAWAY) queued for the socket; they go
/// before data. EOF travels with the data so it never overtakes it.
pub const CONTROL_QUEUE: usize = 256;
/// How long a ping waits for its pong.
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Which side of the connection this is; it decides stream id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opens odd stream ids.
    Controller,
    /// Opens even stream ids.
    Agent,
}

/// Why the channel as a whole stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel closed: {0}")]
    Closed(String),
    #[error("too many streams open ({MAX_STREAMS})")]
    TooManyStreams,
    #[error("no pong within {}s", PING_TIMEOUT.as_secs())]
    PingTimeout,
}

/// What waits in the data queue: a frame, or a DATA message its sender already framed.
///
/// Frames are boxed here and in the control and accept queues: a queue allocates room for
/// 32 messages when it is created, and every connection has three, so the size of a
/// message is paid 96 times per idle agent.
pub(crate) enum Outgoing {
    Frame(Box<Frame>),
    Encoded(Bytes),
}

impl Outgoing {
    pub(crate) fn into_message(self) -> Bytes {
        match self {
            Outgoing::Frame(frame) => Bytes::from(frame.encode()),
            Outgoing::Encoded(message) => message,
        }
    }
}

/// What travels from the driver to a stream's receive half.
#[derive(Debug)]
pub(crate) enum Inbound {
    Data(Bytes),
    Eof,
    Reset(ResetCode, String),
    Lost(String),
}

/// Per-stream state the driver and the halves share.
pub(crate) struct StreamEntry {
    /// Bounded by the window: the driver refuses DATA past `recv_remaining`.
    pub inbound: mpsc::UnboundedSender<Inbound>,
    /// DATA bytes the peer may still send before our next WINDOW.
    pub recv_remaining: u32,
    /// Our send credit, in bytes.
    pub credit: Arc<Semaphore>,
    /// Why the stream failed, for the send half to report once its credit is closed.
    pub failure: Arc<Mutex<Option<StreamError>>>,
    /// Cancelled when the peer resets the stream or the channel is lost.
    pub closed: CancellationToken,
}

pub(crate) struct Shared {
    side: Side,
    next_id: AtomicU32,
    streams: Mutex<HashMap<u32, StreamEntry>>,
    data_tx: mpsc::Sender<Outgoing>,
    control_tx: mpsc::Sender<Box<Frame>>,
    /// Cancelled once the channel is dead.
    closed: CancellationToken,
    /// Cancelled when this side asked to close: the writer sends what is queued, then stops.
    closing: CancellationToken,
    close_reason: Mutex<Option<String>>,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    window: u32,
    accepting: AtomicBool,
}

impl Shared {
    pub(crate) fn streams(&self) -> MutexGuard<'_, HashMap<u32, StreamEntry>> {
        // Map updates are single statements; a panicking holder cannot leave it torn.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reason(&self) -> String {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "channel closed".into())
    }

    /// Marks the channel dead and fails every stream and ping with `reason`.
    pub(crate) fn shut(&self, reason: String) {
        {
            let mut r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason.clone());
            }
        }
        self.accepting.store(false, Ordering::Release);
        for (_, entry) in self.streams().drain() {
            let _ = entry.inbound.send(Inbound::Lost(reason.clone()));
            *entry.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(StreamError::ChannelLost(reason.clone()));
            entry.credit.close();
            entry.closed.cancel();
        }
        self.pings.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.closed.cancel();
    }

    /// Queues a control frame without waiting; `false` when the queue is full or closed.
    pub(crate) fn try_control(&self, frame: Frame) -> bool {
        self.control_tx.try_send(Box::new(frame)).is_ok()
    }

    pub(crate) fn owns(&self, id: u32) -> bool {
        match self.side {
            Side::Controller => id & 1 == 1,
            Side::Agent => id & 1 == 0,
        }
    }
}

/// A handle on a running channel; cheap to clone.
#[derive(Clone)]
pub struct Channel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("closed", &self.is_closed())
            .field("open_streams", &self.open_streams())
            .finish()
    }
}

/// A stream the peer opened, with the request it carried.
pub struct IncomingStream {
    pub header: Bytes,
    pub stream: MuxStream,
}

/// Streams the peer opens, in order.
pub struct Incoming {
    rx: mpsc::Receiver<Box<IncomingStream>>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the channel is closed.
    pub async fn accept(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await.map(|stream| *stream)
    }
}

/// How the channel ended, as the driver returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEnd {
    /// The peer sent GOAWAY.
    GoAway(GoAway),
    /// This side closed it ([`Channel::close`]).
    Closed,
    /// The connection failed or ended; the text says how.
    Lost(String),
}

impl Channel {
    /// Starts a channel over a connection whose messages are whole frames. Run the returned
    /// driver future to completion (it ends when the connection does); the channel and every
    /// stream fail with its reason then.
    pub fn start<Tx, Rx, TxErr, RxErr>(
        sink: Tx,
        messages: Rx,
        side: Side,
    ) -> (
        Channel,
        Incoming,
        impl std::future::Future<Output = ChannelEnd> + Send,
    )
    where
        Tx: Sink<Bytes, Error = TxErr> + Send + Unpin + 'static,
        Rx: Stream<Item = Result<Bytes, RxErr>> + Send + Unpin + 'static,
        TxErr: std::fmt::Display + Send,
        RxErr: std::fmt::Display + Send,
    {
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (accept_tx, accept_rx) = mpsc::channel(ACCEPT_BACKLOG);
        let shared = Arc::new(Shared {
            side,
            next_id: AtomicU32::new(if side == Side::Controller { 1 } else { 2 }),
            streams: Mutex::default(),
            data_tx,
            control_tx,
            closed: CancellationToken::new(),
            closing: CancellationToken::new(),
            close_reason: Mutex::default(),
            pings: Mutex::default(),
            window: DEFAULT_WINDOW,
            accepting: AtomicBool::new(true),
        });
        let driver = driver::run(
            shared.clone(),
            sink,
            messages,
            data_rx,
            control_rx,
            accept_tx,
        );
        (Channel { shared }, Incoming { rx: accept_rx }, driver)
    }

    /// Opens a stream carrying `header` (a service request).
    pub async fn open(&self, header: Bytes) -> Result<MuxStream, ChannelError> {
        if self.shared.closed.is_cancelled() {
            return Err(ChannelError::Closed(self.shared.reason()));
        }
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let stream = {
            let mut streams = self.shared.streams();
            if streams.len() >= MAX_STREAMS {
                return Err(ChannelError::TooManyStreams);
            }
            // The peer's window is unknown until it sends WINDOW; the protocol lets the
            // opener send a first window's worth at once, like HTTP/2's initial window.
            let (entry, stream) = stream::new_pair(&self.shared, id, DEFAULT_WINDOW);
            streams.insert(id, entry);
            stream
        };
        let open = Frame::Open {
            stream: id,
            open: Open {
                window: self.shared.window,
                header,
            },
        };
        self.shared
            .control_tx
            .send(Box::new(open))
            .await
            .map_err(|_| ChannelError::Closed(self.shared.reason()))?;
        Ok(stream)
    }

    /// Measures a round trip with PING/PONG.
    pub async fn ping(&self) -> Result<Duration, ChannelError> {
        let nonce: u64 = rand::random();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(nonce, tx);
        let started = tokio::time::Instant::now();
        if self
            .shared
            .control_tx
            .send(Box::new(Frame::Ping { nonce }))
            .await
            .is_err()
        {
            return Err(ChannelError::Closed(self.shared.reason()));
        }
        match tokio::time::timeout(PING_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err(ChannelError::Closed(self.shared.reason())),
            Err(_) => {
                self.shared
                    .pings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&nonce);
                Err(ChannelError::PingTimeout)
            }
        }
    }

    /// Sends GOAWAY and stops the channel; every stream fails with `goaway.reason`.
    pub async fn close(&self, goaway: GoAway) {
        let reason = goaway.reason.clone();
        let _ = self
            .shared
            .control_tx
            .send(Box::new(Frame::GoAway(goaway)))
            .await;
        self.shared.closed_by_us(reason);
    }

    /// Completes when the channel has stopped.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.shared.streams().len()
    }
}

impl Shared {
    /// A local close: the writer sends what is queued (the GOAWAY) and stops.
    fn closed_by_us(&self, reason: String) {
        *self.close_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.closing.cancel();
    }
}
