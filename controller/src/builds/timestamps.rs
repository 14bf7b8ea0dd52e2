//! Timestamps of console lines (the Timestamper plugin's `TimestamperBuildWrapper`): when a
//! build's job asks for them, the time each console line began is kept beside the console,
//! in `BUILD_DIR/timestamps`, and shown by `console -timestamps` and
//! `consoleText?timestamps=FORMAT`.
//!
//! The file holds one 16-byte record per line, in console order: the line's offset in the
//! console and the time its first byte was written (milliseconds since the epoch), both
//! little-endian. It is written in the same trip to the disk as the console bytes, before
//! followers learn of them, so a reader never meets a line whose record is still to come.
//! A build resumed after a restart cuts the console back; its records past the cut are cut
//! too ([`Recorder::open`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The file's name in the build directory.
pub const FILE: &str = "timestamps";
const RECORD: usize = 16;

/// How a line's time is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Wall-clock time in the controller's time zone, `HH:MM:SS`.
    Time,
    /// Time since the build started, `HH:MM:SS.mmm`.
    Elapsed,
    /// RFC 3339 in UTC, to the millisecond.
    Iso,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "time" | "" => Some(Format::Time),
            "elapsed" => Some(Format::Elapsed),
            "iso" => Some(Format::Iso),
            _ => None,
        }
    }

    fn render(self, ms: i64, started_ms: i64) -> String {
        match self {
            Format::Time => {
                let zoned = jiff::Timestamp::from_millisecond(ms)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                    .to_zoned(jiff::tz::TimeZone::system());
                format!(
                    "{:02}:{:02}:{:02}",
                    zoned.hour(),
                    zoned.minute(),
                    zoned.second()
                )
            }
            Format::Elapsed => {
                let e = (ms - started_ms).max(0);
                format!(
                    "{:02}:{:02}:{:02}.{:03}",
                    e / 3_600_000,
                    e / 60_000 % 60,
                    e / 1000 % 60,
                    e % 1000
                )
            }
            Format::Iso => {
                let seconds = steward_protocol::duration::utc(ms);
                format!(
                    "{}.{:03}Z",
                    seconds.trim_end_matches('Z'),
                    ms.rem_euclid(1000)
                )
            }
        }
    }
}

/// Appends a record for each line the console's new bytes begin.
#[derive(Debug)]
pub struct Recorder {
    file: std::fs::File,
    /// The next byte written begins a line.
    pending: bool,
}

impl Recorder {
    /// Opens the build's record file for a console of `console_len` bytes (ending a line
    /// when `at_line_start`), dropping records at or past `console_len`.
    pub fn open(
        build_dir: &Path,
        console_len: u64,
        at_line_start: bool,
    ) -> std::io::Result<Recorder> {
        let path = build_dir.join(FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        // The first record at or past the console's end, found from the end (records are in
        // console order), is where the file is cut.
        let mut keep = len - len % RECORD as u64;
        let mut record = [0u8; RECORD];
        while keep >= RECORD as u64 {
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut record, keep - RECORD as u64)?;
            let offset = u64::from_le_bytes(record[..8].try_into().unwrap_or_default());
            if offset < console_len {
                break;
            }
            keep -= RECORD as u64;
        }
        if keep != len {
            file.set_len(keep)?;
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0))?;
        Ok(Recorder {
            file,
            pending: at_line_start,
        })
    }

    /// Records the lines begun by `chunks`, written at console offset `at` at `now_ms`.
    pub fn record(&mut self, mut at: u64, chunks: &[Vec<u8>], now_ms: i64) -> std::io::Result<()> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut from = 0;
            while from < chunk.len() {
                if self.pending {
                    out.extend_from_slice(&(at + from as u64).to_le_bytes());
                    out.extend_from_slice(&now_ms.to_le_bytes());
                    self.pending = false;
                }
                match chunk[from..].iter().position(|b| *b == b'\n') {
                    Some(newline) => {
                        from += newline + 1;
                        self.pending = true;
                    }
                    None => from = chunk.len(),
                }
            }
            at += chunk.len() as u64;
        }
        self.file.write_all(&out)
    }
}

