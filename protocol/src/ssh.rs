//! Debug access over the channel: the SSH connections the controller forwards to the SSH
//! server inside the agent, and the public keys both sides name.
//!
//! The controller never decodes SSH. For each client connection it opens one stream with
//! [`crate::services::Request::Ssh`], carrying an [`SshRequest`]: where the session lands
//! ([`SshTarget`]) and which keys may log in ([`AllowedKey`]). The agent answers with one
//! [`crate::services::Response::SshStarted`] (or an error) and from then on the stream's
//! data, both ways, is the client's raw SSH byte stream, end to end.
//!
//! Keys travel in OpenSSH's one-line form (`ssh-ed25519 AAAA… comment`); [`PublicKey`]
//! reads that form and gives the `SHA256:` fingerprint OpenSSH prints, without any crypto
//! beyond the hash: which key signs is the agent's SSH server's business.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most keys the controller passes with one connection: users' keys for the target.
pub const MAX_ALLOWED_KEYS: usize = 4096;
/// Longest public key line accepted (an RSA 16384-bit key is about 2.8 KB in base64).
pub const MAX_KEY_LINE: usize = 8 * 1024;

/// What the controller asks of the agent for one client connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRequest {
    /// The controller's id for this connection, unique while it runs: it names the
    /// connection in the agent's [`crate::agent_calls::AgentCall::SshLogin`] and in
    /// [`crate::services::Request::SshNotice`].
    pub connection: u64,
    pub target: SshTarget,
    /// Keys of the Steward users allowed on this target. Keys in the agent's own
    /// `.authorized_keys` are allowed as well.
    pub allowed_keys: Vec<AllowedKey>,
    /// The client's address as the controller saw it, for logs.
    pub client_address: String,
    /// The Steward user who opened the connection.
    pub steward_user: String,
}

/// Where a session lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SshTarget {
    /// The node itself: sessions start in the agent's work dir.
    Node,
    /// A build's workspace, with the build's environment.
    Build(BuildSession),
}

/// A session into a build: where it starts, with what, and who may log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSession {
    pub job: String,
    pub number: u64,
    /// The workspace, absolute on the agent.
    pub workspace: String,
    /// The build's environment (`BUILD_NUMBER`, `JOB_NAME`, `WORKSPACE`, parameters…).
    pub env: Vec<(String, String)>,
    /// SSH user names a client may log in as; empty means any.
    pub allowed_users: Vec<String>,
}

/// One key a Steward user may log in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedKey {
    /// The Steward user the key belongs to.
    pub user: String,
    /// `TYPE BASE64` (no comment).
    pub public_key: String,
}

/// Why a public key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the public key is empty: expected a line like `ssh-ed25519 AAAA… comment`")]
    Empty,
    #[error("the public key line is longer than {MAX_KEY_LINE} bytes")]
    TooLong,
    #[error(
        "`{0}` is not a public key type this server accepts (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com); is this a private key?"
    )]
    UnknownType(String),
    #[error("the public key has no key data after its type")]
    NoData,
    #[error("the public key's data is not base64: {0}")]
    NotBase64(String),
    #[error("the public key's data says it is `{inner}`, not `{outer}`")]
    TypeMismatch { outer: String, inner: String },
    #[error("the public key's data is truncated")]
    Truncated,
}

/// Key types the agent's SSH server can verify.
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A public key in OpenSSH's one-line form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `ssh-ed25519`, `ssh-rsa`…
    pub algorithm: String,
    /// The key's wire encoding (what the base64 says).
    pub blob: Vec<u8>,
    /// What followed the key data, trimmed; may be empty.
    pub comment: String,
}

impl PublicKey {
    /// Reads `TYPE BASE64 [COMMENT]`, as in `id_ed25519.pub` or an `authorized_keys` line
    /// without options.
    pub fn parse(line: &str) -> Result<PublicKey, KeyError> {
        if line.len() > MAX_KEY_LINE {
            return Err(KeyError::TooLong);
        }
        let line = line.trim();
        if line.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut parts = line.splitn(3, [' ', '\t']);
        let algorithm = parts.next().unwrap_or_default();
        if !KEY_TYPES.contains(&algorithm) {
            let algorithm: String = algorithm.chars().take(64).collect();
            return Err(KeyError::UnknownType(
                crate::shown::shown(&algorithm).into_owned(),
            ));
        }
        let data = parts.next().map(str::trim).unwrap_or_default();
        if data.is_empty() {
            return Err(KeyError::NoData);
        }
        let blob = STANDARD
            .decode(data)
            .map_err(|e| KeyError::NotBase64(e.to_string()))?;
        let inner = read_string(&blob).ok_or(KeyError::Truncated)?;
        if inner != algorithm.as_bytes() {
            return Err(KeyError::TypeMismatch {
                outer: algorithm.to_owned(),
                inner: crate::shown::shown(&String::from_utf8_lossy(inner)).into_owned(),
            });
        }
        Ok(PublicKey {
            algorithm: algorithm.to_owned(),
            blob,
            comment: parts.next().unwrap_or_default().trim().to_owned(),
        })
    }

