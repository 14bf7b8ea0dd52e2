//! Recordings of SSH sessions: what a shell or command showed, what was typed into a
//! terminal, its resizes; SFTP sessions and forwarded connections as markers only. The
//! agent is where a session's bytes are plain, so it records them and sends them to the
//! controller (`AgentCall::SshRecording`), which writes the asciicast file and says first
//! whether this node's sessions are recorded at all.
//!
//! A recording never holds up its session: events wait in a queue of at most
//! [`MAX_QUEUED`] bytes, and what does not fit is counted and told in a marker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use steward_protocol::agent_calls::{self, AgentCall, AgentReply, RecordEvent, SshRecordingStart};
use tokio::sync::mpsc;

use crate::services::Context;

/// Bytes of events waiting for the controller before more are dropped.
pub const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Most event bytes in one DATA frame.
const BATCH: usize = 16 * 1024;
/// How long the recorder waits for a connection to the controller, and for its answer.
const PATIENCE: Duration = Duration::from_secs(10);

/// A session's recorder; cheap to clone. Events go nowhere once the controller said no.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::UnboundedSender<RecordEvent>,
    queued: Arc<AtomicUsize>,
    dropped: AtomicU64,
    off: Arc<AtomicBool>,
    started: Instant,
}

impl Recorder {
    /// Starts recording a session: asks the controller, then sends what comes.
    pub fn start(context: &Context, start: SshRecordingStart) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let off = Arc::new(AtomicBool::new(false));
        let context = context.clone();
        let task_queued = queued.clone();
        let task_off = off.clone();
        tokio::spawn(async move {
            send(context, start, rx, task_queued, task_off.clone()).await;
            task_off.store(true, Ordering::Relaxed);
        });
        Recorder {
            inner: Arc::new(Inner {
                tx,
                queued,
                dropped: AtomicU64::new(0),
                off,
                started: Instant::now(),
            }),
        }
    }

    fn event(&self, code: u8, data: &[u8]) {
        let inner = &self.inner;
        if inner.off.load(Ordering::Relaxed) {
            return;
        }
        if inner.queued.load(Ordering::Relaxed) + data.len() > MAX_QUEUED {
            inner
                .dropped
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            return;
        }
        let micros = inner.started.elapsed().as_micros() as u64;
        let dropped = inner.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let text =
                format!("{dropped} bytes were not recorded: the controller was not keeping up");
            self.push(RecordEvent {
                micros,
                code: b'm',
                data: text.into_bytes(),
            });
        }
        self.push(RecordEvent {
            micros,
            code,
            data: data.to_vec(),
        });
    }

    fn push(&self, event: RecordEvent) {
        self.inner
            .queued
            .fetch_add(event.data.len(), Ordering::Relaxed);
        let _ = self.inner.tx.send(event);
    }

    pub fn output(&self, data: &[u8]) {
        self.event(b'o', data);
    }

    pub fn input(&self, data: &[u8]) {
        self.event(b'i', data);
    }

    pub fn resize(&self, cols: u32, rows: u32) {
        self.event(b'r', format!("{cols}x{rows}").as_bytes());
    }

    pub fn marker(&self, text: &str) {
        self.event(b'm', text.as_bytes());
    }
}

async fn send(
    context: Context,
    start: SshRecordingStart,
    mut rx: mpsc::UnboundedReceiver<RecordEvent>,
    queued: Arc<AtomicUsize>,
    off: Arc<AtomicBool>,
) {
    let Some(channel) = context.controller(PATIENCE).await else {
        return;
    };
    let header = Bytes::from(agent_calls::encode_call(&AgentCall::SshRecording(start)));
    let Ok(mut stream) = channel.open(header).await else {
        return;
    };
    let answer = tokio::time::timeout(PATIENCE, stream.recv()).await;
    let go = match answer {
        Ok(Some(Ok(reply))) => matches!(agent_calls::decode_reply(&reply), Ok(AgentReply::Done)),
        _ => false,
    };
    if !go {
        // Not recorded: say so to the producers, and let go of what they queued.
        off.store(true, Ordering::Relaxed);
        return;
    }
    while let Some(first) = rx.recv().await {
        let mut size = first.data.len();
        let mut batch = vec![first];
        while size < BATCH
            && let Ok(event) = rx.try_recv()
        {
            size += event.data.len();
            batch.push(event);
        }
        queued.fetch_sub(size, Ordering::Relaxed);
        let frame = steward_protocol::services::encode(&batch);
        if stream.send(Bytes::from(frame)).await.is_err() {
            return;
        }
    }
    let _ = stream.finish().await;
    // The controller closes its side once it has written everything.
    let _ = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = stream.recv().await {}
    })
    .await;
}
