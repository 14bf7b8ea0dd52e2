//! The ceiling: the same bytes over ONE plain WebSocket between the same kinds of
//! processes, no channel. This process serves it with axum, as the controller does; the
//! peer is this binary's hidden `plain-peer` subcommand in a child process, dialing with
//! `steward_transport` exactly as the agent does. Messages are `CHUNK` bytes, the size of a
//! channel DATA frame's payload.
//!
//! The parent drives with text commands: `send N` (peer sends N bytes in binary messages),
//! `file N PATH` (peer sends the first N bytes of the file at PATH, read as the agent's
//! `ReadFile` reads: a blocking thread reads each message into a fresh buffer, a few ahead
//! of the socket), `recv N` (the parent sends N bytes; the peer answers `got N` after the
//! last one), `store N PATH` (the same, the peer writing them to PATH with the agent's own
//! `FileWriter`, as `WriteFile` does, and answering `got N` once the file is in place).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use steward_protocol::channel::MAX_MESSAGE_LEN;
use tokio::net::TcpListener;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use steward_agent::services::transfer::FileWriter;

use crate::bulk::{CHUNK, Transfer};
use crate::rig::PROXY_VARS;

/// How long the peer may take to connect.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

pub struct Plain {
    ws: WebSocket,
    peer: Child,
    server: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Plain {
    /// Serves one WebSocket on 127.0.0.1:0 and starts the peer (`self_exe plain-peer URL`).
    pub async fn start(self_exe: &Path) -> anyhow::Result<Plain> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = mpsc::channel::<WebSocket>(1);
        let app = Router::new().route(
            "/plain",
            get(move |upgrade: WebSocketUpgrade| {
                let tx = tx.clone();
                async move {
                    upgrade
                        .max_message_size(MAX_MESSAGE_LEN)
                        .max_frame_size(MAX_MESSAGE_LEN)
                        .on_upgrade(move |ws| async move {
                            let _ = tx.send(ws).await;
                        })
                }
            }),
        );
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let mut command = tokio::process::Command::new(self_exe);
        command
            .arg("plain-peer")
            .arg(format!("ws://{addr}/plain"))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        let mut peer = command.spawn().context("starting the plain peer")?;
        let ws = tokio::select! {
            ws = rx.recv() => ws.context("the plain server stopped")?,
            status = peer.wait() => bail!("the plain peer exited ({}) before connecting", status?),
            () = tokio::time::sleep(CONNECT_DEADLINE) => bail!("the plain peer did not connect within {CONNECT_DEADLINE:?}"),
        };
        Ok(Plain {
            ws,
            peer,
            server,
            shutdown,
        })
    }

    /// The peer sends `size` bytes; timed from the command to the last byte.
    pub async fn peer_to_parent(&mut self, size: u64) -> anyhow::Result<Transfer> {
        self.receive(format!("send {size}"), size).await
    }

    /// The peer sends the first `size` bytes of the file at `path` (on this machine), read
    /// as `ReadFile` reads it; timed from the command to the last byte.
    pub async fn peer_file_to_parent(&mut self, path: &str, size: u64) -> anyhow::Result<Transfer> {
        self.receive(format!("file {size} {path}"), size).await
    }

    /// Sends `command` and counts the binary messages that follow, up to `size` bytes.
    async fn receive(&mut self, command: String, size: u64) -> anyhow::Result<Transfer> {
        let started = Instant::now();
        self.ws.send(Message::Text(command.into())).await?;
        let mut got = 0u64;
        while got < size {
            match self.ws.recv().await {
                Some(Ok(Message::Binary(bytes))) => got += bytes.len() as u64,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => bail!("plain peer: unexpected {other:?} after {got} bytes"),
            }
        }
        Ok(Transfer {
            bytes: got,
            secs: started.elapsed().as_secs_f64(),
            sent_secs: None,
        })
    }

    /// This process sends `size` bytes (copies of `chunk`); timed to the peer's `got`.
    pub async fn parent_to_peer(&mut self, size: u64, chunk: &Bytes) -> anyhow::Result<Transfer> {
        self.send(format!("recv {size}"), size, chunk).await
    }

    /// This process sends `size` bytes, which the peer writes to `path` as `WriteFile`
    /// does; timed to the peer's `got`, sent once the file is in place.
    pub async fn parent_to_peer_file(
        &mut self,
        path: &str,
        size: u64,
        chunk: &Bytes,
    ) -> anyhow::Result<Transfer> {
        self.send(format!("store {size} {path}"), size, chunk).await
    }

