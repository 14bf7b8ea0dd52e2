//! A session's input on its way to the process: queued so that taking it from the
//! connection never waits for the process to read it.
//!
//! Why: russh grants the client more window as soon as data arrives, not as it is used, so
//! the only way to slow a client down is to stop the connection's loop, and that loop also
//! carries the session's output. A process that writes while its input is held up (`gzip`,
//! `cat`, any filter slower than the network) would then wait for its output to leave, while
//! its output waits for the loop, which waits for the process to read: a deadlock. So the
//! input is taken at once: the first [`MEMORY_LIMIT`] bytes wait in memory, the rest in an
//! unlinked file in the agent's internal directory (on its disk, not in memory), read back
//! in order as the process takes it. Only past [`SPILL_LIMIT`] unread bytes, or when the
//! file cannot be written, does the connection wait for the process.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Input held in memory per session before it goes to disk: a terminal's typing and most
/// commands' input never get near it.
pub const MEMORY_LIMIT: usize = 1024 * 1024;
/// Unread input kept on disk per session before the connection waits: a process slower
/// than the network may fall this far behind.
pub const SPILL_LIMIT: u64 = 4 << 30;
/// What one read from the file hands the process at a time.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct State {
    memory: VecDeque<Bytes>,
    memory_bytes: usize,
    /// While some input is on disk, all of it goes there, so it stays in order.
    spill: Option<Spill>,
    /// The file could not be made or written: memory only, and the connection waits.
    disk_failed: bool,
    finished: bool,
    receiver_gone: bool,
}

struct Spill {
    file: Arc<File>,
    /// Written up to here (what the reader may read).
    written: u64,
    read: u64,
    /// A write is on its way: the file stays even when all written is read.
    writing: bool,
}

/// What a push does next.
enum Push {
    Write(Arc<File>, u64),
    StartSpill,
    Wait,
}

struct Shared {
    state: Mutex<State>,
    /// Input arrived, or it ended.
    readable: Notify,
    /// Input was taken: room again.
    drained: Notify,
    dir: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection's side.
pub struct InputSender {
    shared: Arc<Shared>,
}

/// The process's side.
pub struct InputReceiver {
    shared: Arc<Shared>,
}

/// A queue whose file, if it needs one, goes in `dir`.
pub fn queue(dir: &Path) -> (InputSender, InputReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::default(),
        readable: Notify::new(),
        drained: Notify::new(),
        dir: dir.to_path_buf(),
    });
    (
        InputSender {
            shared: shared.clone(),
        },
        InputReceiver { shared },
    )
}

impl InputSender {
    /// Queues `data`; waits only past the limits. Input for a process that no longer reads
    /// is dropped.
    pub async fn push(&self, data: Bytes) {
        loop {
            let drained = self.shared.drained.notified();
            let step = {
                let mut state = self.shared.lock();
                if state.receiver_gone {
                    return;
                }
                let room = state.memory_bytes + data.len() <= MEMORY_LIMIT
                    // Without a disk, one piece past the limit rather than none at all.
                    || (state.disk_failed && state.memory_bytes < MEMORY_LIMIT);
                let disk_failed = state.disk_failed;
                match state.spill.as_mut() {
                    None if room => {
                        state.memory_bytes += data.len();
                        state.memory.push_back(data);
                        drop(state);
                        self.shared.readable.notify_one();
                        return;
                    }
                    None if disk_failed => Push::Wait,
                    None => Push::StartSpill,
                    Some(_) if disk_failed => Push::Wait,
                    Some(spill) if spill.written - spill.read >= SPILL_LIMIT => Push::Wait,
                    Some(spill) => {
                        spill.writing = true;
                        Push::Write(spill.file.clone(), spill.written)
                    }
                }
            };
            let (file, offset) = match step {
                Push::Wait => {
                    // Past the limits: the connection waits for the process to take some.
                    drained.await;
                    continue;
                }
                Push::StartSpill => {
                    self.start_spill().await;
                    continue;
                }
                Push::Write(file, offset) => (file, offset),
            };
            let chunk = data.clone();
            let written = tokio::task::spawn_blocking(move || file.write_all_at(&chunk, offset))
                .await
                .map_err(io::Error::other)
                .and_then(|written| written);
            let mut state = self.shared.lock();
            let Some(spill) = state.spill.as_mut() else {
                return;
            };
            spill.writing = false;
            match written {
                Ok(()) => {
                    spill.written = offset + data.len() as u64;
                    drop(state);
                    self.shared.readable.notify_one();
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "cannot hold a session's input on disk; it waits in memory");
                    // What is on disk is read back first; then memory, and the connection
                    // waits when that is full.
                    state.disk_failed = true;
                }
            }
        }
    }

    async fn start_spill(&self) {
        let dir = self.shared.dir.clone();
        let made = tokio::task::spawn_blocking(move || unlinked_file(&dir)).await;
        let mut state = self.shared.lock();
        match made {
            Ok(Ok(file)) => {
                if state.spill.is_none() {
                    debug!("a session's input goes to disk until its process catches up");
                    state.spill = Some(Spill {
                        file: Arc::new(file),
                        written: 0,
                        read: 0,
                        writing: false,
                    });
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, dir = ?self.shared.dir, "cannot make a file for a session's input; it waits in memory");
                state.disk_failed = true;
            }
            Err(e) => {
                warn!(error = %e, "cannot make a file for a session's input; it waits in memory");
                state.disk_failed = true;
            }
        }
    }

    /// The input has ended (EOF): the receiver ends once it has handed everything over.
    pub fn finish(&self) {
        self.shared.lock().finished = true;
        self.shared.readable.notify_one();
    }
}

