//! A progress bar for long copies: `copy-to-node` counts the stdin bytes sent, and
//! `copy-from-node` the stdout bytes received, and shows them with the rate on stderr.
//!
//! The bar appears only when stderr is a terminal and the copy has run for
//! [`SHOW_AFTER`]; otherwise the client is silent, as scripts expect. [`process_stdio`]
//! wraps the process's standard streams: the counted one goes through [`Counting`], and
//! stderr through [`BarAwareStderr`] so the command's own messages do not tear the bar.

use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::session::Stdio;

/// Copies quicker than this finish without a bar: one flashing by is noise.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);
/// How often the bar redraws by itself, so the rate stays current while bytes stall.
pub const TICK: Duration = Duration::from_millis(200);

/// Which standard stream a command's bytes flow through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Stdin,
    Stdout,
}

/// The stream to count for a command line, when it is a copy.
pub fn counted_stream(args: &[String]) -> Option<Counted> {
    match args.first().map(String::as_str) {
        Some("copy-to-node") => Some(Counted::Stdin),
        Some("copy-from-node") => Some(Counted::Stdout),
        _ => None,
    }
}

/// A progress bar, hidden until the copy has run for [`SHOW_AFTER`].
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: AtomicBool,
}

impl Progress {
    /// `total` is the size when known (stdin is a regular file).
    pub fn new(total: Option<u64>) -> Self {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        let template = if total.is_some() {
            "{bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} eta {eta}"
        } else {
            "{spinner} {bytes} {binary_bytes_per_sec} {elapsed}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
        }
    }

    /// Counts `n` bytes, showing the bar once the copy has run long enough.
    pub fn add(&self, n: u64) {
        self.bar.inc(n);
        if !self.shown.load(Ordering::Relaxed) && self.started.elapsed() >= SHOW_AFTER {
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(TICK);
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bar.position()
    }

    /// Leaves a last line with the total and the average rate after a successful copy;
    /// after a failure, leaves the bar where it stopped, above the error.
    pub fn finish(&self, succeeded: bool) {
        if !self.shown.load(Ordering::Relaxed) {
            return;
        }
        if succeeded {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let bytes = self.bar.position();
            if let Ok(style) = ProgressStyle::with_template("{msg}") {
                self.bar.set_style(style);
            }
            self.bar.finish_with_message(format!(
                "{} in {:.1}s ({}/s)",
                indicatif::BinaryBytes(bytes),
                secs,
                indicatif::BinaryBytes((bytes as f64 / secs) as u64)
            ));
        } else {
            self.bar.abandon();
        }
    }

    /// Runs `f` with the bar cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }
}

/// A reader or writer that counts the bytes passing through.
pub struct Counting<T> {
    inner: T,
    progress: Arc<Progress>,
}

impl<T> Counting<T> {
    pub fn new(inner: T, progress: Arc<Progress>) -> Self {
        Counting { inner, progress }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.progress.add((buf.filled().len() - before) as u64);
        }
        polled
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.progress.add(n as u64);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The process's stderr, written with the bar cleared. The write is synchronous: stderr is
/// a terminal here (or the bar would not exist), and the command's messages are short.
pub struct BarAwareStderr {
    progress: Arc<Progress>,
}

impl AsyncWrite for BarAwareStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = self.progress.suspend(|| {
            let mut stderr = std::io::stderr().lock();
            stderr.write_all(buf)?;
            stderr.flush()
        });
        Poll::Ready(written.map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub type BoxedStdio = Stdio<
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
>;

/// The process's standard streams for `args`, with a progress bar when the command is a
/// copy and stderr is a terminal.
pub fn process_stdio(args: &[String]) -> (BoxedStdio, Option<Arc<Progress>>) {
    let counted = counted_stream(args).filter(|_| std::io::stderr().is_terminal());
    let Some(counted) = counted else {
        let stdio = Stdio::process();
        let boxed: BoxedStdio = Stdio {
            stdin: Box::new(stdio.stdin),
            stdout: Box::new(stdio.stdout),
            stderr: Box::new(stdio.stderr),
        };
        return (boxed, None);
    };
    let total = match counted {
        Counted::Stdin => stdin_file_size(),
        Counted::Stdout => None,
    };
    let progress = Arc::new(Progress::new(total));
    let stdin: Box<dyn AsyncRead + Unpin + Send> = match counted {
        Counted::Stdin => Box::new(Counting::new(tokio::io::stdin(), progress.clone())),
        Counted::Stdout => Box::new(tokio::io::stdin()),
    };
    let stdout: Box<dyn AsyncWrite + Unpin + Send> = match counted {
        Counted::Stdout => Box::new(Counting::new(tokio::io::stdout(), progress.clone())),
        Counted::Stdin => Box::new(tokio::io::stdout()),
    };
    let stderr: Box<dyn AsyncWrite + Unpin + Send> = Box::new(BarAwareStderr {
        progress: progress.clone(),
    });
    let stdio = Stdio {
        stdin,
        stdout,
        stderr,
    };
    (stdio, Some(progress))
}

/// The size of stdin when it is a regular file (`cli copy-to-node n /x < file`).
#[cfg(unix)]
fn stdin_file_size() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(fd).metadata().ok()?;
    metadata.is_file().then_some(metadata.len())
}

#[cfg(not(unix))]
fn stdin_file_size() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_copies_are_counted() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            counted_stream(&args(&["copy-to-node", "n", "/x"])),
            Some(Counted::Stdin)
        );
        assert_eq!(
            counted_stream(&args(&["copy-from-node", "n", "/x"])),
            Some(Counted::Stdout)
        );
        assert_eq!(counted_stream(&args(&["exec-on-node", "n"])), None);
        assert_eq!(counted_stream(&[]), None);
    }

    #[tokio::test]
    async fn counting_passes_bytes_through() {
        let progress = Arc::new(Progress::new(None));
        let mut reader = Counting::new(&b"hello world"[..], progress.clone());
        let mut read = Vec::new();
        reader.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"hello world");
        let mut writer = Counting::new(Vec::new(), progress.clone());
        writer.write_all(b"abc").await.unwrap();
        assert_eq!(writer.inner, b"abc");
        assert_eq!(progress.bytes(), 14);
        // Hidden (not run long enough): finishing draws nothing.
        progress.finish(true);
    }
}