    /// Sends `command`, then `size` bytes; waits for `got SIZE`.
    async fn send(
        &mut self,
        command: String,
        size: u64,
        chunk: &Bytes,
    ) -> anyhow::Result<Transfer> {
        let started = Instant::now();
        self.ws.send(Message::Text(command.into())).await?;
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.ws.feed(Message::Binary(chunk.slice(..n))).await?;
            left -= n as u64;
        }
        self.ws.flush().await?;
        let sent = started.elapsed().as_secs_f64();
        loop {
            match self.ws.recv().await {
                Some(Ok(Message::Text(text))) if text.as_str() == format!("got {size}") => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => bail!("plain peer: unexpected {other:?} instead of `got {size}`"),
            }
        }
        Ok(Transfer {
            bytes: size,
            secs: started.elapsed().as_secs_f64(),
            sent_secs: Some(sent),
        })
    }

    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.id()
    }

    /// Closes the WebSocket; the peer exits on the close.
    pub async fn stop(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
        if tokio::time::timeout(Duration::from_secs(10), self.peer.wait())
            .await
            .is_err()
        {
            let _ = self.peer.kill().await;
        }
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
    }
}

/// `channel-bench plain-peer URL`: the baseline's child process.
pub async fn peer(url: &str) -> anyhow::Result<()> {
    steward_transport::install_crypto_provider();
    let tls = steward_transport::tls_config(&Default::default())?;
    let url = url::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let (mut ws, _) = steward_transport::connect_websocket(&url, &[], &tls, MAX_MESSAGE_LEN)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    use tokio_tungstenite::tungstenite::Message as M;
    let chunk = crate::bulk::chunk();
    while let Some(message) = ws.next().await {
        let text = match message? {
            M::Text(text) => text,
            M::Close(_) => break,
            _ => continue,
        };
        let mut words = text.as_str().splitn(3, ' ');
        let (command, size) = words
            .next()
            .zip(words.next().and_then(|n| n.parse::<u64>().ok()))
            .with_context(|| format!("bad command {text:?}"))?;
        match command {
            "send" => {
                let mut left = size;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    ws.feed(M::Binary(chunk.slice(..n))).await?;
                    left -= n as u64;
                }
                ws.flush().await?;
            }
            "file" => {
                let path = words.next().context("`file` without a path")?;
                let (tx, mut rx) = mpsc::channel(FILE_READ_AHEAD);
                let reader = {
                    let path = path.to_owned();
                    tokio::task::spawn_blocking(move || read_chunks(&path, size, &tx))
                };
                while let Some(chunk) = rx.recv().await {
                    ws.feed(M::Binary(chunk)).await?;
                }
                reader.await??;
                ws.flush().await?;
            }
            "recv" | "store" => {
                let mut file = match (command, words.next()) {
                    ("store", Some(path)) => Some(
                        FileWriter::create(Path::new(path), None)
                            .await
                            .map_err(anyhow::Error::msg)?,
                    ),
                    ("store", None) => bail!("`store` without a path"),
                    _ => None,
                };
                let mut got = 0u64;
                while got < size {
                    match ws.next().await.context("the parent hung up")?? {
                        M::Binary(bytes) => {
                            got += bytes.len() as u64;
                            if let Some(file) = file.as_mut()
                                && file.push(bytes).await.is_err()
                            {
                                break;
                            }
                        }
                        M::Ping(_) | M::Pong(_) => {}
                        other => bail!("unexpected {other:?} after {got} bytes"),
                    }
                }
                if let Some(file) = file {
                    file.commit().await.map_err(anyhow::Error::msg)?;
                }
                ws.send(M::text(format!("got {got}"))).await?;
            }
            other => bail!("unknown command {other:?}"),
        }
    }
    Ok(())
}

/// Messages read ahead of the socket by `file`: `ReadFile`'s read-ahead.
const FILE_READ_AHEAD: usize = 4;

/// `file`'s reading thread: the first `size` bytes of `path`, each `CHUNK` read into a
/// buffer of its own, as `ReadFile` does.
fn read_chunks(path: &str, size: u64, tx: &mpsc::Sender<Bytes>) -> anyhow::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut left = size;
    while left > 0 {
        let mut buffer = bytes::BytesMut::zeroed(left.min(CHUNK as u64) as usize);
        file.read_exact(&mut buffer)
            .with_context(|| format!("reading {path}"))?;
        left -= buffer.len() as u64;
        if tx.blocking_send(buffer.freeze()).is_err() {
            break;
        }
    }
    Ok(())
}
