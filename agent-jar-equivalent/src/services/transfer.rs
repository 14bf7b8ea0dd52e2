//! Streamed file transfers: `ReadFile` sends a file's bytes to the controller, `WriteFile`
//! receives bytes and replaces a file atomically.
//!
//! The disk side runs on a blocking thread joined to the stream by a small bounded queue,
//! so a transfer holds a few chunks at most besides the channel's window, and the runtime's
//! threads never wait on the disk. Chunks are
//! [`MAX_DATA_PAYLOAD`] bytes: one DATA frame each, moved as [`Bytes`] without copies.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use steward_channel::MuxStream;
use steward_protocol::channel::{HEADER_LEN, MAX_DATA_PAYLOAD, ResetCode};
use steward_protocol::services::{self, Response};
use tokio::sync::mpsc;

use super::files::failed;
use super::{answer, linger};

/// Bytes read from disk per chunk: exactly one DATA frame.
const CHUNK: usize = MAX_DATA_PAYLOAD;
/// Chunks read ahead of the stream (256 KiB): the reader thread keeps going while the
/// stream sends, without waking for every chunk.
const READ_AHEAD: usize = 4;
/// Chunks received ahead of the disk (1 MiB): absorbs the disk's jitter and lets the disk
/// thread write in batches; past it, credit stops and the channel's window bounds the rest.
const WRITE_BEHIND: usize = 16;

/// `ReadFile`: [`Response::FileStart`] with the file's size, then the bytes from `offset`
/// as raw DATA, then EOF. Failing to open answers [`Response::Error`]; failing midway resets
/// the stream with the message (the bytes already sent cannot be taken back).
pub async fn read(stream: MuxStream, path: &Path, offset: u64) {
    // `Err` only says the stream is gone; there is no one left to tell.
    let _ = send_file(stream, path, offset).await;
}

async fn send_file(mut stream: MuxStream, path: &Path, offset: u64) -> Result<(), ()> {
    let opened = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || open_for_read(&path, offset)).await
    };
    let (file, size) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(message)) => {
            answer(stream, &Response::Error { message }).await;
            return Ok(());
        }
        Err(e) => {
            let message = failed("read", path, e);
            answer(stream, &Response::Error { message }).await;
            return Ok(());
        }
    };
    let start = Bytes::from(services::encode(&Response::FileStart { size }));
    stream.send(start).await.map_err(|_| ())?;

    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let reader = {
        let path = path.to_path_buf();
        // Ends on EOF, on an error, or when `rx` is dropped (the stream was cancelled).
        tokio::task::spawn_blocking(move || read_chunks(file, &path, &tx))
    };
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(chunk) => stream.send.send_buffer(chunk).await.map_err(|_| ())?,
            Err(message) => {
                stream.reset(ResetCode::Failed, &message);
                return Err(());
            }
        }
    }
    let _ = reader.await;
    stream.finish().await.map_err(|_| ())?;
    linger(&mut stream.recv).await;
    Ok(())
}

fn open_for_read(path: &Path, offset: u64) -> Result<(File, u64), String> {
    let mut file = File::open(path).map_err(|e| failed("open", path, e))?;
    let metadata = file.metadata().map_err(|e| failed("stat", path, e))?;
    if metadata.is_dir() {
        return Err(failed("read", path, "Is a directory"));
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| failed("seek in", path, e))?;
    }
    Ok((file, metadata.len()))
}