/// Puts each line's time in front of it, reading the records forward as the console is
/// read forward.
pub struct Annotator {
    records: std::io::BufReader<std::fs::File>,
    next: Option<(u64, i64)>,
    last_ms: Option<i64>,
    at_line_start: bool,
    offset: u64,
    format: Format,
    started_ms: i64,
}

impl Annotator {
    /// For a console read from `from` (a line start), or `None` when the build kept no
    /// timestamps.
    pub fn open(build_dir: &Path, from: u64, format: Format, started_ms: i64) -> Option<Annotator> {
        let file = std::fs::File::open(path(build_dir)).ok()?;
        Some(Annotator {
            records: std::io::BufReader::new(file),
            next: None,
            last_ms: None,
            at_line_start: true,
            offset: from,
            format,
            started_ms,
        })
    }

    fn stamp_for(&mut self, line: u64) -> Option<i64> {
        loop {
            if self.next.is_none() {
                let mut record = [0u8; RECORD];
                if self.records.read_exact(&mut record).is_err() {
                    return self.last_ms;
                }
                let offset = u64::from_le_bytes(record[..8].try_into().unwrap_or_default());
                let ms = i64::from_le_bytes(record[8..].try_into().unwrap_or_default());
                self.next = Some((offset, ms));
            }
            let (offset, ms) = self.next.unwrap_or_default();
            if offset > line {
                return self.last_ms;
            }
            self.last_ms = Some(ms);
            self.next = None;
            if offset == line {
                return Some(ms);
            }
        }
    }

    /// `chunk`, the console bytes at the current offset, with `[TIME] ` before each line.
    pub fn annotate(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 8);
        let mut from = 0;
        while from < chunk.len() {
            if self.at_line_start {
                let line = self.offset + from as u64;
                let shown = match self.stamp_for(line) {
                    Some(ms) => self.format.render(ms, self.started_ms),
                    None => "--:--:--".to_owned(),
                };
                out.extend_from_slice(format!("[{shown}] ").as_bytes());
                self.at_line_start = false;
            }
            match chunk[from..].iter().position(|b| *b == b'\n') {
                Some(newline) => {
                    out.extend_from_slice(&chunk[from..from + newline + 1]);
                    from += newline + 1;
                    self.at_line_start = true;
                }
                None => {
                    out.extend_from_slice(&chunk[from..]);
                    from = chunk.len();
                }
            }
        }
        self.offset += chunk.len() as u64;
        out
    }
}

fn path(build_dir: &Path) -> PathBuf {
    build_dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_the_time_they_began_across_chunks_and_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder::open(dir.path(), 0, true).unwrap();
        recorder.record(0, &[b"one\n".to_vec()], 1_000).unwrap();
        // A line's time is its first byte's, whatever chunk ends it.
        recorder.record(4, &[b"tw".to_vec()], 2_500).unwrap();
        recorder
            .record(6, &[b"o\nthree\n".to_vec()], 3_000)
            .unwrap();
        // Resumed with the console cut back to "one\ntwo\n" (8 bytes): three's record goes.
        let mut recorder = Recorder::open(dir.path(), 8, true).unwrap();
        recorder.record(8, &[b"again\n".to_vec()], 4_000).unwrap();
        let mut a = Annotator::open(dir.path(), 0, Format::Elapsed, 1_000).unwrap();
        let mut out = a.annotate(b"one\nt");
        out.extend(a.annotate(b"wo\nagain\n"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[00:00:00.000] one\n[00:00:01.500] two\n[00:00:03.000] again\n"
        );
        let mut later = Annotator::open(dir.path(), 4, Format::Iso, 0).unwrap();
        assert_eq!(
            String::from_utf8(later.annotate(b"two\n")).unwrap(),
            "[1970-01-01T00:00:02.500Z] two\n"
        );
    }
}
