//! Terminal logs: every terminal's output, line by line, to the outputs the settings file
//! names (`HOME/settings.json`, `terminals.logs`), as goconserver's output plugins do:
//! - `file` (on unless set false): `HOME/terminals/NAME/console.log`, each line prefixed
//!   with `[RFC3339]`, with `[connected]` and `[disconnected]` when the controller's
//!   session to the terminal starts and ends; reopened on SIGHUP, so logrotate can move it;
//! - `tcp` (plain or TLS) and `udp` targets: one JSON object per line,
//!   `{"type":"console"|"event","message":…,"node":…,"terminal":…,"date":…}`.
//!
//! Lines have their CR taken out and are split at [`MAX_LINE`] bytes. Output reaches the
//! outputs a chunk of lines at a time; each output has a queue of [`QUEUE_CHUNKS`] chunks,
//! and a chunk that does not fit is dropped and its lines counted, so a slow disk or an
//! unreachable target never holds up a terminal. A TCP target that cannot
//! be reached is tried again with backoff (1 s, doubling to 30 s).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Longest line sent as one; longer lines are split.
pub const MAX_LINE: usize = 4096;
/// Chunks of output (each at most a terminal's output event, 32 KiB) waiting for one output
/// before more are dropped.
pub const QUEUE_CHUNKS: usize = 256;
/// First and longest pause between attempts to reach a TCP target.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How long connecting to, or writing to, a TCP target may take.
const NET_TIMEOUT: Duration = Duration::from_secs(10);

/// `terminals.logs` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// The `console.log` files (default on).
    pub file: Option<bool>,
    #[serde(default)]
    pub tcp: Vec<TcpTarget>,
    #[serde(default)]
    pub udp: Vec<UdpTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpTarget {
    /// `HOST:PORT`.
    pub address: String,
    #[serde(default)]
    pub tls: bool,
    /// PEM certificates to trust besides the system's, for TLS.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpTarget {
    pub address: String,
}

/// What kind of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Console,
    Event,
}

/// Output for the logs: complete lines (`\n`-separated, the last one ended), or one event
/// (`connected`, `disconnected`), with where and when they come from. A chunk goes to every
/// output whole; each output cuts it into lines itself, so a flood of short lines costs the
/// terminal one hand-over per chunk, not one per line.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub kind: Kind,
    pub text: Bytes,
    pub node: Arc<str>,
    pub terminal: Arc<str>,
    pub date: String,
}

/// One line as the TCP and UDP outputs send it.
#[derive(Debug, Serialize)]
struct JsonLine<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    message: &'a str,
    node: &'a str,
    terminal: &'a str,
    date: &'a str,
}

/// An output's queue and what it dropped.
struct Output {
    name: String,
    tx: mpsc::Sender<Arc<Chunk>>,
    dropped: AtomicU64,
}

/// How an output is doing, for `GET /terminals`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputStats {
    pub output: String,
    /// Lines dropped because the output's queue was full.
    pub dropped: u64,
}

/// Every output.
#[derive(Default)]
pub struct Logs {
    outputs: Vec<Output>,
    /// Tells the file output to reopen its files.
    reopen: Option<mpsc::UnboundedSender<()>>,
}

