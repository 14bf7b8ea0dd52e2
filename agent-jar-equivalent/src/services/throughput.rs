//! Throughput tests without the disk: `Discard` drops what the controller sends, `Generate`
//! sends a pattern. They take the same paths through the channel as `WriteFile` and
//! `ReadFile`, so comparing the two pairs separates the channel's cost from the disk's.

use steward_channel::MuxStream;
use steward_protocol::channel::MAX_DATA_PAYLOAD;
use steward_protocol::services::Response;

use super::{answer, linger};

/// `Discard`: counts and drops raw DATA until EOF, then answers [`Response::Discarded`].
pub async fn discard(mut stream: MuxStream) {
    let mut bytes = 0u64;
    loop {
        match stream.recv().await {
            Some(Ok(chunk)) => bytes += chunk.len() as u64,
            None => break,
            // Cancelled or lost: no one is left to answer.
            Some(Err(_)) => return,
        }
    }
    answer(stream, &Response::Discarded { bytes }).await;
}

/// `Generate`: `bytes` raw bytes in full DATA frames, each built in its own buffer as
/// `ReadFile` builds them, then EOF.
pub async fn generate(mut stream: MuxStream, bytes: u64) {
    let pattern: Vec<u8> = (0..MAX_DATA_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MAX_DATA_PAYLOAD as u64) as usize;
        let mut buffer = steward_channel::data_buffer(n);
        buffer.extend_from_slice(&pattern[..n]);
        if stream.send.send_buffer(buffer).await.is_err() {
            return;
        }
        left -= n as u64;
    }
    if stream.finish().await.is_ok() {
        linger(&mut stream.recv).await;
    }
}
