//! Accepting connections, and going on when accepting fails.
//!
//! When the process is out of descriptors (`EMFILE`; `ENFILE` system-wide) the kernel
//! keeps completed connections in the listen queue and every accept fails: their clients
//! wait, unanswered, until they give up. [`Acceptor`] keeps one spare descriptor (an open
//! `/dev/null`) for that moment: it closes the spare, takes the waiting connections into its
//! place one at a time, writes each a `503` and closes it, then opens the spare again. So
//! clients are refused at once instead of left hanging, and accepting resumes by itself once
//! descriptors are free. When nothing could be refused that way (no spare, or the queue was
//! empty), it waits [`ACCEPT_BACKOFF`] before the next try, so a full descriptor table never
//! makes it spin. Errors are logged at most once a second with their count, and one line
//! says when accepting works again.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

use super::admission::unavailable_response;
use super::log_throttle::Throttle;

/// Pause after an accept error that could not be answered by refusing a connection: short
/// enough that a client waits for it unnoticed, long enough that a full descriptor table
/// costs ten tries a second rather than a spinning core.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Waiting connections refused with the spare descriptor before the loop lets other tasks
/// run; the rest are taken on the next turn.
pub const MAX_REFUSED_PER_ERROR: u64 = 64;
/// Bytes read at a time from a refused connection before it is closed.
const DRAIN_BUFFER: usize = 4096;
/// Most reads of a refused connection's request: a request head is a few KiB; a client
/// that sends more before its answer gets a reset, as it would anywhere.
const DRAIN_READS: usize = 16;
/// What the spare descriptor is: any file that always opens.
const SPARE_PATH: &str = "/dev/null";
/// The body of the answer to connections refused for want of descriptors.
const OUT_OF_DESCRIPTORS: &str =
    "too many open files: the controller cannot take another connection now";

/// A listener whose [`accept`](Acceptor::accept) always ends in a connection.
pub struct Acceptor {
    listener: TcpListener,
    spare: Option<std::fs::File>,
    refusal: Vec<u8>,
    errors: Throttle,
    /// Connections refused with the spare descriptor since the last log line.
    refused: u64,
    /// Whether accept has failed since it last succeeded.
    failing: bool,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            spare: open_spare(),
            refusal: unavailable_response(OUT_OF_DESCRIPTORS),
            errors: Throttle::default(),
            refused: 0,
            failing: false,
        }
    }

    /// The next connection and its peer. Cancel-safe: it only waits in the listener's
    /// `accept` and in the backoff, and changes its state between them without waiting.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let e = match self.listener.accept().await {
                Ok(accepted) => {
                    self.accepted();
                    return accepted;
                }
                Err(e) => e,
            };
            if is_connection_error(&e) {
                tracing::debug!(error = %e, "a connection ended before it was accepted");
                continue;
            }
            self.failing = true;
            let refused = if out_of_descriptors(&e) {
                self.refuse_waiting()
            } else {
                0
            };
            self.refused += refused;
            if let Some(errors) = self.errors.note(Instant::now()) {
                let refused = std::mem::take(&mut self.refused);
                tracing::error!(errors, refused, "accept error: {e}");
            }
            if refused == 0 {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    fn accepted(&mut self) {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        if std::mem::take(&mut self.failing) {
            let errors = self.errors.take();
            let refused = std::mem::take(&mut self.refused);
            tracing::info!(
                errors,
                refused,
                "accepting connections again after accept errors"
            );
        }
    }

    /// Gives up the spare descriptor to take waiting connections, answers each `503` and
    /// closes it; returns how many. The spare is opened again before returning.
    fn refuse_waiting(&mut self) -> u64 {
        if self.spare.take().is_none() {
            // No descriptor to give up: one may have been freed since.
            self.spare = open_spare();
            return 0;
        }
        let listener = SockRef::from(&self.listener);
        let mut refused = 0;
        while refused < MAX_REFUSED_PER_ERROR {
            // An error: none left waiting, or another task took the freed descriptor.
            let Ok((socket, _)) = listener.accept() else {
                break;
            };
            // A fresh socket's send buffer is empty: the answer fits without waiting.
            let _ = socket.set_nonblocking(true);
            let _ = socket.send(&self.refusal);
            let _ = socket.shutdown(std::net::Shutdown::Write);
            // What the client has sent already (its request), left unread at the close,
            // would make the kernel reset the connection, and the client could lose the
            // answer: read it away, a bounded few reads, without waiting for more.
            let mut drain = [std::mem::MaybeUninit::<u8>::uninit(); DRAIN_BUFFER];
            for _ in 0..DRAIN_READS {
                if !matches!(socket.recv(&mut drain), Ok(n) if n > 0) {
                    break;
                }
            }
            refused += 1;
        }
        self.spare = open_spare();
        refused
    }
}

fn open_spare() -> Option<std::fs::File> {
    std::fs::File::open(SPARE_PATH).ok()
}

/// Errors that concern one connection, gone before it was taken; the next accept is
/// unaffected (accept(2) asks to treat them as "try again").
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
