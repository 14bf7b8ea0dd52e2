//! Bulk transfers over the channel: `ReadFile` (agent→controller) counted and discarded,
//! `WriteFile` (controller→agent) from one reused buffer, and the same without the disk:
//! `Generate` and `Discard`. Each is timed from opening the stream to the last byte
//! (agent→controller) or to the agent's answer (controller→agent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure};
use bytes::Bytes;
use steward_agent::services::transfer::AtomicFile;
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
    let got = count_to_end(&mut stream, progress).await?;
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

/// Asks the agent to `Generate` `size` bytes and counts them: `ReadFile` without the disk.
pub async fn generate(channel: &Channel, size: u64) -> anyhow::Result<Transfer> {
    let started = Instant::now();
    let mut stream = call::open(channel, &Request::Generate { bytes: size }).await?;
    stream.finish().await?;
    let got = count_to_end(&mut stream, None).await?;
    ensure!(got == size, "Generate: {got} bytes of {size}");
    Ok(Transfer {
        bytes: got,
        secs: started.elapsed().as_secs_f64(),
        sent_secs: None,
    })
}

/// Counts (and drops) the stream's bytes until EOF.
async fn count_to_end(
    stream: &mut steward_channel::MuxStream,
    progress: Option<&AtomicU64>,
) -> anyhow::Result<u64> {
    let mut got = 0u64;
    while let Some(chunk) = stream.recv().await {
        let n = chunk?.len() as u64;
        got += n;
        if let Some(progress) = progress {
            progress.fetch_add(n, Ordering::Relaxed);
        }
    }
    Ok(got)
}

/// Writes `size` bytes (copies of `chunk`) to `path` and waits for `Written`.
pub async fn write_file(
    channel: &Channel,
    path: &str,
    size: u64,
    chunk: &Bytes,
) -> anyhow::Result<Transfer> {
    let request = Request::WriteFile {
        path: path.to_owned(),
        mode: None,
    };
    let (transfer, answer) = send_all(channel, &request, size, chunk).await?;
    match answer {
        Response::Written { bytes } => {
            ensure!(
                bytes == size,
                "WriteFile {path}: wrote {bytes} of {size} bytes"
            )
        }
        other => bail!("WriteFile {path} answered {other:?}"),
    }
    Ok(transfer)
}

/// Sends `size` bytes for the agent to `Discard`: `WriteFile` without the disk.
pub async fn discard(channel: &Channel, size: u64, chunk: &Bytes) -> anyhow::Result<Transfer> {
    let (transfer, answer) = send_all(channel, &Request::Discard, size, chunk).await?;
    match answer {
        Response::Discarded { bytes } => {
            ensure!(bytes == size, "Discard: {bytes} of {size} bytes arrived")
        }
        other => bail!("Discard answered {other:?}"),
    }
    Ok(transfer)
}

/// Opens `request`, sends `size` bytes (copies of `chunk`) and EOF, and reads the answer.
async fn send_all(
    channel: &Channel,
    request: &Request,
    size: u64,
    chunk: &Bytes,
) -> anyhow::Result<(Transfer, Response)> {
    let started = Instant::now();
    let mut stream = call::open(channel, request).await?;
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.send(chunk.slice(..n)).await?;
        left -= n as u64;
    }
    stream.finish().await?;
    let sent = started.elapsed().as_secs_f64();
    let answer = call::read_response(&mut stream).await?;
    let transfer = Transfer {
        bytes: size,
        secs: started.elapsed().as_secs_f64(),
        sent_secs: Some(sent),
    };
    Ok((transfer, answer))
}

/// The disk alone, no network. Writing goes through the agent's own [`AtomicFile`], as
/// `WriteFile` does: `size` bytes in `CHUNK` pieces to a temp file beside `path` (its
/// writeback started as it goes), fsync, a rename over `path` (whose old pages are freed
/// only then) and an fsync of the directory. Reading reads `path` back (what `ReadFile`
/// does).
pub async fn local_disk(
    path: std::path::PathBuf,
    size: u64,
    write: bool,
) -> anyhow::Result<Transfer> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let started = Instant::now();
        if write {
            let piece = Bytes::from(vec![7u8; CHUNK]);
            let mut file = AtomicFile::create(&path).map_err(anyhow::Error::msg)?;
            let mut batch = Vec::with_capacity(1);
            let mut left = size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                batch.push(piece.slice(..n));
                file.write_batch(&mut batch)?;
                left -= n as u64;
            }
            file.commit(&path, None).map_err(anyhow::Error::msg)?;
        } else {
            let mut buffer = vec![0u8; CHUNK];
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
