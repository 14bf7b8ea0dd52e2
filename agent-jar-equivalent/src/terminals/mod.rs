//! Terminals on this node: the holder processes that keep each terminal's PTY and program
//! running whatever happens to the agent, and where they live.
//!
//! - [`holder`]: the holder, which this binary becomes when started under
//!   [`HOLDER_NAME`]: it owns the PTY, the program and the last output, and serves one
//!   agent at a time on its Unix socket;
//! - [`ring`]: the holder's output backlog, by absolute offset;
//! - [`ssh_client`]: the `ssh` driver's client, which a holder runs in its PTY;
//! - here: the holder's directory (`WORKDIR/remoting/terminals/KEY/`, KEY derived from the
//!   terminal's name), and the socket path, short enough for `sun_path` however deep the
//!   work dir is.
//!
//! The agent's side, which starts holders and relays between them and the controller, is
//! [`crate::services::terminals`].

pub mod holder;
pub mod ring;
pub mod ssh_client;

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The name the binary answers to as a terminal holder (its argv[0]).
pub const HOLDER_NAME: &str = "steward-terminal-holder";
/// The holder's socket, in its directory.
pub const SOCKET_FILE: &str = "sock";
/// The terminal's name, in its directory: `ListTerminals` reads it.
pub const NAME_FILE: &str = "name";
/// The holder's own log (its stderr): why it could not start or went away.
pub const LOG_FILE: &str = "holder.log";
/// The longest socket path `bind` and `connect` take (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Whether a program started as `argv0` is a terminal holder.
pub fn invoked_as_holder(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(HOLDER_NAME))
}

/// Where every terminal's directory lives.
pub fn root(work_dir: &Path) -> PathBuf {
    work_dir
        .join(crate::workdir::DEFAULT_INTERNAL_DIR)
        .join("terminals")
}

/// Terminal `name`'s directory: named by a hash, so any name makes a short, safe path.
pub fn dir(work_dir: &Path, name: &str) -> PathBuf {
    let digest = Sha256::digest(name.as_bytes());
    root(work_dir).join(hex::encode(&digest[..8]))
}

/// A socket path usable with `bind` and `connect`: the path itself when it fits in
/// `sun_path`, else `/proc/self/fd/N/sock` through a descriptor of the directory, which the
/// caller keeps open while it binds or connects.
pub struct SocketPath {
    pub path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl SocketPath {
    pub fn of(dir: &Path) -> std::io::Result<SocketPath> {
        let path = dir.join(SOCKET_FILE);
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(SocketPath { path, _dir: None });
        }
        let opened = std::fs::File::open(dir)?;
        let fd = OwnedFd::from(opened);
        let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", fd.as_raw_fd()));
        Ok(SocketPath {
            path,
            _dir: Some(fd),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_distinct_short_directories() {
        let work = Path::new("/w");
        let a = dir(work, "console-a");
        assert_eq!(a, dir(work, "console-a"));
        assert_ne!(a, dir(work, "console-b"));
        assert!(a.starts_with("/w/remoting/terminals"));
        assert_eq!(a.file_name().unwrap().len(), 16);
        assert_eq!(dir(work, "../../etc").parent(), a.parent());
    }

    #[test]
    fn a_deep_directory_gets_a_socket_path_through_its_descriptor() {
        let temp = tempfile::tempdir().unwrap();
        let deep = temp.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let socket = SocketPath::of(&deep).unwrap();
        assert!(
            socket.path.starts_with("/proc/self/fd"),
            "{:?}",
            socket.path
        );
        let listener = std::os::unix::net::UnixListener::bind(&socket.path).unwrap();
        assert!(deep.join(SOCKET_FILE).exists());
        let _client = std::os::unix::net::UnixStream::connect(&socket.path).unwrap();
        drop(listener);
    }

    #[test]
    fn the_holder_is_told_by_its_name() {
        assert!(invoked_as_holder(OsStr::new("/x/steward-terminal-holder")));
        assert!(!invoked_as_holder(OsStr::new("agent")));
    }
}
