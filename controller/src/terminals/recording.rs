//! Recordings in asciicast v2, the format of asciinema (`asciinema play`, `asciinema cat`,
//! asciinema-player): a JSON header line, then one JSON array per event,
//! `[SECONDS, CODE, DATA]`, with codes `o` (output), `i` (input), `r` (resize, `COLSxROWS`)
//! and `m` (a marker).
//!
//! Events are formatted into a buffer and written by the blocking pool in batches of
//! [`BATCH`], one batch in flight: a recording keeps up with a flood of output (the
//! formatting is a scan for the few bytes JSON escapes) and slows its terminal rather than
//! dropping anything when the disk is slower. Output is UTF-8 in asciicast: a character
//! split between two chunks is carried over whole, and bytes that are not UTF-8 are
//! written as U+FFFD.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use steward_protocol::terminals::Size;

/// Formatted events written at once.
pub const BATCH: usize = 1024 * 1024;

/// What the header says.
pub struct Header<'a> {
    pub size: Size,
    /// Unix seconds when the recording starts.
    pub timestamp: i64,
    pub command: &'a str,
    pub title: &'a str,
}

/// An open recording.
pub struct Recording {
    pub id: String,
    pub path: PathBuf,
    file: Arc<std::fs::File>,
    /// `ID.offset`: how far into the run's output the file has got, written after each
    /// batch, so a restarted controller carries on where the file ends.
    offset_path: PathBuf,
    /// The run's output offset at the end of what is buffered.
    pub recorded_to: u64,
    started: Instant,
    buf: Vec<u8>,
    carry: Vec<u8>,
    writing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Output bytes recorded.
    pub output_bytes: u64,
    failed: Option<String>,
    /// Event times given by the caller (seconds since the start), in place of this
    /// process's clock: a recording made elsewhere (an SSH session on an agent).
    given_time: Option<f64>,
}

impl Recording {
    /// Creates `dir/ID.cast` and writes its header.
    pub fn create(dir: &Path, id: &str, header: &Header<'_>) -> std::io::Result<Recording> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{id}.cast"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let head = serde_json::json!({
            "version": 2,
            "width": header.size.cols,
            "height": header.size.rows,
            "timestamp": header.timestamp,
            "command": header.command,
            "title": header.title,
            "env": {"TERM": "xterm-256color"},
        });
        let mut line = head.to_string().into_bytes();
        line.push(b'\n');
        (&file).write_all(&line)?;
        Ok(Recording {
            id: id.to_owned(),
            offset_path: dir.join(format!("{id}.offset")),
            recorded_to: 0,
            path,
            file: Arc::new(file),
            started: Instant::now(),
            buf: Vec::new(),
            carry: Vec::new(),
            writing: None,
            output_bytes: 0,
            failed: None,
            given_time: None,
        })
    }

    /// The time of the events that follow, in seconds since the recording started.
    pub fn set_time(&mut self, seconds: f64) {
        self.given_time = Some(seconds);
    }

    /// Opens `dir/ID.cast` again to append to it (after a controller restart): its clock
    /// goes on from the header's timestamp, its output from the offset it had recorded.
    pub fn reopen(dir: &Path, id: &str) -> std::io::Result<Recording> {
        let path = dir.join(format!("{id}.cast"));
        let offset_path = dir.join(format!("{id}.offset"));
        let text = std::fs::read_to_string(&offset_path).unwrap_or_default();
        let recorded_to = text.trim().parse().unwrap_or(0);
        let mut head = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(std::fs::File::open(&path)?),
            &mut head,
        )?;
        let header: serde_json::Value = serde_json::from_str(&head)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let timestamp = header["timestamp"].as_i64().unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let age = std::time::Duration::from_secs(now.saturating_sub(timestamp).max(0) as u64);
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(Recording {
            id: id.to_owned(),
            path,
            file: Arc::new(file),
            offset_path,
            recorded_to,
            started: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            buf: Vec::new(),
            carry: Vec::new(),
            writing: None,
            output_bytes: recorded_to,
            failed: None,
            given_time: None,
        })
    }

    /// Why the recording stopped, if a write failed: nothing more is recorded.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    pub async fn output(&mut self, data: &[u8]) {
        self.output_bytes += data.len() as u64;
        self.recorded_to += data.len() as u64;
        if self.failed.is_some() {
            return;
        }
        // Escaped straight from `data`; only a character split by the last chunk makes a
        // copy, to join its two parts.
        let joined;
        let bytes: &[u8] = if self.carry.is_empty() {
            data
        } else {
            let mut carried = std::mem::take(&mut self.carry);
            carried.extend_from_slice(data);
            joined = carried;
            &joined
        };
        let seconds = self
            .given_time
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let start = self.buf.len();
        let _ = write!(self.buf, "[{seconds:.6}, \"o\", \"");
        let body = self.buf.len();
        let used = escape_utf8(bytes, &mut self.buf);
        self.carry = bytes[used..].to_vec();
        if self.buf.len() == body {
            self.buf.truncate(start);
            return;
        }
        self.buf.extend_from_slice(b"\"]\n");
        if self.buf.len() >= BATCH {
            self.flush().await;
        }
    }

    pub async fn input(&mut self, data: &[u8]) {
        self.event("i", &String::from_utf8_lossy(data)).await;
    }

    pub async fn resize(&mut self, size: Size) {
        self.event("r", &format!("{}x{}", size.cols, size.rows))
            .await;
    }

    pub async fn marker(&mut self, label: &str) {
        self.event("m", label).await;
    }

    async fn event(&mut self, code: &str, data: &str) {
        if self.failed.is_some() {
            return;
        }
        let seconds = self
            .given_time
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let _ = write!(self.buf, "[{seconds:.6}, \"{code}\", \"");
        escape_json(data, &mut self.buf);
        self.buf.extend_from_slice(b"\"]\n");
        if self.buf.len() >= BATCH {
            self.flush().await;
        }
    }

    /// Hands what is buffered to the disk (after the batch in flight is written).
    pub async fn flush(&mut self) {
        self.wait().await;
        if self.buf.is_empty() || self.failed.is_some() {
            return;
        }
        // A new buffer grows as events come: an idle terminal's recording holds little.
        let batch = std::mem::take(&mut self.buf);
        let file = self.file.clone();
        // The offset of the output in this batch, less a character carried to the next.
        let offset = self.recorded_to - self.carry.len() as u64;
        let offset_path = self.offset_path.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            (&*file).write_all(&batch)?;
            std::fs::write(offset_path, format!("{offset}\n"))
        }));
    }

    async fn wait(&mut self) {
        if let Some(writing) = self.writing.take() {
            let result = writing
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            if let Err(e) = result {
                tracing::warn!(recording = %self.path.display(), error = %e, "the recording stops: a write failed");
                self.failed = Some(e.to_string());
            }
        }
    }

    /// Writes everything and syncs the file.
    pub async fn finish(mut self) {
        if !self.carry.is_empty() {
            let rest = String::from_utf8_lossy(&self.carry).into_owned();
            self.carry.clear();
            self.event("o", &rest).await;
        }
        self.flush().await;
        self.wait().await;
        let file = self.file.clone();
        let _ = tokio::task::spawn_blocking(move || file.sync_data()).await;
    }
}

