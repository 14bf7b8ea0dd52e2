//! Bulk transfers over the channel: `ReadFile` (agent→controller) counted and discarded,
//! `WriteFile` (controller→agent) from one reused buffer. Each is timed from opening the
//! stream to the last byte (read) or to the agent's `Written` answer (write).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure};
use bytes::Bytes;
use steward_channel::{Channel, call};
use steward_protocol::channel::MAX_DATA_PAYLOAD;
use steward_protocol::services::{Request, Response};

/// Size of each piece handed to the channel and of each baseline message: one DATA frame.
pub const CHUNK: usize = MAX_DATA_PAYLOAD;

/// One timed transfer.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub bytes: u64,
    pub secs: f64,
    /// For writes: when the last byte and EOF were handed to the channel (the rest is the
    /// agent draining, fsync and rename).
    pub sent_secs: Option<f64>,
}

impl Transfer {
    pub fn gbps(&self) -> f64 {
        crate::report::gbps(self.bytes, self.secs)
    }
}

/// A buffer of `CHUNK` bytes reused for every write.
pub fn chunk() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i % 253) as u8).collect::<Vec<u8>>())
}

/// Reads `path` from `offset` to its end, adding each chunk's length to `progress`.
pub async fn read_file(
    channel: &Channel,
    path: &str,
    offset: u64,
    progress: Option<&AtomicU64>,
) -> anyhow::Result<Transfer> {
    let started = Instant::now();
    let request = Request::ReadFile {
        path: path.to_owned(),
        offset,
    };
    let mut stream = call::open(channel, &request).await?;
    stream.finish().await?;
    let size = match call::read_response(&mut stream).await? {
        Response::FileStart { size } => size,
        other => bail!("ReadFile {path} answered {other:?}"),
    };
    let mut got = 0u64;
    while let Some(chunk) = stream.recv().await {
        let n = chunk?.len() as u64;
        got += n;
        if let Some(progress) = progress {
            progress.fetch_add(n, Ordering::Relaxed);
        }
    }
    ensure!(
        got + offset == size,
        "ReadFile {path} from {offset}: {got} bytes for a file of {size}"
    );
    Ok(Transfer {
        bytes: got,
        secs: started.elapsed().as_secs_f64(),
        sent_secs: None,
    })
}

/// Writes `size` bytes (copies of `chunk`) to `path` and waits for `Written`.
pub async fn write_file(
    channel: &Channel,
    path: &str,
    size: u64,
    chunk: &Bytes,
) -> anyhow::Result<Transfer> {
    let started = Instant::now();
    let request = Request::WriteFile {
        path: path.to_owned(),
        mode: None,
    };
    let mut stream = call::open(channel, &request).await?;
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.send(chunk.slice(..n)).await?;
        left -= n as u64;
    }
    stream.finish().await?;
    let sent = started.elapsed().as_secs_f64();
    match call::read_response(&mut stream).await? {
        Response::Written { bytes } => {
            ensure!(
                bytes == size,
                "WriteFile {path}: wrote {bytes} of {size} bytes"
            )
        }
        other => bail!("WriteFile {path} answered {other:?}"),
    }
    Ok(Transfer {
        bytes: size,
        secs: started.elapsed().as_secs_f64(),
        sent_secs: Some(sent),
    })
}

/// The disk alone, no network: writes `size` bytes to `path` in `CHUNK` pieces and fsyncs
/// (what `WriteFile` does on the agent), or reads it back (what `ReadFile` does).
pub async fn local_disk(
    path: std::path::PathBuf,
    size: u64,
    write: bool,
) -> anyhow::Result<Transfer> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let started = Instant::now();
        let mut buffer = vec![7u8; CHUNK];
        if write {
            let mut file = std::fs::File::create(&path)?;
            let mut left = size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                file.write_all(&buffer[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
        } else {
            let mut file = std::fs::File::open(&path)?;
            while file.read(&mut buffer)? > 0 {}
        }
        Ok(Transfer {
            bytes: size,
            secs: started.elapsed().as_secs_f64(),
            sent_secs: None,
        })
    })
    .await?
}
