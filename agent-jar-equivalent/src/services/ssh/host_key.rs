//! The SSH server's host key: one ed25519 key per work dir, made on first use and kept
//! across restarts, so that clients' `known_hosts` entries stay valid.
//!
//! It lives at `WORKDIR/remoting/ssh_host_ed25519_key` in OpenSSH's private key format,
//! readable by the agent's user only. It is written to a temporary file and linked into
//! place, so a reader never sees half a key and two agents racing on one work dir agree on
//! the key that won.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{LineEnding, PrivateKey};

/// The key's file name in the internal directory, as OpenSSH names its own.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";
/// Largest key file read: an ed25519 key in OpenSSH's format is about 400 bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read the SSH host key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the SSH host key {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SSH host key {} is not an OpenSSH private key: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// Where the host key of the agent with this work dir lives.
pub fn path(work_dir: &Path) -> PathBuf {
    super::internal_dir(work_dir).join(HOST_KEY_FILE)
}

/// Loads the host key, creating it first if there is none.
pub fn load_or_create(work_dir: &Path) -> Result<PrivateKey, HostKeyError> {
    let path = path(work_dir);
    match read(&path) {
        Err(HostKeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
        }
        other => return other,
    }
    create(&path)?;
    read(&path)
}

/// `ssh-ed25519 BASE64`, as `Response::SshHostKey` carries it.
pub fn public_line(key: &PrivateKey) -> String {
    let public = key.public_key();
    match public.to_openssh() {
        Ok(line) => line.split(' ').take(2).collect::<Vec<_>>().join(" "),
        // An ed25519 key always encodes; keep the answer well-formed regardless.
        Err(_) => String::new(),
    }
}

fn read(path: &Path) -> Result<PrivateKey, HostKeyError> {
    use std::io::Read;
    let read_error = |source| HostKeyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    PrivateKey::from_openssh(text.as_bytes()).map_err(|e| HostKeyError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn create(path: &Path) -> Result<(), HostKeyError> {
    let write_error = |source| HostKeyError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_error)?;

    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| write_error(std::io::Error::other(e.to_string())))?;

    let temp = dir.join(format!(
        ".{HOST_KEY_FILE}.{}.{}",
        std::process::id(),
        rand::rng().next_u32()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // A link never replaces: if another agent made the key first, its key stays.
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    written.map_err(write_error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_kept() {
        let work = tempfile::tempdir().unwrap();
        let first = load_or_create(work.path()).unwrap();
        let mode = std::fs::metadata(path(work.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(work.path()).unwrap();
        assert_eq!(public_line(&first), public_line(&again));
        let line = public_line(&first);
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(line.split(' ').count(), 2);
        // Nothing but the key is left in the directory.
        let names: Vec<_> = std::fs::read_dir(path(work.path()).parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [HOST_KEY_FILE]);
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_new_key() {
        let work = tempfile::tempdir().unwrap();
        let file = path(work.path());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "not a key").unwrap();
        assert!(matches!(
            load_or_create(work.path()),
            Err(HostKeyError::Invalid { .. })
        ));
    }
}