impl Logs {
    /// Starts the outputs `settings` names; `root` is `HOME/terminals`.
    pub fn start(root: &Path, settings: &LogSettings) -> Result<Logs, String> {
        let mut logs = Logs::default();
        if settings.file.unwrap_or(true) {
            let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
            let (reopen_tx, reopen_rx) = mpsc::unbounded_channel();
            tokio::spawn(file_output(root.to_path_buf(), rx, reopen_rx));
            logs.outputs.push(Output {
                name: "file".into(),
                tx,
                dropped: AtomicU64::new(0),
            });
            logs.reopen = Some(reopen_tx);
        }
        for target in &settings.tcp {
            let tls = match (target.tls, &target.ca) {
                (false, _) => None,
                (true, ca) => {
                    let extra_ca_pem = match ca {
                        Some(path) => Some(std::fs::read(path).map_err(|e| {
                            format!(
                                "terminals.logs.tcp {}: ca {}: {e}",
                                target.address,
                                path.display()
                            )
                        })?),
                        None => None,
                    };
                    let options = steward_transport::TlsOptions {
                        extra_ca_pem,
                        no_certificate_check: false,
                    };
                    Some(
                        steward_transport::tls_config(&options)
                            .map_err(|e| format!("terminals.logs.tcp {}: {e}", target.address))?,
                    )
                }
            };
            let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
            tokio::spawn(tcp_output(target.address.clone(), tls, rx));
            logs.outputs.push(Output {
                name: format!("tcp {}", target.address),
                tx,
                dropped: AtomicU64::new(0),
            });
        }
        for target in &settings.udp {
            let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
            tokio::spawn(udp_output(target.address.clone(), rx));
            logs.outputs.push(Output {
                name: format!("udp {}", target.address),
                tx,
                dropped: AtomicU64::new(0),
            });
        }
        Ok(logs)
    }

    /// Hands a chunk to every output, dropping it (and counting its lines) where the queue
    /// is full.
    pub fn send(&self, chunk: Chunk) {
        if self.outputs.is_empty() {
            return;
        }
        let chunk = Arc::new(chunk);
        for output in &self.outputs {
            if output.tx.try_send(chunk.clone()).is_err() {
                let lines = match chunk.kind {
                    Kind::Event => 1,
                    Kind::Console => chunk.text.iter().filter(|b| **b == b'\n').count() as u64,
                };
                let before = output.dropped.fetch_add(lines, Ordering::Relaxed);
                if before / 100_000 != (before + lines) / 100_000 || before == 0 {
                    tracing::warn!(
                        output = output.name,
                        dropped = before + lines,
                        "terminal log output is behind or unreachable: dropping lines"
                    );
                }
            }
        }
    }

    /// Closes the log files; the next line reopens them (SIGHUP, after logrotate).
    pub fn reopen(&self) {
        if let Some(reopen) = &self.reopen {
            let _ = reopen.send(());
        }
    }

