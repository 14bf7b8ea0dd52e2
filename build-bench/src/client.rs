//! A CLI client in this process: the `cli` binary's own library (`steward_cli::run`) over a
//! new WebSocket per command, as the binary does, without the cost of starting a process.
//! Output goes to memory, or line by line to a [`LineClock`] that notes when each line
//! arrived (to time `Started JOB #N` and `Completed JOB #N`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::bail;
use steward_cli::auth::Credentials;
use steward_cli::{Config, Mode, Stdio};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use url::Url;

use crate::stats::now_ns;

/// The admin's client for one controller; cheap to clone.
#[derive(Clone)]
pub struct Client {
    root: Url,
    credentials: Credentials,
}

/// What a command printed and its exit code.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Client {
    pub fn new(root: &str, user: &str, token: &str) -> anyhow::Result<Client> {
        Ok(Client {
            root: Url::parse(root)?,
            credentials: Credentials::Basic {
                user: user.to_owned(),
                token: token.to_owned(),
            },
        })
    }

    fn config(&self, args: &[&str]) -> Config {
        Config {
            root: self.root.clone(),
            mode: Mode::WebSocket,
            credentials: Some(self.credentials.clone()),
            extra_ca_pem: None,
            no_certificate_check: false,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            locale: "en_US".to_owned(),
            idle_timeout: Some(steward_cli::DEFAULT_IDLE_TIMEOUT),
            given: Default::default(),
        }
    }

    /// Runs a command with `stdin`; its output, whatever the exit code.
    pub async fn run(&self, args: &[&str], stdin: &[u8]) -> anyhow::Result<Output> {
        let mut stdio = Stdio {
            stdin,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let code = steward_cli::run(
            &self.config(args),
            &mut stdio,
            &steward_cli::Interrupts::none(),
        )
        .await?;
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(&stdio.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stdio.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; its stdout.
    pub async fn ok(&self, args: &[&str], stdin: &[u8]) -> anyhow::Result<String> {
        let out = self.run(args, stdin).await?;
        if out.code != 0 {
            bail!(
                "cli {} exited {}: {}",
                args.join(" "),
                out.code,
                out.stderr.trim()
            );
        }
        Ok(out.stdout)
    }

    /// Runs a command writing its stdout to `out` (a file, for `copy-from-node`); the exit
    /// code and stderr, and `out` back.
    pub async fn run_into<W: AsyncWrite + Unpin>(
        &self,
        args: &[&str],
        out: W,
    ) -> anyhow::Result<(Output, W)> {
        let mut stdio = Stdio {
            stdin: &b""[..],
            stdout: out,
            stderr: Vec::new(),
        };
        let code = steward_cli::run(
            &self.config(args),
            &mut stdio,
            &steward_cli::Interrupts::none(),
        )
        .await?;
        let output = Output {
            code,
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&stdio.stderr).into_owned(),
        };
        Ok((output, stdio.stdout))
    }

    /// Runs a command writing its stdout to `lines`; the exit code and stderr.
    pub async fn run_lines(&self, args: &[&str], lines: &LineClock) -> anyhow::Result<Output> {
        let mut stdio = Stdio {
            stdin: &b""[..],
            stdout: lines.clone(),
            stderr: Vec::new(),
        };
        let code = steward_cli::run(
            &self.config(args),
            &mut stdio,
            &steward_cli::Interrupts::none(),
        )
        .await?;
        Ok(Output {
            code,
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&stdio.stderr).into_owned(),
        })
    }
}

/// An output sink that records each complete line with the time (ns since the Unix epoch,
/// CLOCK_REALTIME) its last byte arrived; cheap to clone, clones share the lines.
#[derive(Clone, Default)]
pub struct LineClock {
    inner: Arc<Mutex<Lines>>,
    arrived: Arc<Notify>,
}

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    done: Vec<(i128, String)>,
}

impl LineClock {
    /// Waits for the first line starting with `prefix`; its arrival time and text.
    pub async fn wait_for(&self, prefix: &str) -> (i128, String) {
        loop {
            let notified = self.arrived.notified();
            if let Some(found) = self.find(prefix) {
                return found;
            }
            notified.await;
        }
    }

    /// The first line starting with `prefix`, if it has arrived.
    pub fn find(&self, prefix: &str) -> Option<(i128, String)> {
        self.lock()
            .done
            .iter()
            .find(|(_, line)| line.starts_with(prefix))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AsyncWrite for LineClock {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let at = now_ns();
        let mut any = false;
        {
            let mut lines = self.lock();
            for &byte in buf {
                if byte == b'\n' {
                    let line = String::from_utf8_lossy(&lines.partial).into_owned();
                    lines.partial.clear();
                    lines.done.push((at, line));
                    any = true;
                } else {
                    lines.partial.push(byte);
                }
            }
        }
        if any {
            self.arrived.notify_waiters();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
