//! Pseudo-terminals for `pty-req` sessions: `openpty`, the master side as async I/O, and
//! the window size (`TIOCSWINSZ`, which also sends SIGWINCH to the foreground job).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Largest terminal dimension accepted from a client; larger values are clamped (a
/// `winsize` field is 16 bits).
const MAX_DIMENSION: u32 = u16::MAX as u32;

/// A window size as the client reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSize {
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
}

impl WindowSize {
    fn winsize(self) -> libc::winsize {
        let clamp = |v: u32| v.min(MAX_DIMENSION) as u16;
        libc::winsize {
            ws_row: clamp(self.rows),
            ws_col: clamp(self.cols),
            ws_xpixel: clamp(self.pix_width),
            ws_ypixel: clamp(self.pix_height),
        }
    }
}

/// A new terminal: the master stays here, the slave goes to the session's process.
pub struct Pty {
    pub master: Master,
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal of the given size.
pub fn open(size: WindowSize) -> io::Result<Pty> {
    let mut master: RawFd = -1;
    let mut slave: RawFd = -1;
    let winsize = size.winsize();
    // SAFETY: openpty writes two descriptors into the locals; name and termios are null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &winsize,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    set_cloexec(&master)?;
    set_cloexec(&slave)?;
    set_nonblocking(&master)?;
    // SAFETY: the descriptor is owned by the AsyncFd from here on and closed only when it
    // is dropped, which also deregisters it.
    let registered =
        unsafe { AsyncFd::register_with_interest(master, Interest::READABLE | Interest::WRITABLE) }
            .map_err(io::Error::from)?;
    Ok(Pty {
        master: Master {
            fd: Arc::new(registered),
        },
        slave,
    })
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The master side: what the process writes to its terminal is read here, what is written
/// here is its keyboard input. Cheap to clone, so reading and writing run apart.
#[derive(Clone)]
pub struct Master {
    fd: Arc<AsyncFd<OwnedFd>>,
}

impl Master {
    /// Reads what the terminal shows; `Ok(0)` once no process holds the terminal any more.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: reads into `buf`, whose length bounds the write.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => return Ok(n),
                // Linux reports a terminal whose last slave closed as EIO: the end.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads what the terminal has now, without waiting: `Ok(None)` when it has nothing.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: reads into `buf`, whose length bounds the write; the descriptor is
        // non-blocking.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            Some(libc::EIO) => Ok(Some(0)),
            _ => Err(e),
        }
    }

    /// Types what the terminal takes of `data` at once (at least one byte); how much.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: writes from `data`, whose length bounds the read.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Types `data` into the terminal.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.write(data).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Sets the terminal's size; the foreground job gets SIGWINCH.
    pub fn resize(&self, size: WindowSize) -> io::Result<()> {
        let winsize = size.winsize();
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