    pub fn stats(&self) -> Vec<OutputStats> {
        self.outputs
            .iter()
            .map(|o| OutputStats {
                output: o.name.clone(),
                dropped: o.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// The lines of a chunk, as outputs log them: CR taken out, over [`MAX_LINE`] bytes split.
fn lines(chunk: &Chunk) -> Vec<String> {
    if chunk.kind == Kind::Event {
        return vec![String::from_utf8_lossy(&chunk.text).into_owned()];
    }
    let mut out = Vec::new();
    for line in chunk.text.split(|b| *b == b'\n') {
        let line: Vec<u8> = line.iter().copied().filter(|b| *b != b'\r').collect();
        if line.is_empty() {
            continue;
        }
        for piece in line.chunks(MAX_LINE) {
            out.push(String::from_utf8_lossy(piece).into_owned());
        }
    }
    // `split` gives an empty piece after the last newline; a line that was only a CR
    // is dropped with it, as an empty line.
    out
}

/// Reads the settings file's `terminals.logs` (defaults when the file is missing).
pub fn read_settings(path: &Path) -> Result<LogSettings, String> {
    #[derive(Deserialize, Default)]
    struct File {
        #[serde(default)]
        terminals: Terminals,
    }
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Terminals {
        #[serde(default)]
        logs: LogSettings,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogSettings::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: File = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.terminals.logs)
}

/// The settings file, in the home unless `--settings` names another.
pub const SETTINGS_FILE: &str = "settings.json";

/// Cuts output at line ends, for the logs: what [`LineSplitter::feed`] gives back is
/// complete lines (a line with no end in sight is cut at [`MAX_LINE`] bytes); the rest waits
/// for its end.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// The complete lines `data` finishes, if any.
    pub fn feed(&mut self, data: &Bytes) -> Option<Bytes> {
        // The common case, nothing pending and the output ending a line: the lines are the
        // output itself, shared rather than copied.
        if self.partial.is_empty() && data.last() == Some(&b'\n') {
            return Some(data.clone());
        }
        self.partial.extend_from_slice(data);
        let mut region = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                let rest = self.partial.split_off(last + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => Vec::new(),
        };
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            region.extend_from_slice(&self.partial);
            region.push(b'\n');
            self.partial = rest;
        }
        (!region.is_empty()).then(|| Bytes::from(region))
    }

    /// The line in progress, if any (at the end of a session), ended.
    pub fn rest(&mut self) -> Option<Bytes> {
        if self.partial.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.push(b'\n');
        Some(Bytes::from(line))
    }
}

/// The current time as RFC 3339, to the millisecond.
pub fn now_rfc3339() -> String {
    let ms = crate::builds::now_ms();
    let seconds = steward_protocol::duration::utc(ms);
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

async fn file_output(
    root: PathBuf,
    mut rx: mpsc::Receiver<Arc<Chunk>>,
    mut reopen: mpsc::UnboundedReceiver<()>,
) {
    let mut files: HashMap<String, std::io::BufWriter<std::fs::File>> = HashMap::new();
    loop {
        tokio::select! {
            chunk = rx.recv() => {
                let Some(first) = chunk else { return };
                let mut batch = vec![first];
                while batch.len() < 64 && let Ok(chunk) = rx.try_recv() {
                    batch.push(chunk);
                }
                let root = root.clone();
                let mut taken = std::mem::take(&mut files);
                files = tokio::task::spawn_blocking(move || {
                    for chunk in batch {
                        write_file_chunk(&root, &mut taken, &chunk);
                    }
                    for file in taken.values_mut() {
                        let _ = file.flush();
                    }
                    taken
                })
                .await
                .unwrap_or_default();
            }
            Some(()) = reopen.recv() => files.clear(),
        }
    }
}

fn write_file_chunk(
    root: &Path,
    files: &mut HashMap<String, std::io::BufWriter<std::fs::File>>,
    chunk: &Chunk,
) {
    let terminal: &str = &chunk.terminal;
    if !files.contains_key(terminal) {
        let dir = root.join(terminal);
        let opened = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("console.log"))
        });
        match opened {
            Ok(file) => {
                files.insert(
                    terminal.to_owned(),
                    std::io::BufWriter::with_capacity(256 * 1024, file),
                );
            }
            Err(e) => {
                tracing::warn!(terminal, error = %e, "cannot open the terminal's console.log");
                return;
            }
        }
    }
    let Some(file) = files.get_mut(terminal) else {
        return;
    };
    let prefix = format!("[{}] ", chunk.date);
    if chunk.kind == Kind::Event {
        let _ = writeln!(file, "{prefix}[{}]", String::from_utf8_lossy(&chunk.text));
        return;
    }
    // The chunk's lines laid out in one buffer and written at once: a flood of short lines
    // costs no allocation or write call per line.
    let mut out = Vec::with_capacity(chunk.text.len() * 2);
    for line in chunk.text.split(|b| *b == b'\n') {
        for piece in line.chunks(MAX_LINE) {
            let mark = out.len();
            out.extend_from_slice(prefix.as_bytes());
            let text = out.len();
            out.extend(piece.iter().filter(|b| **b != b'\r'));
            if out.len() == text {
                // An empty line (or only a CR): not logged.
                out.truncate(mark);
                continue;
            }
            out.push(b'\n');
        }
    }
    let _ = file.write_all(&out);
}

