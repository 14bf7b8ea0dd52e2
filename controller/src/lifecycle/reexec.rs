//! `restart` in place: once the server has stopped, the `controller` binary runs itself
//! again with `execve`, keeping its process id, its arguments, its environment and its
//! listening socket. Every other descriptor is closed by the exec (the database, logs,
//! connections); the listening socket is handed over, its number in [`LISTEN_FD_VAR`], so
//! the port stays the same (one the system chose too) and connections that arrive during
//! the restart wait in its backlog instead of being refused.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::{Exit, Lifecycle};

/// The variable naming the inherited listening socket's descriptor; set only by a restart.
pub const LISTEN_FD_VAR: &str = "STEWARD_RESTART_LISTEN_FD";

/// What the binary needs to restart in place once the server has stopped: the lifecycle,
/// which says whether to, and the listening socket to hand over.
pub struct Handover {
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) listener: Option<OwnedFd>,
}

impl Handover {
    /// After the server stopped: returns for a shutdown (or a stop that asked for no
    /// restart), and for a restart runs the binary again in this process, returning only
    /// if that failed.
    pub fn finish(self) -> std::io::Result<()> {
        if self.lifecycle.requested() != Some(Exit::Restart) {
            return Ok(());
        }
        Err(exec(self.listener))
    }
}

/// A second descriptor of the listening socket, to hand over: the server closes its own
/// when it stops.
pub fn keep(listener: &tokio::net::TcpListener) -> std::io::Result<OwnedFd> {
    listener.as_fd().try_clone_to_owned()
}

/// The listening socket an earlier run of this process handed over, if [`LISTEN_FD_VAR`]
/// names one that is a listening TCP socket on `listen` (the configured address; any port
/// when it asks for port 0). Anything else is logged and ignored: the caller binds anew.
pub fn inherited(listen: SocketAddr) -> Option<std::net::TcpListener> {
    let value = std::env::var(LISTEN_FD_VAR).ok()?;
    let Ok(fd) = value.trim().parse::<RawFd>() else {
        tracing::warn!(value = ?value, "{LISTEN_FD_VAR} is not a descriptor number; binding anew");
        return None;
    };
    if fd <= 2 || !is_listening_socket(fd) {
        tracing::warn!(
            fd,
            "{LISTEN_FD_VAR} names no listening socket; binding anew"
        );
        return None;
    }
    // SAFETY: `fd` is open (fstat and getsockopt succeeded on it), a listening socket,
    // and owned by nothing else in this process: it came through exec, which only the
    // restart below leaves open, and is read once, here.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let local = listener.local_addr().ok()?;
    let same = local.ip() == listen.ip() && (listen.port() == 0 || local.port() == listen.port());
    if !same {
        tracing::warn!(%local, %listen, "the inherited socket listens elsewhere; binding anew");
        return None; // dropping it closes it
    }
    // Not handed to any program the controller starts.
    set_cloexec(fd, true).ok()?;
    listener.set_nonblocking(true).ok()?;
    tracing::info!(%local, "listening on the socket the previous run handed over");
    Some(listener)
}

fn is_listening_socket(fd: RawFd) -> bool {
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`; a descriptor that is
    // not an open socket makes it fail.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ok == 0 && accepting == 1
}

fn set_cloexec(fd: RawFd, on: bool) -> std::io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The binary to run again: the file now at the path this one was started from (an
/// upgraded binary, after a package upgrade replaced it), else this very one.
fn binary() -> std::path::PathBuf {
    match std::fs::read_link("/proc/self/exe") {
        Ok(path) => {
            let text = path.to_string_lossy();
            match text.strip_suffix(" (deleted)") {
                Some(original) if std::path::Path::new(original).is_file() => original.into(),
                Some(_) => "/proc/self/exe".into(),
                None => path,
            }
        }
        Err(_) => "/proc/self/exe".into(),
    }
}

/// Runs the binary again in this process; returns only the error when that failed.
fn exec(listener: Option<OwnedFd>) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let keep = listener.as_ref().map(|l| l.as_raw_fd());
    // Nothing but the listening socket and the standard streams goes across: descriptors
    // a library opened without close-on-exec are closed by the exec too.
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        for entry in entries.flatten() {
            if let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
                && fd > 2
                && Some(fd) != keep
            {
                let _ = set_cloexec(fd, true);
            }
        }
    }
    let mut args = std::env::args_os();
    let program = binary();
    let mut command = std::process::Command::new(&program);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    match keep {
        Some(fd) => {
            if let Err(e) = set_cloexec(fd, false) {
                return e;
            }
            command.env(LISTEN_FD_VAR, fd.to_string());
        }
        None => {
            command.env_remove(LISTEN_FD_VAR);
        }
    }
    tracing::info!(program = ?program, "running the controller again in place");
    let error = command.exec();
    // Still here: the exec failed. The socket goes with this process.
    drop(listener);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listening_socket_is_taken_over() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(is_listening_socket(listener.as_raw_fd()));
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(!is_listening_socket(file.as_raw_fd()));
        let connected = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!is_listening_socket(connected.as_raw_fd()));
    }
}
