//! A running command's stdin and output, backed by bounded queues so a slow client slows
//! the command instead of growing memory.

use bytes::Bytes;
use steward_protocol::plaincli::{Frame, OUTPUT_CHUNK};
use steward_protocol::shown::shown_lines;
use tokio::sync::mpsc;

/// Frames queued towards the client before a writing command waits.
pub const OUTPUT_QUEUE: usize = 16;
/// Stdin chunks queued towards a command before the transport stops reading.
pub const STDIN_QUEUE: usize = 16;

/// Where a command writes; cheap to clone.
#[derive(Clone)]
pub struct Output {
    tx: mpsc::Sender<Frame>,
}

impl Output {
    pub fn new(tx: mpsc::Sender<Frame>) -> Self {
        Output { tx }
    }

    /// Writes to the client's stdout, in chunks. A gone client is not an error here: the
    /// session cancels the command when it notices.
    pub async fn stdout(&self, data: impl Into<Bytes>) {
        self.write(data.into(), Frame::Stdout).await
    }

    pub async fn stderr(&self, data: impl Into<Bytes>) {
        self.write(data.into(), Frame::Stderr).await
    }

    /// Writes `\nERROR: message\n` to stderr, as Jenkins does. A message may quote what the
    /// user sent: its control characters go out escaped (names it quotes already are).
    pub async fn error(&self, message: &str) {
        self.stderr(format!("\nERROR: {}\n", shown_lines(message)))
            .await
    }

    async fn write(&self, mut data: Bytes, frame: fn(Bytes) -> Frame) {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(OUTPUT_CHUNK));
            if self.tx.send(frame(chunk)).await.is_err() {
                return;
            }
        }
    }

    pub async fn exit(&self, code: i32) {
        let _ = self.tx.send(Frame::Exit(code)).await;
    }
}

/// The client's stdin as a command reads it.
pub struct Stdin {
    rx: mpsc::Receiver<Bytes>,
}

/// Stdin held more than a command accepts.
#[derive(Debug, thiserror::Error)]
#[error("stdin is over the limit of {limit} bytes")]
pub struct StdinTooLarge {
    pub limit: usize,
}

impl Stdin {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Stdin { rx }
    }

    /// The next chunk of stdin as the client sent it; `None` after END_STDIN. Lets a command
    /// stream stdin onwards with memory bounded by [`STDIN_QUEUE`].
    pub async fn read_chunk(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// Reads until END_STDIN, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, StdinTooLarge> {
        let mut all = Vec::new();
        while let Some(chunk) = self.rx.recv().await {
            if all.len() + chunk.len() > limit {
                return Err(StdinTooLarge { limit });
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}