impl Drop for InputSender {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What the receiver does next.
enum Next {
    Data(Bytes),
    ReadFile(Arc<File>, u64, usize),
    End,
    Wait,
}

impl InputReceiver {
    /// The next piece of input, in order; `None` once it has ended and all is taken.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            let readable = self.shared.readable.notified();
            match self.step() {
                Next::Data(data) => {
                    self.shared.drained.notify_one();
                    return Some(data);
                }
                Next::End => return None,
                Next::Wait => readable.await,
                Next::ReadFile(file, offset, len) => {
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buffer = vec![0u8; len];
                        file.read_exact_at(&mut buffer, offset).map(|()| buffer)
                    })
                    .await
                    .map_err(io::Error::other)
                    .and_then(|read| read);
                    match read {
                        Ok(buffer) => {
                            let mut state = self.shared.lock();
                            if let Some(spill) = state.spill.as_mut() {
                                spill.read = offset + len as u64;
                                if spill.read == spill.written && !spill.writing {
                                    // Caught up: memory again, and the file goes.
                                    state.spill = None;
                                }
                            }
                            drop(state);
                            self.shared.drained.notify_one();
                            return Some(Bytes::from(buffer));
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot read a session's input back from disk");
                            return None;
                        }
                    }
                }
            }
        }
    }

    fn step(&self) -> Next {
        let mut state = self.shared.lock();
        if let Some(data) = state.memory.pop_front() {
            state.memory_bytes -= data.len();
            return Next::Data(data);
        }
        if let Some(spill) = &state.spill {
            if spill.read < spill.written {
                let len = (spill.written - spill.read).min(READ_CHUNK as u64) as usize;
                return Next::ReadFile(spill.file.clone(), spill.read, len);
            }
            if spill.writing {
                return Next::Wait;
            }
            // All read back and nothing on its way: the next input goes to memory again,
            // and the file goes, with its disk space.
            state.spill = None;
            drop(state);
            // A sender waiting on a failed disk may use memory now.
            self.shared.drained.notify_one();
            return self.step();
        }
        if state.finished {
            Next::End
        } else {
            Next::Wait
        }
    }
}

impl Drop for InputReceiver {
    fn drop(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.drained.notify_one();
    }
}

/// A new file in `dir` that no name points to: it goes away with its last handle.
fn unlinked_file(dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    for attempt in 0..16u32 {
        let path = dir.join(format!(
            ".ssh-input-{}-{:016x}-{attempt}",
            std::process::id(),
            rand::random::<u64>()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name for a temporary file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: u32, len: usize) -> Bytes {
        Bytes::from(vec![(i % 251) as u8; len])
    }

    #[tokio::test]
    async fn input_comes_out_in_order_through_memory_and_disk_and_disk_is_left_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = queue(dir.path());
        // Well past the memory limit, with nobody reading: it must not wait.
        let count = (3 * MEMORY_LIMIT / 32_768) as u32;
        for i in 0..count {
            tx.push(chunk(i, 32_768)).await;
        }
        assert!(
            tx.shared.lock().spill.is_some(),
            "past the memory limit it spills"
        );
        let expected: Vec<u8> = (0..count).flat_map(|i| chunk(i, 32_768).to_vec()).collect();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.extend_from_slice(&rx.next().await.unwrap());
        }
        assert!(got == expected, "the input came out of order");
        // Read back: the file is gone and new input goes to memory.
        tx.push(chunk(7, 10)).await;
        assert!(tx.shared.lock().spill.is_none());
        assert_eq!(rx.next().await.unwrap(), chunk(7, 10));
        // Nothing is left behind in the directory: the file had no name.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        tx.finish();
        assert_eq!(rx.next().await, None);
    }

    #[tokio::test]
    async fn a_reader_waits_for_input_and_sees_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = queue(dir.path());
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(data) = rx.next().await {
                got.extend_from_slice(&data);
            }
            got
        });
        tx.push(Bytes::from_static(b"abc")).await;
        tx.push(Bytes::from_static(b"def")).await;
        drop(tx);
        assert_eq!(reading.await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn input_for_a_process_that_stopped_reading_is_dropped_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = queue(dir.path());
        drop(rx);
        for i in 0..100 {
            tx.push(chunk(i, 65_536)).await;
        }
        let state = tx.shared.lock();
        assert_eq!(state.memory_bytes, 0);
        assert!(state.spill.is_none());
    }
}
