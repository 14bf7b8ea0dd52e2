//! A socket reader that holds a large buffer only while bulk data flows.
//!
//! What a connection costs at rest is mostly the read buffers above the socket: tungstenite
//! keeps one of [`crate::agents::handshake::AGENT_READ_BUFFER`] per agent, small so that
//! 10,000 idle agents fit in memory. But it also reads at most that much per system call,
//! and a 1 GiB upload from an agent then takes over a hundred thousand reads.
//!
//! [`AdaptiveRead`] sits between the TCP stream and everything above it (hyper, then the
//! WebSocket). At rest it owns no buffer and reads go straight into the caller's. When a
//! read fills the caller's buffer, more is probably waiting: it allocates [`BULK_READ`]
//! bytes and from then on reads that much per system call, handing it out in the caller's
//! pieces. When a read brings less than [`LIGHT_READ`] (the burst is over), it frees the
//! buffer once the caller has taken what is in it. So an idle connection costs nothing here
//! and a busy one at most [`BULK_READ`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read per system call while bulk data flows.
pub const BULK_READ: usize = 128 * 1024;
/// A read that brings less than this ends bulk mode, and one that fills a caller's buffer at
/// least this large starts it.
pub const LIGHT_READ: usize = 4 * 1024;

/// See the module documentation.
pub struct AdaptiveRead<S> {
    inner: S,
    /// Read but not yet handed out; empty, with no allocation, at rest.
    buffered: BytesMut,
    /// Bulk mode: reads go through `buffered`.
    bulk: bool,
}

impl<S> AdaptiveRead<S> {
    pub fn new(inner: S) -> Self {
        AdaptiveRead {
            inner,
            buffered: BytesMut::new(),
            bulk: false,
        }
    }

    /// Bytes allocated for reading ahead (0 at rest).
    pub fn buffer_capacity(&self) -> usize {
        self.buffered.capacity()
    }

    /// Hands out what is buffered; frees the buffer when it is drained and bulk mode is over.
    fn hand_out(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.buffered.len().min(out.remaining());
        out.put_slice(&self.buffered[..n]);
        self.buffered.advance(n);
        if self.buffered.is_empty() && !self.bulk {
            self.buffered = BytesMut::new();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AdaptiveRead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buffered.is_empty() {
            this.hand_out(out);
            return Poll::Ready(Ok(()));
        }
        if !this.bulk || out.remaining() >= BULK_READ {
            // Straight into the caller's buffer.
            let wanted = out.remaining();
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            let got = out.filled().len() - before;
            this.bulk = got == wanted && got >= LIGHT_READ;
            return Poll::Ready(Ok(()));
        }
        this.buffered.reserve(BULK_READ);
        let got = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut this.inner),
            cx,
            &mut this.buffered
        ))?;
        this.bulk = got >= LIGHT_READ;
        this.hand_out(out);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AdaptiveRead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads `len` bytes in pieces of `piece`, checking the content.
    async fn read_exactly<S: AsyncRead + Unpin>(
        reader: &mut AdaptiveRead<S>,
        len: usize,
        piece: usize,
    ) -> Vec<u8> {
        let mut all = Vec::with_capacity(len);
        let mut chunk = vec![0; piece];
        while all.len() < len {
            let n = reader.read(&mut chunk).await.unwrap();
            assert!(n > 0, "early EOF after {} of {len} bytes", all.len());
            all.extend_from_slice(&chunk[..n]);
        }
        all
    }

    /// Counts the reads that reach the socket.
    struct CountingReads<S> {
        inner: S,
        reads: usize,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for CountingReads<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let polled = Pin::new(&mut self.inner).poll_read(cx, out);
            if polled.is_ready() {
                self.reads += 1;
            }
            polled
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn bulk_data_arrives_intact_and_the_buffer_is_freed_after_it() {
        let (mut writer, reader) = tokio::io::duplex(4 * BULK_READ);
        let mut reader = AdaptiveRead::new(CountingReads {
            inner: reader,
            reads: 0,
        });
        let data = pattern(3 * BULK_READ + 123);
        writer.write_all(&data).await.unwrap();

        // The first 8 KiB read fills the caller's buffer: bulk mode starts.
        let first = read_exactly(&mut reader, 8 * 1024, 8 * 1024).await;
        assert_eq!(first, data[..8 * 1024]);
        assert!(reader.bulk);
        let rest = read_exactly(&mut reader, data.len() - first.len(), 8 * 1024).await;
        assert_eq!(rest, data[first.len()..]);
        // 8 KiB at a time would take 49 reads of the socket; BULK_READ at a time, 5.
        assert!(
            reader.inner.reads <= 5,
            "{} socket reads for {} bytes",
            reader.inner.reads,
            data.len()
        );

        // A small message after the burst ends bulk mode and frees the buffer.
        writer.write_all(b"ping").await.unwrap();
        let small = read_exactly(&mut reader, 4, 8 * 1024).await;
        assert_eq!(small, b"ping");
        assert!(!reader.bulk);
        assert_eq!(reader.buffer_capacity(), 0);
    }

    #[tokio::test]
    async fn small_reads_never_allocate() {
        let (mut writer, reader) = tokio::io::duplex(64 * 1024);
        let mut reader = AdaptiveRead::new(reader);
        for round in 0..50u8 {
            let message = vec![round; 100];
            writer.write_all(&message).await.unwrap();
            assert_eq!(read_exactly(&mut reader, 100, 8 * 1024).await, message);
            assert_eq!(reader.buffer_capacity(), 0);
        }
    }

    #[tokio::test]
    async fn a_read_smaller_than_the_buffered_data_gets_the_rest_later() {
        let (mut writer, reader) = tokio::io::duplex(4 * BULK_READ);
        let mut reader = AdaptiveRead::new(reader);
        let data = pattern(BULK_READ + LIGHT_READ);
        writer.write_all(&data).await.unwrap();
        drop(writer);
        // Odd piece sizes cut across the buffer's edges.
        let mut got = read_exactly(&mut reader, LIGHT_READ, LIGHT_READ).await;
        got.extend(read_exactly(&mut reader, data.len() - got.len(), 1000).await);
        assert_eq!(got, data);
        let mut tail = [0; 16];
        assert_eq!(
            reader.read(&mut tail).await.unwrap(),
            0,
            "EOF after the data"
        );
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut a = AdaptiveRead::new(a);
        a.write_all(b"hello").await.unwrap();
        a.flush().await.unwrap();
        let mut got = [0; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }
}