/// Appends `bytes` as the inside of a JSON string: UTF-8 as it is (bytes that are not UTF-8
/// as U+FFFD), escaped. Stops before a character cut off at the end; how many bytes it took.
pub fn escape_utf8(bytes: &[u8], out: &mut Vec<u8>) -> usize {
    let mut rest = bytes;
    let mut used = 0;
    loop {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                escape_json(text, out);
                return used + rest.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // SAFETY: from_utf8 vouched for this prefix.
                escape_json(
                    unsafe { std::str::from_utf8_unchecked(&rest[..valid]) },
                    out,
                );
                match e.error_len() {
                    Some(bad) => {
                        out.extend_from_slice("\u{FFFD}".as_bytes());
                        used += valid + bad;
                        rest = &rest[valid + bad..];
                    }
                    // Incomplete at the end: left for the next chunk.
                    None => return used + valid,
                }
            }
        }
    }
}

/// What each byte becomes in a JSON string: 0 for itself, else the letter after `\`
/// (`u` for `\u00XX`).
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `text` as the inside of a JSON string.
pub fn escape_json(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + text.len() / 4);
    for &b in text.as_bytes() {
        match ESCAPES[b as usize] {
            0 => out.push(b),
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
            letter => out.extend_from_slice(&[b'\\', letter]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_matches_serde() {
        let text = "a\"b\\c\n\r\t\u{1b}[1m\u{7f}é";
        let mut out = vec![b'"'];
        escape_json(text, &mut out);
        out.push(b'"');
        let parsed: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, text);
    }

    #[test]
    fn a_character_split_between_chunks_is_carried_whole() {
        let mut out = Vec::new();
        assert_eq!(escape_utf8(&"aé".as_bytes()[..2], &mut out), 1);
        assert_eq!(out, b"a");
        out.clear();
        assert_eq!(escape_utf8(&[0xc3, 0xa9, 0xff, b'z'], &mut out), 4);
        assert_eq!(String::from_utf8(out).unwrap(), "é\u{FFFD}z");
    }

    #[tokio::test]
    async fn a_recording_is_asciicast_v2() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            size: Size {
                cols: 100,
                rows: 30,
            },
            timestamp: 1_700_000_000,
            command: "/bin/bash",
            title: "t1",
        };
        let mut recording = Recording::create(dir.path(), "r1", &header).unwrap();
        recording.output(b"hello \xc3").await;
        recording.output(b"\xa9\r\n").await;
        recording.input(b"ls\r").await;
        recording.resize(Size { cols: 90, rows: 20 }).await;
        recording.marker("ssh: sftp session").await;
        let path = recording.path.clone();
        recording.finish().await;
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 100);
        assert_eq!(lines[0]["title"], "t1");
        let events: Vec<(String, String)> = lines[1..]
            .iter()
            .map(|e| (e[1].as_str().unwrap().into(), e[2].as_str().unwrap().into()))
            .collect();
        let expected = [
            ("o", "hello "),
            ("o", "é\r\n"),
            ("i", "ls\r"),
            ("r", "90x20"),
            ("m", "ssh: sftp session"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(events, expected);
    }
}
