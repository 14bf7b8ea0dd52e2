//! Console logs: one append-only file per build, written by the build's runner as its steps'
//! output arrives and read by `console` and `build -v` in chunks, so no log is ever held
//! whole in memory, however large.

use std::io::{SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::Progress;
use crate::cli::io::Output;

/// Bytes read from a console file at a time.
pub const READ_CHUNK: usize = 64 * 1024;
/// Most bytes read in one trip to a blocking thread when copying a console to a client:
/// a follower behind by megabytes catches up in a quarter of the trips 64 KiB reads took,
/// and the output cuts the block into frames without copying it. It is also what one
/// copy holds in memory at most, besides the output's queue.
pub const COPY_CHUNK: usize = 256 * 1024;
/// Most bytes a runner hands [`ConsoleWriter::append_all`] at once: what has arrived from
/// the agent by the time the last write ended, so one trip to a blocking thread writes
/// many log events when output is heavy, and one when it trickles.
pub const WRITE_BATCH: usize = 1024 * 1024;

/// The writing end of a build's console: appends and publishes the new length.
///
/// Writes run on a blocking thread (a file write may wait on the disk) and are complete
/// when `append` returns: followers are only told of bytes the file holds, and a step's
/// recorded start never lies past the end of the file a controller killed right then
/// leaves behind.
pub struct ConsoleWriter {
    file: Arc<std::fs::File>,
    path: PathBuf,
    len: u64,
    /// Whether the console ends with a newline (or is empty).
    at_line_start: bool,
    progress: watch::Sender<Progress>,
    /// Each line's start time, when the job keeps them ([`super::timestamps`]).
    stamps: Option<super::timestamps::Recorder>,
}

impl ConsoleWriter {
    /// Opens (creating it and its directories if needed) the console at `path` for appending.
    pub async fn open(
        path: PathBuf,
        progress: watch::Sender<Progress>,
    ) -> std::io::Result<ConsoleWriter> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Readable too: the last byte tells whether the console ends a line.
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .await?;
        let len = file.metadata().await?.len();
        progress.send_modify(|p| p.log_len = len);
        let file = Arc::new(file.into_std().await);
        let at_line_start = match len.checked_sub(1) {
            None => true,
            Some(last) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let mut byte = [0u8];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut byte, last)
                        .map(|()| byte[0] == b'\n')
                })
                .await
                .map_err(std::io::Error::other)??
            }
        };
        Ok(ConsoleWriter {
            file,
            path,
            len,
            at_line_start,
            progress,
            stamps: None,
        })
    }

    /// Keeps the start time of every line written from now on, beside the console.
    pub async fn keep_timestamps(&mut self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (len, at_line_start) = (self.len, self.at_line_start);
        let recorder = tokio::task::spawn_blocking(move || {
            super::timestamps::Recorder::open(&dir, len, at_line_start)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.stamps = Some(recorder);
        Ok(())
    }

    /// Whether what was written last ends a line: a line from the controller written now
    /// would start at the beginning of one.
    pub fn at_line_start(&self) -> bool {
        self.at_line_start
    }

    pub fn size(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `data`; followers see it once this returns.
    pub async fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.append_all(vec![data.to_vec()]).await
    }

    /// Appends the chunks in order, in one trip to a blocking thread; followers see them
    /// once this returns. On an error, what did reach the file stays and counts.
    pub async fn append_all(&mut self, chunks: Vec<Vec<u8>>) -> std::io::Result<()> {
        let file = self.file.clone();
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let last_byte = chunks.iter().rev().find_map(|c| c.last().copied());
        let (at, mut stamps) = (self.len, self.stamps.take());
        let (result, len_after_error, stamps) = tokio::task::spawn_blocking(move || {
            // The lines' times first: a follower told of the bytes finds their records.
            if let Some(recorder) = &mut stamps
                && let Err(e) = recorder.record(at, &chunks, crate::builds::now_ms())
            {
                tracing::warn!(error = ?e.to_string(), "cannot record console timestamps");
            }
            let result = chunks.iter().try_for_each(|c| (&*file).write_all(c));
            // A write can fail halfway: the file says how much it holds.
            let len = result
                .is_err()
                .then(|| file.metadata().ok().map(|m| m.len()))
                .flatten();
            (result, len, stamps)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.stamps = stamps;
        self.len = match (&result, len_after_error) {
            (Ok(()), _) => self.len + total,
            (Err(_), Some(len)) => len,
            (Err(_), None) => self.len,
        };
        if let (Ok(()), Some(byte)) = (&result, last_byte) {
            self.at_line_start = byte == b'\n';
        }
        let len = self.len;
        self.progress.send_modify(|p| p.log_len = len);
        result
    }

    /// Flushes the file to disk (at the end of a build).
    pub async fn sync(&mut self) -> std::io::Result<()> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Writes bytes `from..to` of the file at `path` to the client, a chunk at a time. A file
/// shorter than `to` ends the copy early.
pub async fn copy_range(
    path: &Path,
    from: u64,
    to: u64,
    out: &Output,
    stamps: Option<&mut super::timestamps::Annotator>,
) -> std::io::Result<u64> {
    if from >= to {
        return Ok(from);
    }
    let mut file = open_at(path, from).await?;
    copy_on(&mut file, from, to, out, stamps).await
}

async fn open_at(path: &Path, at: u64) -> std::io::Result<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(at)).await?;
    Ok(file)
}

/// Copies from `file`, positioned at `at`, until `to` (or its end); the position reached.
async fn copy_on(
    file: &mut tokio::fs::File,
    mut at: u64,
    to: u64,
    out: &Output,
    mut stamps: Option<&mut super::timestamps::Annotator>,
) -> std::io::Result<u64> {
    while at < to {
        let want = (to - at).min(COPY_CHUNK as u64) as usize;
        // Read into spare capacity: no zeroing of a buffer that is about to be overwritten.
        let mut buffer = BytesMut::with_capacity(want);
        let n = (&mut *file).take(want as u64).read_buf(&mut buffer).await?;
        if n == 0 {
            break;
        }
        at += n as u64;
        match stamps.as_deref_mut() {
            Some(annotator) => out.stdout(annotator.annotate(&buffer)).await,
            None => out.stdout(buffer.freeze()).await,
        }
    }
    Ok(at)
}

/// Bytes `from..to` of the console at `path`, to be read a chunk at a time (the REST API
/// streams them); `None` when the build has written nothing yet.
pub async fn read_range(
    path: &Path,
    from: u64,
    to: u64,
) -> std::io::Result<Option<tokio::io::Take<tokio::fs::File>>> {
    match open_at(path, from).await {
        Ok(file) => Ok(Some(file.take(to.saturating_sub(from)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the console from `from` to the client as it grows, until the build has ended
/// and everything is written; the result. The file is opened once, on the first bytes,
/// and read on from where the last copy stopped: a follower wakes for every append, and
/// opening and seeking each time cost more than the read.
pub async fn follow(
    path: &Path,
    mut progress: watch::Receiver<Progress>,
    from: u64,
    out: &Output,
    mut stamps: Option<&mut super::timestamps::Annotator>,
) -> std::io::Result<Option<super::BuildResult>> {
    let mut at = from;
    let mut file = None;
    loop {
        let now = *progress.borrow_and_update();
        if now.log_len > at {
            let file = match &mut file {
                Some(file) => file,
                None => file.insert(open_at(path, at).await?),
            };
            at = copy_on(file, at, now.log_len, out, stamps.as_deref_mut()).await?;
        }
        if now.result.is_some() && at >= now.log_len {
            return Ok(now.result);
        }
        if progress.changed().await.is_err() {
            // The runner is gone without a result (the controller is shutting down).
            return Ok(None);
        }
    }
}

/// The offset where the last `lines` lines of the file begin (a last line without its
/// newline counts), read backwards a chunk at a time.
pub async fn last_lines_offset(path: &Path, len: u64, lines: u64) -> std::io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    let mut file = tokio::fs::File::open(path).await?;
    let mut end = len;
    let mut newlines = 0u64;
    // A newline that ends the file closes the last line; it does not start a new one.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(READ_CHUNK as u64);
        let mut buffer = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer).await?;
        for (i, byte) in buffer.iter().enumerate().rev() {
            if *byte != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Where the last complete line within bytes `from..to` of the file ends (just past its
/// newline); `from` when that range holds no newline. Read backwards a chunk at a time.
pub async fn last_line_end(path: &Path, from: u64, to: u64) -> std::io::Result<u64> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(from),
        Err(e) => return Err(e),
    };
    let mut end = to;
    while end > from {
        let start = end.saturating_sub(READ_CHUNK as u64).max(from);
        let mut buffer = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer).await?;
        if let Some(i) = buffer.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_line_end_is_found_within_the_range_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let long = "x".repeat(READ_CHUNK * 2 + 5);
        let text = format!("one\ntwo\n{long}");
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as u64;
        assert_eq!(last_line_end(&path, 0, len).await.unwrap(), 8);
        assert_eq!(last_line_end(&path, 0, 7).await.unwrap(), 4);
        assert_eq!(last_line_end(&path, 0, 8).await.unwrap(), 8);
        assert_eq!(
            last_line_end(&path, 8, len).await.unwrap(),
            8,
            "no newline after 8"
        );
        assert_eq!(last_line_end(&path, 5, 7).await.unwrap(), 5);
        let missing = dir.path().join("none");
        assert_eq!(last_line_end(&missing, 3, 9).await.unwrap(), 3);
    }

    async fn offset_of(text: &str, lines: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, text).unwrap();
        let at = last_lines_offset(&path, text.len() as u64, lines)
            .await
            .unwrap();
        text[at as usize..].to_owned()
    }

    #[tokio::test]
    async fn last_lines() {
        assert_eq!(offset_of("a\nb\nc\n", 2).await, "b\nc\n");
        assert_eq!(offset_of("a\nb\nc", 2).await, "b\nc");
        assert_eq!(offset_of("a\nb\nc\n", 5).await, "a\nb\nc\n");
        assert_eq!(offset_of("a\nb\nc\n", 0).await, "");
        assert_eq!(offset_of("", 3).await, "");
        assert_eq!(offset_of("\n\n", 1).await, "\n");
    }

    #[tokio::test]
    async fn appended_bytes_are_in_the_file_once_followers_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (tx, rx) = watch::channel(Progress::default());
        let mut console = ConsoleWriter::open(path.clone(), tx).await.unwrap();
        for i in 0..200u32 {
            console
                .append(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
            let told = rx.borrow().log_len;
            let on_disk = std::fs::metadata(&path).unwrap().len();
            assert_eq!(
                (on_disk, told),
                (console.size(), console.size()),
                "append {i}"
            );
        }
    }

    #[tokio::test]
    async fn last_lines_across_chunks() {
        let line = "x".repeat(READ_CHUNK / 3) + "\n";
        let text: String = (0..10).map(|i| format!("{i}{line}")).collect();
        let tail = offset_of(&text, 4).await;
        assert!(tail.starts_with('6'), "{}", &tail[..10]);
        assert_eq!(tail.lines().count(), 4);
    }
}
