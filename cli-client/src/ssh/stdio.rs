//! `ssh-proxy`'s stdin and stdout, read and written on the event loop when they are pipes
//! or sockets (as ssh gives a ProxyCommand): tokio's own stdin and stdout hand every read
//! and write to a blocking thread, a wake-up each way per chunk of an SSH session's bytes.
//! Anything else (a file, a terminal) keeps tokio's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pipe or socket in non-blocking mode, driven by the reactor.
pub struct Pipe {
    fd: AsyncFd<OwnedFd>,
}

impl Pipe {
    /// `fd` (0 or 1) on the event loop, if it is a pipe or a socket; `None` otherwise.
    /// The descriptor is duplicated: the process's own stays as it is.
    pub fn of(fd: BorrowedFd<'_>) -> Option<Pipe> {
        // SAFETY: fstat only fills the struct.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
            return None;
        }
        let kind = stat.st_mode & libc::S_IFMT;
        if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
            return None;
        }
        // A duplicate shares the open file description, and with it O_NONBLOCK: only ssh
        // holds the other end of these pipes, and this process is their only user here.
        let owned = fd.try_clone_to_owned().ok()?;
        // SAFETY: fcntl on a descriptor this process owns.
        unsafe {
            let flags = libc::fcntl(owned.as_raw_fd(), libc::F_GETFL);
            if flags < 0
                || libc::fcntl(owned.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return None;
            }
        }
        // SAFETY: an OwnedFd stays open, and names the same description, until dropped with
        // the AsyncFd.
        unsafe { AsyncFd::register(owned) }
            .ok()
            .map(|fd| Pipe { fd })
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let read = guard.try_io(|fd| {
                // SAFETY: reads into the caller's initialized, unfilled buffer.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let written = guard.try_io(|fd| {
                // SAFETY: writes from the caller's buffer.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match written {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The process's stdin: a [`Pipe`] when it can be, else tokio's.
pub fn stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    // SAFETY: descriptor 0 is open for the life of the process.
    let fd = unsafe { BorrowedFd::borrow_raw(0) };
    match Pipe::of(fd) {
        Some(pipe) => Box::new(pipe),
        None => Box::new(tokio::io::stdin()),
    }
}

/// The process's stdout: a [`Pipe`] when it can be, else tokio's.
pub fn stdout() -> Box<dyn AsyncWrite + Unpin + Send> {
    // SAFETY: descriptor 1 is open for the life of the process.
    let fd = unsafe { BorrowedFd::borrow_raw(1) };
    match Pipe::of(fd) {
        Some(pipe) => Box::new(pipe),
        None => Box::new(tokio::io::stdout()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_pipe_carries_bytes_both_ways_on_the_event_loop() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just opened and are owned here.
        let (read_end, write_end) = unsafe {
            (
                <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]),
                <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]),
            )
        };
        use std::os::fd::AsFd;
        let mut reader = Pipe::of(read_end.as_fd()).expect("a pipe");
        let mut writer = Pipe::of(write_end.as_fd()).expect("a pipe");
        drop((read_end, write_end));
        // More than a pipe holds: the writer must wait for the reader, not fail.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writing = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
        });
        let mut got = vec![0u8; data.len()];
        reader.read_exact(&mut got).await.unwrap();
        writing.await.unwrap();
        assert!(got == data);
    }

    #[test]
    fn a_regular_file_keeps_tokios_stdio() {
        let file = tempfile::tempfile().unwrap();
        use std::os::fd::AsFd;
        assert!(Pipe::of(file.as_fd()).is_none());
    }
}
