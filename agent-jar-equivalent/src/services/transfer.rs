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
/// Bytes the stream side gathers before handing them to the disk thread in one go: the
/// disk thread wakes and calls the kernel once per [`HANDOFF_BYTES`], not per chunk.
const HANDOFF_BYTES: usize = 512 * 1024;
/// Batches queued ahead of the disk (1 MiB): absorbs the disk's jitter; past it, credit
/// stops and the channel's window bounds the rest. A write holds at most these, the batch
/// being written and the one being gathered: about 2 MiB.
const WRITE_BEHIND: usize = 2;

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
    /// Chunks to write, [`HANDOFF_BYTES`] of them together.
    Data(Vec<Bytes>),
    /// EOF arrived: write the last chunks, make the file durable and put it in place.
    Commit(Vec<Bytes>),
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
    let mut writer = match FileWriter::create(path, mode).await {
        Ok(writer) => writer,
        Err(message) => return answer(stream, &Response::Error { message }).await,
    };
    let written = loop {
        match stream.recv().await {
            Some(Ok(chunk)) => {
                if writer.push(chunk).await.is_err() {
                    // The writer stopped early on an error, which it returns here; the
                    // rest of the data is drained by `answer`.
                    break writer.stopped().await;
                }
            }
            None => break writer.commit().await,
            Some(Err(_)) => {
                // Cancelled or lost: the temp file is deleted, `path` untouched.
                return writer.abandon().await;
            }
        }
    };
    let response = match written {
        Ok(bytes) => Response::Written { bytes },
        Err(message) => Response::Error { message },
    };
    answer(stream, &response).await;
}

/// The writer stopped on an error; [`FileWriter::stopped`] says which.
#[derive(Debug)]
pub struct WriterStopped;

/// The disk side of a streamed write, as `WriteFile` runs it: chunks pushed from async code
/// are gathered into batches of [`HANDOFF_BYTES`] and written by a blocking thread into an
/// [`AtomicFile`], at most [`WRITE_BEHIND`] batches behind.
pub struct FileWriter {
    tx: mpsc::Sender<ToDisk>,
    thread: tokio::task::JoinHandle<Result<u64, String>>,
    batch: Vec<Bytes>,
    batch_bytes: usize,
    path: PathBuf,
}

impl FileWriter {
    /// Creates the temp file beside `path` and starts the disk thread. On commit the file
    /// gets `mode` (else the replaced file's, else the umask default).
    pub async fn create(path: &Path, mode: Option<u32>) -> Result<FileWriter, String> {
        let created = {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || AtomicFile::create(&path)).await
        };
        let file = created.map_err(|e| failed("write", path, e))??;
        let (tx, rx) = mpsc::channel(WRITE_BEHIND);
        let thread = {
            let path = path.to_path_buf();
            // Dropping `tx` without a Commit (abandoned, or the task aborted) discards.
            tokio::task::spawn_blocking(move || write_chunks(file, rx, &path, mode))
        };
        Ok(FileWriter {
            tx,
            thread,
            batch: Vec::new(),
            batch_bytes: 0,
            path: path.to_path_buf(),
        })
    }

    /// Adds `chunk`; hands a full batch to the disk thread, waiting while it is
    /// [`WRITE_BEHIND`] batches behind. `Err` once the disk thread stopped on an error.
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), WriterStopped> {
        self.batch_bytes += chunk.len();
        self.batch.push(chunk);
        if self.batch_bytes < HANDOFF_BYTES {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .send(ToDisk::Data(batch))
            .await
            .map_err(|_| WriterStopped)
    }

    /// The end of the data: writes the rest, makes the file durable and renames it over
    /// its path; the bytes written, or the error that stopped it.
    pub async fn commit(self) -> Result<u64, String> {
        let _ = self.tx.send(ToDisk::Commit(self.batch)).await;
        drop(self.tx);
        join(self.thread, &self.path).await
    }

    /// After [`FileWriter::push`] failed: the error that stopped the disk thread.
    pub async fn stopped(self) -> Result<u64, String> {
        drop(self.tx);
        join(self.thread, &self.path).await
    }

    /// Gives up: the temp file is deleted and the path left as it was.
    pub async fn abandon(self) {
        drop(self.tx);
        let _ = self.thread.await;
    }
}

async fn join(
    thread: tokio::task::JoinHandle<Result<u64, String>>,
    path: &Path,
) -> Result<u64, String> {
    thread.await.map_err(|e| failed("write", path, e))?
}

/// Drains `rx` into `file`; on Commit, makes it durable and puts it in place of `path`.
fn write_chunks(
    mut file: AtomicFile,
    mut rx: mpsc::Receiver<ToDisk>,
    path: &Path,
    mode: Option<u32>,
) -> Result<u64, String> {
    while let Some(message) = rx.blocking_recv() {
        let (mut batch, commit) = match message {
            ToDisk::Data(batch) => (batch, false),
            ToDisk::Commit(batch) => (batch, true),
        };
        file.write_batch(&mut batch)
            .map_err(|e| failed("write", path, e))?;
        if commit {
            return file.commit(path, mode);
        }
    }
    Err(failed("write", path, "the transfer was cancelled"))
}