/// Reads the file into message buffers that already have room for the frame header, so
/// the bytes go from the disk to the socket without another copy.
fn read_chunks(mut file: File, path: &Path, tx: &mpsc::Sender<Result<BytesMut, String>>) {
    loop {
        let mut buffer = steward_channel::data_buffer(CHUNK);
        buffer.resize(HEADER_LEN + CHUNK, 0);
        let chunk = match file.read(&mut buffer[HEADER_LEN..]) {
            Ok(0) => return,
            Ok(n) => {
                buffer.truncate(HEADER_LEN + n);
                Ok(buffer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(failed("read", path, e)),
        };
        let last = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || last {
            return;
        }
    }
}

/// What the stream side hands the disk side.
enum ToDisk {
    Data(Bytes),
    /// EOF arrived: make the file durable and put it in place.
    Commit,
}

/// `WriteFile`: raw DATA until EOF goes to a temp file beside `path`; then fsync, mode,
/// and a rename over `path`, answered with [`Response::Written`].
///
/// On an error the answer is [`Response::Error`] sent at once, while the rest of the
/// controller's data is read and dropped until its EOF: the controller sees a stream that
/// ends normally with a clear error, whether it reads the answer while sending or only
/// after its EOF. (Resetting instead would race the error: a RESET overtakes queued DATA.)
/// If the stream is cancelled or lost, the temp file is deleted and `path` is untouched.
pub async fn write(mut stream: MuxStream, path: &Path, mode: Option<u32>) {
    let created = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || TempFile::create(&path)).await
    };
    let temp = match created {
        Ok(Ok(temp)) => temp,
        Ok(Err(message)) => return answer(stream, &Response::Error { message }).await,
        Err(e) => {
            let message = failed("write", path, e);
            return answer(stream, &Response::Error { message }).await;
        }
    };
    let (tx, rx) = mpsc::channel(WRITE_BEHIND);
    let writer = {
        let path = path.to_path_buf();
        // Dropping `tx` without a Commit (cancel, or this task aborted) makes it discard.
        tokio::task::spawn_blocking(move || write_chunks(temp, rx, &path, mode))
    };
    loop {
        let delivered = match stream.recv().await {
            Some(Ok(chunk)) => tx.send(ToDisk::Data(chunk)).await,
            None => {
                let _ = tx.send(ToDisk::Commit).await;
                break;
            }
            Some(Err(_)) => {
                // Cancelled or lost: without a Commit the writer deletes the temp file.
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        if delivered.is_err() {
            // The writer stopped early on an error, which it returns below; the rest of
            // the data is drained by `answer`.
            break;
        }
    }
    drop(tx);
    let response = match writer.await {
        Ok(Ok(bytes)) => Response::Written { bytes },
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: failed("write", path, e),
        },
    };
    answer(stream, &response).await;
}

/// Chunks written by one system call at most: whatever arrived while the last write ran
/// goes out together, so the disk thread wakes and calls the kernel once per batch.
const WRITE_BATCH: usize = 16;

/// Drains `rx` into the temp file; on Commit, makes it durable and renames it over `path`.
fn write_chunks(
    mut temp: TempFile,
    mut rx: mpsc::Receiver<ToDisk>,
    path: &Path,
    mode: Option<u32>,
) -> Result<u64, String> {
    let mut written = 0u64;
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH);
    while let Some(message) = rx.blocking_recv() {
        let mut commit = matches!(message, ToDisk::Commit);
        if let ToDisk::Data(chunk) = message {
            batch.push(chunk);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(ToDisk::Data(chunk)) => batch.push(chunk),
                    Ok(ToDisk::Commit) => {
                        commit = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        written += write_batch(&mut temp.file, &mut batch).map_err(|e| failed("write", path, e))?;
        if commit {
            temp.commit(path, mode)?;
            return Ok(written);
        }
    }
    Err(failed("write", path, "the transfer was cancelled"))
}

/// Writes every chunk of `batch` with vectored writes and empties it; the bytes written.
fn write_batch(file: &mut File, batch: &mut Vec<Bytes>) -> std::io::Result<u64> {
    let total: usize = batch.iter().map(Bytes::len).sum();
    let mut slices: Vec<std::io::IoSlice<'_>> =
        batch.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    batch.clear();
    Ok(total as u64)
}

/// A temp file beside its target, deleted on drop unless committed.
struct TempFile {
    path: Option<PathBuf>,
    file: File,
}

impl TempFile {
    /// Creates `.NAME.steward-tmp-RANDOM` in `target`'s directory.
    fn create(target: &Path) -> Result<TempFile, String> {
        let Some(name) = target.file_name() else {
            return Err(failed("write", target, "not a file name"));
        };
        let dir = target.parent().unwrap_or(Path::new("."));
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".steward-tmp-{:016x}", rand::random::<u64>()));
        let path = dir.join(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| failed("create", target, e))?;
        Ok(TempFile {
            path: Some(path),
            file,
        })
    }

    /// fsync, then the mode (`mode`, else the replaced file's, else the umask default),
    /// then the atomic rename.
    fn commit(&mut self, target: &Path, mode: Option<u32>) -> Result<(), String> {
        let Some(temp_path) = self.path.as_ref() else {
            return Ok(());
        };
        self.file
            .sync_all()
            .map_err(|e| failed("sync", target, e))?;
        let mode = mode.or_else(|| {
            std::fs::metadata(target)
                .ok()
                .map(|m| m.permissions().mode() & 0o7777)
        });
        if let Some(mode) = mode {
            self.file
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| failed("set the mode of", target, e))?;
        }
        std::fs::rename(temp_path, target).map_err(|e| failed("replace", target, e))?;
        self.path = None;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