/// A chunk's lines as JSON objects, each ended by a newline.
fn json_lines(chunk: &Chunk) -> Vec<Vec<u8>> {
    lines(chunk)
        .iter()
        .map(|message| {
            let mut bytes = serde_json::to_vec(&JsonLine {
                kind: chunk.kind,
                message,
                node: &chunk.node,
                terminal: &chunk.terminal,
                date: &chunk.date,
            })
            .unwrap_or_default();
            bytes.push(b'\n');
            bytes
        })
        .collect()
}

async fn tcp_output(
    address: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut rx: mpsc::Receiver<Arc<Chunk>>,
) {
    let mut pause = FIRST_RETRY;
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let connected = tokio::time::timeout(NET_TIMEOUT, connect(&address, tls.clone())).await;
        let mut stream = match connected {
            Ok(Ok(stream)) => {
                tracing::info!(target = address, "terminal log output connected");
                pause = FIRST_RETRY;
                stream
            }
            Ok(Err(e)) => {
                tracing::debug!(target = address, error = %e, "terminal log output unreachable");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
                continue;
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
                continue;
            }
        };
        loop {
            let bytes = match pending.take() {
                Some(bytes) => bytes,
                None => match rx.recv().await {
                    Some(chunk) => json_lines(&chunk).concat(),
                    None => return,
                },
            };
            let written = tokio::time::timeout(NET_TIMEOUT, async {
                stream.write_all(&bytes).await?;
                stream.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                // Sent again once connected again.
                pending = Some(bytes);
                break;
            }
        }
    }
}

type NetStream = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

async fn connect(
    address: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<NetStream> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

async fn udp_output(address: String, mut rx: mpsc::Receiver<Arc<Chunk>>) {
    let socket = match tokio::net::UdpSocket::bind(if address.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await
    {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!(target = address, error = %e, "cannot open a UDP socket for terminal logs");
            return;
        }
    };
    while let Some(chunk) = rx.recv().await {
        for line in json_lines(&chunk) {
            // Datagrams are not retried: an unreachable target loses them.
            let _ = socket.send_to(&line, &address).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_line_ends_and_lines_lose_their_cr_and_long_ones_are_split() {
        let mut splitter = LineSplitter::default();
        let mut feed = |data: &[u8]| splitter.feed(&Bytes::copy_from_slice(data));
        assert_eq!(feed(b"one\r\ntw").as_deref(), Some(&b"one\r\n"[..]));
        assert_eq!(feed(b"o\r\n").as_deref(), Some(&b"two\r\n"[..]));
        assert_eq!(feed(b"three\n").as_deref(), Some(&b"three\n"[..]));
        let long = vec![b'x'; MAX_LINE + 10];
        let cut = feed(&long).unwrap();
        assert_eq!(cut.len(), MAX_LINE + 1, "cut at the limit with an end");
        assert_eq!(splitter.rest().map(|r| r.len()), Some(11));
        let chunk = Chunk {
            kind: Kind::Console,
            text: Bytes::from(format!("a\r\n\r\n{}\n", "y".repeat(MAX_LINE + 1))),
            node: "n".into(),
            terminal: "t".into(),
            date: "d".into(),
        };
        let got = lines(&chunk);
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].as_str(), got[1].len(), got[2].as_str()),
            ("a", MAX_LINE, "y")
        );
        let json: serde_json::Value = serde_json::from_slice(&json_lines(&chunk)[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"console","message":"a","node":"n","terminal":"t","date":"d"})
        );
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        assert!(read_settings(&path).unwrap().tcp.is_empty());
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            r#"{"terminals":{"logs":{"tcp":[{"adress":"x:1"}]}}}"#,
        )
        .unwrap();
        let e = read_settings(&path).unwrap_err();
        assert!(e.contains("unknown field `adress`"), "{e}");
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            r#"{"terminals":{"logs":{"file":false,"udp":[{"address":"127.0.0.1:9"}]}}}"#,
        )
        .unwrap();
        let settings = read_settings(&path).unwrap();
        assert_eq!((settings.file, settings.udp.len()), (Some(false), 1));
    }
}
