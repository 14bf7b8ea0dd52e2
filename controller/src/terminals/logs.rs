//! Terminal logs: every terminal's output, line by line, to the outputs the settings file
//! names (`HOME/settings.json`, `terminals.logs`), as goconserver's output plugins do:
//! - `file` (on unless set false): `HOME/terminals/NAME/console.log`, each line prefixed
//!   with `[RFC3339]`, with `[connected]` and `[disconnected]` when the controller's
//!   session to the terminal starts and ends; reopened on SIGHUP, so logrotate can move it;
//! - `tcp` (plain or TLS) and `udp` targets: one JSON object per line,
//!   `{"type":"console"|"event","message":…,"node":…,"terminal":…,"date":…}`.
//!
//! Lines have their CR taken out and are split at [`MAX_LINE`] bytes. Each output has a
//! queue of [`QUEUE_LINES`] lines; a line that does not fit is dropped and counted, so a
//! slow disk or an unreachable target never holds up a terminal. A TCP target that cannot
//! be reached is tried again with backoff (1 s, doubling to 30 s).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Longest line sent as one; longer lines are split.
pub const MAX_LINE: usize = 4096;
/// Lines waiting for one output before more are dropped.
pub const QUEUE_LINES: usize = 8192;
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

/// One line for the outputs.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub message: String,
    pub node: String,
    pub terminal: String,
    pub date: String,
}

/// An output's queue and what it dropped.
struct Output {
    name: String,
    tx: mpsc::Sender<Arc<Line>>,
    dropped: AtomicU64,
}

/// How an output is doing, for `GET /terminals`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputStats {
    pub output: String,
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
            let (tx, rx) = mpsc::channel(QUEUE_LINES);
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
            let (tx, rx) = mpsc::channel(QUEUE_LINES);
            tokio::spawn(tcp_output(target.address.clone(), tls, rx));
            logs.outputs.push(Output {
                name: format!("tcp {}", target.address),
                tx,
                dropped: AtomicU64::new(0),
            });
        }
        for target in &settings.udp {
            let (tx, rx) = mpsc::channel(QUEUE_LINES);
            tokio::spawn(udp_output(target.address.clone(), rx));
            logs.outputs.push(Output {
                name: format!("udp {}", target.address),
                tx,
                dropped: AtomicU64::new(0),
            });
        }
        Ok(logs)
    }

    /// Hands a line to every output, dropping it (and counting) where the queue is full.
    pub fn send(&self, line: Line) {
        if self.outputs.is_empty() {
            return;
        }
        let line = Arc::new(line);
        for output in &self.outputs {
            if output.tx.try_send(line.clone()).is_err()
                && output.dropped.fetch_add(1, Ordering::Relaxed) % 10_000 == 0
            {
                tracing::warn!(
                    output = output.name,
                    "terminal log output is behind or unreachable: dropping lines"
                );
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

/// Splits output into lines: CR taken out, lines over [`MAX_LINE`] bytes split.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub fn feed(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in data {
            match b {
                b'\r' => {}
                b'\n' => lines.push(self.take()),
                _ => {
                    self.partial.push(b);
                    if self.partial.len() >= MAX_LINE {
                        lines.push(self.take());
                    }
                }
            }
        }
        lines
    }

    /// The line in progress, if any (at the end of a session).
    pub fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
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
    mut rx: mpsc::Receiver<Arc<Line>>,
    mut reopen: mpsc::UnboundedReceiver<()>,
) {
    let mut files: HashMap<String, std::io::BufWriter<std::fs::File>> = HashMap::new();
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(first) = line else { return };
                let mut batch = vec![first];
                while batch.len() < 1024 && let Ok(line) = rx.try_recv() {
                    batch.push(line);
                }
                let root = root.clone();
                let mut taken = std::mem::take(&mut files);
                files = tokio::task::spawn_blocking(move || {
                    for line in batch {
                        write_file_line(&root, &mut taken, &line);
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

fn write_file_line(
    root: &Path,
    files: &mut HashMap<String, std::io::BufWriter<std::fs::File>>,
    line: &Line,
) {
    if !files.contains_key(&line.terminal) {
        let dir = root.join(&line.terminal);
        let opened = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("console.log"))
        });
        match opened {
            Ok(file) => {
                files.insert(line.terminal.clone(), std::io::BufWriter::new(file));
            }
            Err(e) => {
                tracing::warn!(terminal = line.terminal, error = %e, "cannot open the terminal's console.log");
                return;
            }
        }
    }
    if let Some(file) = files.get_mut(&line.terminal) {
        let text = match line.kind {
            Kind::Console => line.message.clone(),
            Kind::Event => format!("[{}]", line.message),
        };
        let _ = writeln!(file, "[{}] {text}", line.date);
    }
}

fn json_line(line: &Line) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

async fn tcp_output(
    address: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut rx: mpsc::Receiver<Arc<Line>>,
) {
    let mut pause = FIRST_RETRY;
    let mut pending: Option<Arc<Line>> = None;
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
            let line = match pending.take() {
                Some(line) => line,
                None => match rx.recv().await {
                    Some(line) => line,
                    None => return,
                },
            };
            let bytes = json_line(&line);
            let written = tokio::time::timeout(NET_TIMEOUT, async {
                stream.write_all(&bytes).await?;
                stream.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                // Sent again once connected again.
                pending = Some(line);
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

async fn udp_output(address: String, mut rx: mpsc::Receiver<Arc<Line>>) {
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
    while let Some(line) = rx.recv().await {
        // Datagrams are not retried: an unreachable target loses them.
        let _ = socket.send_to(&json_line(&line), &address).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_cr_and_long_ones_are_split() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.feed(b"one\r\ntw"), vec!["one"]);
        assert_eq!(splitter.feed(b"o\r\n"), vec!["two"]);
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = splitter.feed(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(splitter.rest().map(|r| r.len()), Some(10));
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
