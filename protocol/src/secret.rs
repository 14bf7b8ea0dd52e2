//! Node secrets (compat §2): `lowercase_hex(HMAC-SHA256(key, node name))`.
//!
//! Both types print `***` in `Debug` so a secret never reaches a log line by accident, and
//! comparisons run in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Length of the controller's HMAC key in bytes.
pub const SECRET_KEY_LEN: usize = 32;
/// Length of a node secret: 32 HMAC bytes as lowercase hex.
pub const NODE_SECRET_HEX_LEN: usize = 64;
/// What the crumb key is derived from (the label is not a name anything can take: it holds
/// a NUL).
const CRUMB_KEY_LABEL: &[u8] = b"steward crumb key\0v1";
/// What the breakpoint key is derived from, likewise.
const BUILD_KEY_LABEL: &[u8] = b"steward build key\0v1";

/// The controller's HMAC key, created once per controller and kept on disk (mode 0600).
#[derive(Clone)]
pub struct SecretKey([u8; SECRET_KEY_LEN]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; SECRET_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads a key stored as raw bytes; `None` when the length is wrong.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_KEY_LEN] {
        &self.0
    }

    /// The secret an agent must present for `node_name`.
    pub fn node_secret(&self, node_name: &str) -> NodeSecret {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(node_name.as_bytes());
        NodeSecret(hex::encode(mac.finalize().into_bytes()))
    }

    /// The CSRF crumb handed to `user` (`/crumbIssuer/api/json`): the HMAC of the user's
    /// name under a key of its own, derived from this one (the HMAC of a fixed label), so
    /// no crumb is ever a node secret, whatever names nodes and users may take.
    pub fn crumb(&self, user: &str) -> String {
        let mut derive =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        derive.update(CRUMB_KEY_LABEL);
        let crumb_key = derive.finalize().into_bytes();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&crumb_key).expect("HMAC takes keys of any length");
        mac.update(user.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl SecretKey {
    /// The key a build's steps and SSH sessions hold (`STEWARD_BUILD_KEY`), which the
    /// `breakpoint` command must present: the HMAC of the build's id under a key of its own
    /// (derived as the crumb's is), so knowing a job's name and a build's number is not
    /// enough to act on its breakpoint.
    pub fn build_key(&self, build_id: u64) -> String {
        let mut derive =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        derive.update(BUILD_KEY_LABEL);
        let build_key = derive.finalize().into_bytes();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&build_key).expect("HMAC takes keys of any length");
        mac.update(&build_id.to_be_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `presented` is build `build_id`'s key, compared in constant time.
    pub fn is_build_key(&self, build_id: u64, presented: &str) -> bool {
        self.build_key(build_id)
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// A node secret as 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecret(String);

impl NodeSecret {
    /// Wraps a secret given by a user (`-secret`); it is not checked for shape here.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret text, for the few places that must send or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a presented secret in constant time (for equal lengths).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The AES-128 key of the `?encrypt=true` JNLP form: the first 16 HMAC bytes, which are
    /// the first 32 hex characters of the secret (compat §3.2). `None` if the secret is not hex.
    pub fn jnlp_key(&self) -> Option<[u8; 16]> {
        let head = self.0.get(..32)?;
        let mut key = [0u8; 16];
        hex::decode_to_slice(head, &mut key).ok()?;
        Some(key)
    }
}

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_secret_is_hmac_sha256_hex() {
        let key = SecretKey::from_bytes([7u8; 32]);
        let secret = key.node_secret("linux-1");
        assert_eq!(secret.expose().len(), NODE_SECRET_HEX_LEN);
        assert!(
            secret
                .expose()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(secret, key.node_secret("linux-2"));
        assert_eq!(secret, key.node_secret("linux-1"));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256 with key 0x00..0x1f over "agent", computed independently with Python's hmac.
        let key = SecretKey::from_bytes(std::array::from_fn(|i| i as u8));
        assert_eq!(
            key.node_secret("agent").expose(),
            "bb3c797db851b4cd17cec536b30b851bfd3ea4052abf1bde424ec0d1fb1ad13b"
        );
    }

    #[test]
    fn crumbs_are_per_user_and_never_a_node_secret() {
        let key = SecretKey::from_bytes([7u8; 32]);
        assert_eq!(key.crumb("admin"), key.crumb("admin"));
        assert_ne!(key.crumb("admin"), key.crumb("alice"));
        assert_ne!(key.crumb("admin"), key.node_secret("admin").expose());
        assert_ne!(key.crumb("admin"), key.node_secret("crumb").expose());
    }

    #[test]
    fn debug_hides_secrets() {
        let key = SecretKey::from_bytes([1u8; 32]);
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
        assert_eq!(format!("{:?}", key.node_secret("x")), "NodeSecret(***)");
    }

    #[test]
    fn matches_is_exact() {
        let s = NodeSecret::new("ab".repeat(32));
        assert!(s.matches(&"ab".repeat(32)));
        assert!(!s.matches(&"ab".repeat(31)));
        assert!(!s.matches(&"ba".repeat(32)));
    }

    #[test]
    fn jnlp_key_is_first_half_of_secret() {
        let s = NodeSecret::new(format!("{}{}", "0f".repeat(16), "ff".repeat(16)));
        assert_eq!(s.jnlp_key(), Some([0x0f; 16]));
        assert_eq!(NodeSecret::new("zz").jnlp_key(), None);
    }
}
