//! The controller's home directory: the database, the node-secret HMAC key and the first
//! admin token, with the file modes that keep secrets private.
//!
//! ```text
//! HOME/
//!   steward.db                 nodes, users, API token hashes (SQLite)
//!   secrets/                   0700
//!     node-secret-hmac.key     32 random bytes, 0600
//!     initialAdminToken        the admin API token created on first start, 0600
//!     credentials.key          32 random bytes sealing the stored credentials, 0600
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use steward_protocol::secret::{SECRET_KEY_LEN, SecretKey};

pub const DATABASE_FILE: &str = "steward.db";
pub const SECRETS_DIR: &str = "secrets";
/// Where job directories (and their builds' console logs) live.
pub const JOBS_DIR: &str = "jobs";
pub const HMAC_KEY_FILE: &str = "node-secret-hmac.key";
pub const INITIAL_ADMIN_TOKEN_FILE: &str = "initialAdminToken";

/// Paths inside a prepared home directory.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// Creates the home and `secrets/` if missing and tightens `secrets/` to 0700.
    pub fn prepare(root: &Path) -> anyhow::Result<Home> {
        fs::create_dir_all(root)
            .with_context(|| format!("creating home directory {}", root.display()))?;
        // The home holds the database, consoles and secrets: the controller's user only.
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode 0700 on {}", root.display()))?;
        let secrets = root.join(SECRETS_DIR);
        fs::create_dir_all(&secrets).with_context(|| format!("creating {}", secrets.display()))?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode 0700 on {}", secrets.display()))?;
        Ok(Home {
            root: root.to_path_buf(),
        })
    }

    /// `jobs/`: one directory per job, holding its builds' console logs.
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join(JOBS_DIR)
    }

    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    pub fn secret_file(&self, name: &str) -> PathBuf {
        self.root.join(SECRETS_DIR).join(name)
    }

    /// Loads the node-secret key, creating 32 random bytes on first start.
    pub fn load_or_create_hmac_key(&self) -> anyhow::Result<SecretKey> {
        let path = self.secret_file(HMAC_KEY_FILE);
        match fs::read(&path) {
            Ok(bytes) => SecretKey::from_slice(&bytes).with_context(|| {
                format!(
                    "{} holds {} bytes, expected {SECRET_KEY_LEN}: refusing to start",
                    path.display(),
                    bytes.len()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; SECRET_KEY_LEN] = rand::random();
                write_secret_file(&path, &key)?;
                Ok(SecretKey::from_bytes(key))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// Writes a new file readable only by the owner (0600), durably. Fails if it exists.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode != 0o600 {
        bail!("{} has mode {mode:o}, expected 600", path.display());
    }
    Ok(())
}

/// Writes a secret file (0600) atomically, replacing any previous one: a temp file beside
/// it, synced, then renamed over it.
pub fn replace_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_secret_file(&tmp, contents)?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_private_modes_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::prepare(dir.path()).unwrap();
        let key = home.load_or_create_hmac_key().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(SECRETS_DIR)), 0o700);
        assert_eq!(mode(&home.secret_file(HMAC_KEY_FILE)), 0o600);
        let again = Home::prepare(dir.path())
            .unwrap()
            .load_or_create_hmac_key()
            .unwrap();
        assert_eq!(key.as_bytes(), again.as_bytes());
    }

    #[test]
    fn truncated_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::prepare(dir.path()).unwrap();
        write_secret_file(&home.secret_file(HMAC_KEY_FILE), b"short").unwrap();
        assert!(
            home.load_or_create_hmac_key()
                .unwrap_err()
                .to_string()
                .contains("expected 32")
        );
    }
}
