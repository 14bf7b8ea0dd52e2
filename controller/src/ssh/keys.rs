//! Users' SSH public keys, over the store: what `add-ssh-key`, `list-ssh-keys`,
//! `remove-ssh-key` and their REST forms call, and the keys a forwarded connection allows.

use serde_json::json;
use steward_protocol::shown::Shown;
use steward_protocol::ssh::{self, AllowedKey, PublicKey};

use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::ssh_keys::{self, Added, MAX_KEYS_PER_USER, SshKeyRow};

/// Most lines one `add-ssh-key` reads (an `authorized_keys` file, say).
pub const MAX_LINES: usize = MAX_KEYS_PER_USER;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("line {line}: {error}")]
    Bad { line: usize, error: ssh::KeyError },
    #[error("no public key given: pipe one in, e.g. `cli add-ssh-key < ~/.ssh/id_ed25519.pub`")]
    Nothing,
    #[error("more than {MAX_LINES} keys at once")]
    TooManyLines,
    #[error("key {0} is registered to another user")]
    TakenByOther(String),
    #[error("you have {MAX_KEYS_PER_USER} keys already; remove one first")]
    TooMany,
    #[error("‘{}’ is not a key fingerprint: expected SHA256:… as `list-ssh-keys` shows it", Shown(.0))]
    NotAFingerprint(String),
    #[error("you have no key {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One key of the lines given, and whether it was new.
#[derive(Debug, Clone)]
pub struct AddedKey {
    pub row: SshKeyRow,
    pub new: bool,
}

/// Reads the keys in `text` (one per line; blank lines and `#` comments skipped), all
/// checked before any is stored, then adds them to `by`'s keys in order.
pub async fn add(state: &AppState, by: &Actor, text: &str) -> Result<Vec<AddedKey>, KeysError> {
    let user = by.user.as_str();
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if keys.len() == MAX_LINES {
            return Err(KeysError::TooManyLines);
        }
        let key = PublicKey::parse(trimmed).map_err(|error| KeysError::Bad {
            line: index + 1,
            error,
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeysError::Nothing);
    }
    let now = crate::builds::now_ms();
    let rows: Vec<SshKeyRow> = keys
        .iter()
        .map(|key| SshKeyRow {
            fingerprint: key.fingerprint(),
            user: user.to_owned(),
            public_key: key.openssh(),
            comment: key.comment.clone(),
            added_ms: now,
        })
        .collect();
    let keys = rows.clone();
    let outcomes = state.store.call(move |c| ssh_keys::add(c, &keys)).await?;
    let mut added = Vec::with_capacity(rows.len());
    for (row, outcome) in rows.into_iter().zip(outcomes) {
        match outcome {
            Added::Added => added.push(AddedKey { row, new: true }),
            Added::AlreadyYours => added.push(AddedKey { row, new: false }),
            Added::TakenByOther => return Err(KeysError::TakenByOther(row.fingerprint)),
            Added::TooMany => return Err(KeysError::TooMany),
        }
    }
    for key in added.iter().filter(|k| k.new) {
        state.audit.record(
            by,
            Action::SshKeyAdd,
            user,
            json!({ "fingerprint": key.row.fingerprint }),
        );
    }
    Ok(added)
}

pub async fn list(state: &AppState, user: &str) -> Result<Vec<SshKeyRow>, KeysError> {
    let user = user.to_owned();
    Ok(state.store.call(move |c| ssh_keys::list(c, &user)).await?)
}

/// Removes `by`'s key `fingerprint`.
pub async fn remove(state: &AppState, by: &Actor, fingerprint: &str) -> Result<(), KeysError> {
    let fingerprint = fingerprint.trim();
    if !ssh::is_fingerprint(fingerprint) {
        return Err(KeysError::NotAFingerprint(fingerprint.to_owned()));
    }
    let (user, key) = (by.user.clone(), fingerprint.to_owned());
    if state
        .store
        .call(move |c| ssh_keys::remove(c, &user, &key))
        .await?
    {
        state.audit.record(
            by,
            Action::SshKeyRemove,
            &by.user,
            json!({ "fingerprint": fingerprint }),
        );
        Ok(())
    } else {
        Err(KeysError::NotFound(fingerprint.to_owned()))
    }
}

/// The keys a connection opened by `user` may log in with: the user's own. The SSH login
/// then names the person the controller authenticated: a token alone does not let anyone in
/// without the key, nor a key without a token.
pub async fn allowed_for(state: &AppState, user: &str) -> Result<Vec<AllowedKey>, KeysError> {
    Ok(list(state, user)
        .await?
        .into_iter()
        .map(|row| AllowedKey {
            user: row.user,
            public_key: row.public_key,
        })
        .collect())
}

/// `ED25519`, `RSA`…, as `ssh-keygen -l` names a key's type.
pub fn type_name(public_key: &str) -> &'static str {
    match public_key.split(' ').next().unwrap_or_default() {
        "ssh-ed25519" => "ED25519",
        "sk-ssh-ed25519@openssh.com" => "ED25519-SK",
        "ssh-rsa" => "RSA",
        "sk-ecdsa-sha2-nistp256@openssh.com" => "ECDSA-SK",
        t if t.starts_with("ecdsa-") => "ECDSA",
        _ => "?",
    }
}