    /// `SHA256:…`, as `ssh-keygen -l` and the SSH client print it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob)
    }

    /// `TYPE BASE64`, without the comment.
    pub fn openssh(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }
}

/// The `SHA256:` fingerprint of a key's wire encoding.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The first SSH `string` (u32 length, bytes) of `data`.
fn read_string(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    data.get(4..4usize.checked_add(len)?)
}

/// Whether `name` is a fingerprint as [`fingerprint`] writes it (what `remove-ssh-key`
/// takes).
pub fn is_fingerprint(name: &str) -> bool {
    name.strip_prefix("SHA256:").is_some_and(|hash| {
        hash.len() == 43 && STANDARD_NO_PAD.decode(hash).is_ok_and(|h| h.len() == 32)
    })
}

/// What `cli ssh TARGET` and the routes reach: a node, or a build as `JOB#N`. Job names
/// cannot contain `#` (it is one of Jenkins' unsafe characters), so the split is exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetName {
    Node(String),
    Build { job: String, number: u64 },
}

impl TargetName {
    /// Reads `NODE` or `JOB#N` (N a build number from 1).
    pub fn parse(text: &str) -> Result<TargetName, String> {
        match text.split_once('#') {
            None if text.is_empty() => Err("empty target: expected NODE or JOB#N".into()),
            None => Ok(TargetName::Node(text.to_owned())),
            Some((job, number)) => {
                let number = number
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0 && !number.starts_with('+'))
                    .ok_or_else(|| {
                        format!(
                            "‘{}’ is not a build: expected JOB#N with N a build number",
                            crate::shown::Shown(text)
                        )
                    })?;
                if job.is_empty() {
                    return Err(format!(
                        "‘{}’ names no job: expected JOB#N",
                        crate::shown::Shown(text)
                    ));
                }
                Ok(TargetName::Build {
                    job: job.to_owned(),
                    number,
                })
            }
        }
    }
}

impl std::fmt::Display for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetName::Node(node) => f.write_str(node),
            TargetName::Build { job, number } => write!(f, "{job}#{number}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -t ed25519 -C alice@example; ssh-keygen -lf prints the fingerprint below.
    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJDkNGiiezUzGB387ahXPQ7KmDIzbF/YIkWHYDyMB5l alice@example";
    const ALICE_FP: &str = "SHA256:oO1m00aJMaQ2kcDreNKgu405V+HF65PBzQ0B9Jrk8D0";

    #[test]
    fn reads_a_public_key_and_its_fingerprint() {
        let key = PublicKey::parse(ALICE).unwrap();
        assert_eq!(key.algorithm, "ssh-ed25519");
        assert_eq!(key.comment, "alice@example");
        assert_eq!(key.blob.len(), 4 + 11 + 4 + 32);
        assert_eq!(key.fingerprint(), ALICE_FP);
        assert!(is_fingerprint(&key.fingerprint()));
        assert_eq!(
            key.openssh(),
            ALICE.rsplit_once(' ').map(|(k, _)| k).unwrap()
        );
        // Without a comment, with extra blanks.
        let bare = PublicKey::parse(&format!("  {}\n", key.openssh())).unwrap();
        assert_eq!(bare.comment, "");
        assert_eq!(bare.blob, key.blob);
    }

    #[test]
    fn targets_are_nodes_or_builds() {
        assert_eq!(
            TargetName::parse("linux-1"),
            Ok(TargetName::Node("linux-1".into()))
        );
        assert_eq!(
            TargetName::parse("web#12"),
            Ok(TargetName::Build {
                job: "web".into(),
                number: 12
            })
        );
        assert_eq!(TargetName::parse("web#12").unwrap().to_string(), "web#12");
        for bad in [
            "", "web#", "web#0", "web#-1", "web#+1", "web#x", "#3", "a#1#2",
        ] {
            assert!(TargetName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_what_is_not_a_public_key() {
        assert_eq!(PublicKey::parse(" \n"), Err(KeyError::Empty));
        assert!(matches!(
            PublicKey::parse("-----BEGIN OPENSSH PRIVATE KEY-----"),
            Err(KeyError::UnknownType(_))
        ));
        assert_eq!(PublicKey::parse("ssh-ed25519"), Err(KeyError::NoData));
        assert!(matches!(
            PublicKey::parse("ssh-ed25519 not*base64"),
            Err(KeyError::NotBase64(_))
        ));
        // An ed25519 blob labelled as RSA.
        let data = ALICE.split(' ').nth(1).unwrap();
        assert_eq!(
            PublicKey::parse(&format!("ssh-rsa {data}")),
            Err(KeyError::TypeMismatch {
                outer: "ssh-rsa".into(),
                inner: "ssh-ed25519".into()
            })
        );
        assert_eq!(
            PublicKey::parse("ssh-ed25519 AAAA"),
            Err(KeyError::Truncated)
        );
        assert_eq!(
            PublicKey::parse(&format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_LINE))),
            Err(KeyError::TooLong)
        );
        assert!(!is_fingerprint("SHA256:short"));
        assert!(!is_fingerprint("MD5:aa:bb"));
    }
}