/// Bytes per writeback step: large enough that the disk gets big sequential writes, small
/// enough that little waits for the final fsync and little of the page cache is held.
pub const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// A file written in place of a target, as `WriteFile` does it: the bytes go to a temp file
/// beside the target, which [`AtomicFile::commit`] makes durable and renames over it. Until
/// then the target is untouched, and dropping the `AtomicFile` deletes the temp file.
///
/// The file streams to disk as it is written, one [`WRITEBACK_STEP`] at a time (Linux):
/// when a step is full, its writeback starts; the step before it, by then written back, is
/// waited for and dropped from the page cache. So a big file holds about two steps of the
/// page cache however large it is, never evicts the machine's working set, is written at
/// the disk's pace while it arrives rather than all at the fsync, and recycles the same
/// pages (which on VMs that hand freed memory back to the host is twice as fast as taking
/// fresh ones). A file under two steps is left in the cache whole.
pub struct AtomicFile {
    temp: TempFile,
    written: u64,
    /// Where the step being filled starts.
    step_start: u64,
    /// The step whose writeback was started last, not yet waited for.
    in_writeback: Option<(u64, u64)>,
    /// False once the filesystem said it cannot start writeback: the fsync does it all.
    streaming: bool,
}

impl AtomicFile {
    /// Creates the temp file `.NAME.steward-tmp-RANDOM` in `target`'s directory.
    pub fn create(target: &Path) -> Result<AtomicFile, String> {
        Ok(AtomicFile {
            temp: TempFile::create(target)?,
            written: 0,
            step_start: 0,
            in_writeback: None,
            streaming: true,
        })
    }

    /// Writes every chunk of `batch` with vectored writes and empties it.
    pub fn write_batch(&mut self, batch: &mut Vec<Bytes>) -> std::io::Result<()> {
        let mut slices: Vec<std::io::IoSlice<'_>> =
            batch.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match self.temp.file.write_vectored(slices) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n as u64;
                    std::io::IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        batch.clear();
        if self.streaming && self.written - self.step_start >= WRITEBACK_STEP {
            let step = (self.step_start, self.written);
            self.streaming = writeback::start(&self.temp.file, step)?;
            if let Some(previous) = self.in_writeback.replace(step) {
                writeback::finish_and_drop(&self.temp.file, previous)?;
            }
            self.step_start = self.written;
        }
        Ok(())
    }

    /// fsync, then the mode (`mode`, else the replaced file's, else the umask default),
    /// then the atomic rename and an fsync of the directory; the bytes written.
    pub fn commit(mut self, target: &Path, mode: Option<u32>) -> Result<u64, String> {
        self.temp.commit(target, mode)?;
        Ok(self.written)
    }
}

/// Writeback of a file's byte ranges, ahead of its fsync.
#[cfg(target_os = "linux")]
mod writeback {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Starts writing `from..to` to disk without waiting. `Ok(false)` when the filesystem
    /// cannot (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`): the caller stops asking, and the fsync
    /// does it all.
    pub fn start(file: &File, range: (u64, u64)) -> std::io::Result<bool> {
        match sync_range(file, range, libc::SYNC_FILE_RANGE_WRITE) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until `from..to`, whose writeback [`start`] began, is on disk, then drops it
    /// from the page cache. Any error is the write's: waiting consumes a write error that
    /// the fsync would otherwise have reported.
    pub fn finish_and_drop(file: &File, range: (u64, u64)) -> std::io::Result<()> {
        let wait = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        sync_range(file, range, wait)?;
        // Advice only, so a range the platform's `off_t` cannot express is simply kept.
        if let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(range.0),
            libc::off_t::try_from(range.1 - range.0),
        ) {
            // SAFETY: a system call on a descriptor `file` keeps open; no memory is passed.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED)
            };
        }
        Ok(())
    }

    fn sync_range(file: &File, (from, to): (u64, u64), flags: libc::c_uint) -> std::io::Result<()> {
        let too_large = |_| std::io::Error::from(std::io::ErrorKind::FileTooLarge);
        // 64-bit offsets on every Linux target (`off64_t`).
        let offset = i64::try_from(from).map_err(too_large)?;
        let len = i64::try_from(to - from).map_err(too_large)?;
        // SAFETY: a system call on a descriptor `file` keeps open; no memory is passed.
        if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod writeback {
    use std::fs::File;

    pub fn start(_file: &File, _range: (u64, u64)) -> std::io::Result<bool> {
        Ok(false)
    }

    pub fn finish_and_drop(_file: &File, _range: (u64, u64)) -> std::io::Result<()> {
        Ok(())
    }
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
    /// then the atomic rename, made durable by an fsync of the directory.
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
        sync_directory_of(target)
    }
}

/// Makes a rename into `target`'s directory durable. A directory the agent may write but
/// not read cannot be opened to sync, and some filesystems cannot sync a directory: there
/// the rename is all there is, as for any program writing there. Otherwise a failure is
/// reported, saying that the file was replaced.
fn sync_directory_of(target: &Path) -> Result<(), String> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir = match File::open(dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::debug!(dir = ?dir, error = ?e.to_string(), "cannot open the directory to sync a rename");
            return Ok(());
        }
    };
    match dir.sync_all() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => Ok(()),
        synced => synced.map_err(|e| {
            failed(
                "sync the directory of",
                target,
                format!("{e}; the new file is in place but may not survive a crash"),
            )
        }),
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
