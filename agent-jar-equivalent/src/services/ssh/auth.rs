//! Who may log in: public keys only. A key is accepted when it is one the controller passed
//! with the connection (a Steward user's key for this target) or one listed in the agent's
//! own `WORKDIR/.authorized_keys`, read afresh for every connection. A build session may
//! further restrict the SSH user names.
//!
//! Keys are compared by their wire encoding, which names the algorithm: an RSA key offered
//! as `rsa-sha2-256` matches its `ssh-rsa` line.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use steward_protocol::ssh::{self, AllowedKey, PublicKey, SshTarget};
use tracing::{debug, info};

/// The agent's own list of keys, in the work dir, in OpenSSH's `authorized_keys` format.
pub const AUTHORIZED_KEYS_FILE: &str = ".authorized_keys";
/// Most bytes read from `.authorized_keys`: thousands of keys, still a bounded read.
pub const MAX_AUTHORIZED_KEYS_FILE: u64 = 4 * 1024 * 1024;

/// A key that may log in, and whose it is.
#[derive(Debug, Clone)]
struct Entry {
    blob: Vec<u8>,
    /// The Steward user, or `None` for `.authorized_keys`.
    owner: Option<String>,
}

/// The keys and user names one connection accepts.
#[derive(Debug, Clone, Default)]
pub struct KeyPolicy {
    entries: Vec<Entry>,
    /// SSH user names allowed; `None` means any.
    users: Option<Vec<String>>,
}

/// A key that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub fingerprint: String,
    /// The Steward user whose key it is; `None` for `.authorized_keys`.
    pub owner: Option<String>,
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the key {fingerprint} is not allowed here")]
    UnknownKey { fingerprint: String },
    #[error("the user name is not one this build allows")]
    UserNotAllowed,
}

impl KeyPolicy {
    /// The policy for one connection: the controller's keys, the work dir's
    /// `.authorized_keys`, and the build's user names.
    pub fn for_connection(allowed: &[AllowedKey], target: &SshTarget, work_dir: &Path) -> Self {
        let mut entries = Vec::new();
        for key in allowed.iter().take(ssh::MAX_ALLOWED_KEYS) {
            match PublicKey::parse(&key.public_key) {
                Ok(parsed) => entries.push(Entry {
                    blob: parsed.blob,
                    owner: Some(key.user.clone()),
                }),
                Err(e) => debug!(user = ?key.user, error = %e, "skipping an allowed key"),
            }
        }
        for blob in read_authorized_keys(&work_dir.join(AUTHORIZED_KEYS_FILE)) {
            entries.push(Entry { blob, owner: None });
        }
        let users = match target {
            SshTarget::Build(build) if !build.allowed_users.is_empty() => {
                Some(build.allowed_users.clone())
            }
            _ => None,
        };
        KeyPolicy { entries, users }
    }

    /// Whether `user` may log in with the key whose wire encoding is `blob`.
    pub fn check(&self, user: &str, blob: &[u8]) -> Result<Accepted, Refusal> {
        let fingerprint = ssh::fingerprint(blob);
        let Some(entry) = self.entries.iter().find(|e| e.blob == blob) else {
            return Err(Refusal::UnknownKey { fingerprint });
        };
        if let Some(users) = &self.users
            && !users.iter().any(|u| u == user)
        {
            return Err(Refusal::UserNotAllowed);
        }
        Ok(Accepted {
            fingerprint,
            owner: entry.owner.clone(),
        })
    }
}

/// The keys of an `authorized_keys` file; a missing file lists none. Lines with options
/// (`command=…`, `from=…`) are skipped: honouring half of what they say would grant more
/// than their author meant.
fn read_authorized_keys(path: &PathBuf) -> Vec<Vec<u8>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            info!(path = %path.display(), error = %e, "cannot read the authorized keys");
            return Vec::new();
        }
    };
    let mut keys = Vec::new();
    let reader = BufReader::new(file.take(MAX_AUTHORIZED_KEYS_FILE));
    for (number, line) in reader.split(b'\n').enumerate() {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match PublicKey::parse(line) {
            Ok(key) => keys.push(key.blob),
            Err(e) => info!(
                path = %path.display(),
                line = number + 1,
                error = %e,
                "skipping an authorized_keys line (lines with options are not supported)"
            ),
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use steward_protocol::ssh::BuildSession;

    use super::*;

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJDkNGiiezUzGB387ahXPQ7KmDIzbF/YIkWHYDyMB5l";
    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEdi6vI3W5T8Y2Yd1K6Xk0E3m3i8JQ2W8F7o0lE0mWkG";

    fn blob(line: &str) -> Vec<u8> {
        PublicKey::parse(line).unwrap().blob
    }

    fn build(users: &[&str]) -> SshTarget {
        SshTarget::Build(BuildSession {
            job: "web".into(),
            number: 1,
            workspace: "/w".into(),
            env: vec![],
            allowed_users: users.iter().map(|u| u.to_string()).collect(),
        })
    }

    #[test]
    fn controller_keys_and_authorized_keys_are_accepted() {
        let work = tempfile::tempdir().unwrap();
        std::fs::write(
            work.path().join(AUTHORIZED_KEYS_FILE),
            format!("# ops\n\ncommand=\"true\" {ALICE}\n{BOB} bob@laptop\nnot a key\n"),
        )
        .unwrap();
        let allowed = [AllowedKey {
            user: "alice".into(),
            public_key: ALICE.into(),
        }];
        let policy = KeyPolicy::for_connection(&allowed, &SshTarget::Node, work.path());
        let alice = policy.check("anyone", &blob(ALICE)).unwrap();
        assert_eq!(alice.owner.as_deref(), Some("alice"));
        let bob = policy.check("root", &blob(BOB)).unwrap();
        assert_eq!(bob.owner, None);
        assert_eq!(
            bob.fingerprint,
            PublicKey::parse(BOB).unwrap().fingerprint()
        );

        // The line with options is skipped, so alice's key alone comes from the controller.
        let without = KeyPolicy::for_connection(&[], &SshTarget::Node, work.path());
        assert!(matches!(
            without.check("x", &blob(ALICE)),
            Err(Refusal::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_build_may_restrict_user_names() {
        let work = tempfile::tempdir().unwrap();
        let allowed = [AllowedKey {
            user: "alice".into(),
            public_key: ALICE.into(),
        }];
        let policy = KeyPolicy::for_connection(&allowed, &build(&["web-1"]), work.path());
        assert!(policy.check("web-1", &blob(ALICE)).is_ok());
        assert_eq!(
            policy.check("root", &blob(ALICE)),
            Err(Refusal::UserNotAllowed)
        );
        let open = KeyPolicy::for_connection(&allowed, &build(&[]), work.path());
        assert!(open.check("root", &blob(ALICE)).is_ok());
    }
}
