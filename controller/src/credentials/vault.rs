//! Credentials at rest: sealed with AES-256-GCM under a key of the home
//! (`secrets/credentials.key`, 32 random bytes, 0600), each with a nonce of its own and its
//! id as associated data, so a sealed value moved to another credential's row does not open.

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The key file's name under `secrets/`.
pub const KEY_FILE: &str = "credentials.key";
const KEY_LEN: usize = 32;

/// The sealing key.
pub struct Vault {
    key: LessSafeKey,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(***)")
    }
}

impl Vault {
    /// Loads the key from `path`, creating it on first use.
    pub fn open(path: &Path) -> anyhow::Result<Vault> {
        use anyhow::Context;
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; KEY_LEN] = rand::random();
                crate::home::write_secret_file(path, &key)?;
                key.to_vec()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Vault::from_bytes(&bytes).with_context(|| {
            format!(
                "{} holds {} bytes, expected {KEY_LEN}: refusing to start",
                path.display(),
                bytes.len()
            )
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Vault> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("not an AES-256 key"))?;
        Ok(Vault {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `plain` for credential `id`: the nonce followed by the ciphertext and tag.
    pub fn seal(&self, id: &str, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = plain.to_vec();
        // Sealing only fails for inputs over 64 GiB.
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .is_err()
        {
            return Vec::new();
        }
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        out
    }

    /// Opens what [`Vault::seal`] sealed for `id`; `None` when it was sealed under another
    /// key or id, or was altered.
    pub fn open_sealed(&self, id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut data)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_id_and_key() {
        let vault = Vault::from_bytes(&[1; KEY_LEN]).unwrap();
        let sealed = vault.seal("a", b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open_sealed("a", &sealed).unwrap(), b"hunter2");
        assert_eq!(vault.open_sealed("b", &sealed), None);
        let other = Vault::from_bytes(&[2; KEY_LEN]).unwrap();
        assert_eq!(other.open_sealed("a", &sealed), None);
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(vault.open_sealed("a", &altered), None);
    }

    #[test]
    fn the_key_file_is_made_once_with_a_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let sealed = Vault::open(&path).unwrap().seal("x", b"s");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            Vault::open(&path)
                .unwrap()
                .open_sealed("x", &sealed)
                .unwrap(),
            b"s"
        );
    }
}
