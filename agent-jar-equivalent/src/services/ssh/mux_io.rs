//! A channel stream as `AsyncRead` + `AsyncWrite`, for the SSH server that runs on it.
//!
//! The stream's halves have async `send`/`recv`; the server wants poll-based I/O. Each
//! direction keeps at most one message in flight: a read holds the chunk last received until
//! it is consumed, a write holds one chunk (at most one DATA frame) until the channel has
//! taken it. Backpressure is the channel's credit: when the controller stops reading, the
//! pending send waits and `poll_write` returns `Pending`.
//!
//! The stream also ends (reads see EOF, writes fail) when `cancel` fires, which is how a
//! connection is closed from outside (`Sessions::close_connection`, agent shutdown).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use steward_channel::{RecvHalf, SendHalf, StreamError};
use steward_protocol::channel::MAX_DATA_PAYLOAD;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

type Recv = Pin<Box<dyn Future<Output = (RecvHalf, Option<Result<Bytes, StreamError>>)> + Send>>;
type Sending = Pin<Box<dyn Future<Output = (SendHalf, Result<(), StreamError>)> + Send>>;

enum Reading {
    Idle(RecvHalf),
    Busy(Recv),
    /// EOF, an error already reported, or cancelled.
    Done,
}

enum Writing {
    Idle(SendHalf),
    /// One chunk on its way, or EOF being sent (`finishing`).
    Busy {
        send: Sending,
        finishing: bool,
    },
    Finished,
    Failed,
}

/// A `MuxStream` as a byte stream.
pub struct MuxIo {
    reading: Reading,
    /// What was received and not read yet.
    held: Bytes,
    writing: Writing,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    cancel: CancellationToken,
}

impl MuxIo {
    pub fn new(send: SendHalf, recv: RecvHalf, cancel: CancellationToken) -> Self {
        MuxIo {
            reading: Reading::Idle(recv),
            held: Bytes::new(),
            writing: Writing::Idle(send),
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
            cancel,
        }
    }

    /// Drives a pending send; `Ready` once the send half is idle again (or gone).
    fn poll_pending_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Writing::Busy { send, finishing } = &mut self.writing else {
            return Poll::Ready(match self.writing {
                Writing::Failed => Err(closed("the stream failed")),
                _ => Ok(()),
            });
        };
        let finishing = *finishing;
        let (half, result) = ready!(send.as_mut().poll(cx));
        match result {
            Ok(()) if finishing => {
                // Keep the half: dropping it after EOF sends nothing more.
                drop(half);
                self.writing = Writing::Finished;
                Poll::Ready(Ok(()))
            }
            Ok(()) => {
                self.writing = Writing::Idle(half);
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.writing = Writing::Failed;
                Poll::Ready(Err(stream_error(e)))
            }
        }
    }
}

fn closed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, why.to_owned())
}

fn stream_error(e: StreamError) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

impl AsyncRead for MuxIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.held.is_empty() {
                let n = this.held.len().min(buf.remaining());
                buf.put_slice(&this.held.split_to(n));
                return Poll::Ready(Ok(()));
            }
            // Polled only while not cancelled: it registers the waker, and is never polled
            // again once complete.
            if this.cancel.is_cancelled() || this.cancelled.as_mut().poll(cx).is_ready() {
                this.reading = Reading::Done;
            }
            match std::mem::replace(&mut this.reading, Reading::Done) {
                Reading::Done => return Poll::Ready(Ok(())),
                Reading::Idle(mut recv) => {
                    this.reading = Reading::Busy(Box::pin(async move {
                        let next = recv.recv().await;
                        (recv, next)
                    }));
                }
                Reading::Busy(mut future) => match future.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.reading = Reading::Busy(future);
                        return Poll::Pending;
                    }
                    Poll::Ready((recv, next)) => match next {
                        Some(Ok(chunk)) => {
                            this.held = chunk;
                            this.reading = Reading::Idle(recv);
                        }
                        // EOF: the client's bytes have all arrived.
                        None => return Poll::Ready(Ok(())),
                        Some(Err(e)) => return Poll::Ready(Err(stream_error(e))),
                    },
                },
            }
        }
    }
}

impl AsyncWrite for MuxIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cancel.is_cancelled() {
            return Poll::Ready(Err(closed("the connection was closed")));
        }
        ready!(this.poll_pending_send(cx))?;
        let mut half = match std::mem::replace(&mut this.writing, Writing::Failed) {
            Writing::Idle(half) => half,
            other => {
                this.writing = other;
                return Poll::Ready(Err(closed("the stream is finished")));
            }
        };
        let n = buf.len().min(MAX_DATA_PAYLOAD);
        // Copied once, straight into the frame that goes to the socket.
        let mut frame = steward_channel::data_buffer(n);
        frame.extend_from_slice(&buf[..n]);
        let send: Sending = Box::pin(async move {
            let result = half.send_buffer(frame).await;
            (half, result)
        });
        this.writing = Writing::Busy {
            send,
            finishing: false,
        };
        // Start it now: with credit at hand it completes without waiting for a flush.
        if let Poll::Ready(Err(e)) = this.poll_pending_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending_send(cx))?;
        match std::mem::replace(&mut this.writing, Writing::Finished) {
            Writing::Idle(mut half) => {
                this.writing = Writing::Busy {
                    send: Box::pin(async move {
                        let result = half.finish().await;
                        (half, result)
                    }),
                    finishing: true,
                };
                this.poll_pending_send(cx)
            }
            other => {
                this.writing = other;
                Poll::Ready(Ok(()))
            }
        }
    }
}
