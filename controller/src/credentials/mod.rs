//! Credentials: Jenkins' system store (`system::system::jenkins`, domain `_`), kept sealed
//! in the store ([`vault`]), managed with the credentials plugin's CLI commands
//! (`cli::commands::credentials`), and used by id: by Git checkouts and polling
//! ([`for_git`], [`git_command_env`]) and by builds' `SecretBuildWrapper` bindings
//! (`builds::bindings`).
//!
//! Secrets leave the controller only to the agent that needs them, in a step's environment
//! or a 0600 file in the workspace's `@tmp` directory, and are masked in consoles.

pub mod vault;

use serde_json::json;
use steward_protocol::credentials::{Credential, CredentialKind};
use steward_protocol::job_xml::git::{
    GIT_ENV_PASSPHRASE, GIT_ENV_PASSWORD, GIT_ENV_SSH_KEY, GIT_ENV_USERNAME, GitCredentialKind,
};

use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::credentials as rows;

/// Why a credential could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The plugin's failures (`No such credential`, `No change`…).
    #[error(transparent)]
    Command(#[from] steward_protocol::credentials::store::CommandFailure),
    #[error(
        "credential {0} cannot be read: it was sealed with another key than secrets/credentials.key"
    )]
    Unsealable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn unseal(state: &AppState, row: &rows::CredentialRow) -> Result<Credential, CredentialsError> {
    let plain = state
        .vault
        .open_sealed(&row.id, &row.sealed)
        .ok_or_else(|| CredentialsError::Unsealable(row.id.clone()))?;
    serde_json::from_slice(&plain).map_err(|_| CredentialsError::Unsealable(row.id.clone()))
}

fn seal(state: &AppState, credential: &Credential) -> Vec<u8> {
    // Serialising plain data cannot fail.
    let plain = serde_json::to_vec(credential).unwrap_or_default();
    state.vault.seal(&credential.id, &plain)
}

/// Every credential, in the order they were created.
pub async fn list(state: &AppState) -> Result<Vec<Credential>, CredentialsError> {
    let rows = state.store.call(|c| rows::all(c)).await?;
    rows.iter().map(|row| unseal(state, row)).collect()
}

/// Credential `id`.
pub async fn get(state: &AppState, id: &str) -> Result<Credential, CredentialsError> {
    let id_owned = id.to_owned();
    let row = state
        .store
        .call(move |c| rows::get(c, &id_owned))
        .await?
        .ok_or(steward_protocol::credentials::store::CommandFailure::NoSuchCredential)?;
    unseal(state, &row)
}

/// Adds a credential; one without an id gets a random UUID, as Jenkins gives it. `No
/// change` when the id is taken.
pub async fn create(
    state: &AppState,
    mut credential: Credential,
    by: &Actor,
) -> Result<String, CredentialsError> {
    if credential.id.is_empty() {
        credential.id = crate::store::users::new_uuid();
    }
    let sealed = seal(state, &credential);
    let (id, class) = (credential.id.clone(), credential.class_name());
    let now = crate::builds::now_ms();
    let added = state
        .store
        .call(move |c| rows::insert(c, &id, class, &sealed, now))
        .await?;
    if !added {
        return Err(steward_protocol::credentials::store::CommandFailure::NoChange.into());
    }
    // Its id and kind, never its secret.
    state.audit.record(
        by,
        Action::CredentialCreate,
        &credential.id,
        json!({ "class": class }),
    );
    Ok(credential.id)
}

/// Replaces credential `id` (the new XML may rename it; an empty id keeps `id`).
pub async fn update(
    state: &AppState,
    id: &str,
    mut credential: Credential,
    by: &Actor,
) -> Result<(), CredentialsError> {
    if credential.id.is_empty() {
        credential.id = id.to_owned();
    }
    let sealed = seal(state, &credential);
    let (old, new, class) = (
        id.to_owned(),
        credential.id.clone(),
        credential.class_name(),
    );
    let now = crate::builds::now_ms();
    let replaced = state
        .store
        .call(move |c| rows::replace(c, &old, &new, class, &sealed, now))
        .await;
    match replaced {
        Ok(true) => {
            let details = if credential.id == id {
                json!({ "class": class })
            } else {
                json!({ "class": class, "renamedTo": credential.id })
            };
            state
                .audit
                .record(by, Action::CredentialUpdate, id, details);
            Ok(())
        }
        Ok(false) => {
            Err(steward_protocol::credentials::store::CommandFailure::NoSuchCredential.into())
        }
        // The new id is another credential's.
        Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(steward_protocol::credentials::store::CommandFailure::NoChange.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(state: &AppState, id: &str, by: &Actor) -> Result<(), CredentialsError> {
    let key = id.to_owned();
    if state.store.call(move |c| rows::delete(c, &key)).await? {
        state
            .audit
            .record(by, Action::CredentialDelete, id, serde_json::Value::Null);
        Ok(())
    } else {
        Err(steward_protocol::credentials::store::CommandFailure::NoSuchCredential.into())
    }
}

/// The kind of credential `id` and the variables that carry its secret to git
/// ([`GIT_ENV_USERNAME`] and the others).
pub async fn for_git(
    state: &AppState,
    id: &str,
) -> Result<(GitCredentialKind, Vec<(String, String)>), String> {
    let credential = get(state, id).await.map_err(|e| match e {
        CredentialsError::Command(_) => format!("credential {id} cannot be found"),
        other => other.to_string(),
    })?;
    if credential.scope == steward_protocol::credentials::Scope::System {
        // SYSTEM credentials are the controller's own; jobs do not see them.
        return Err(format!("credential {id} cannot be found"));
    }
    let var = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    match &credential.kind {
        CredentialKind::UsernamePassword {
            username, password, ..
        } => Ok((
            GitCredentialKind::UsernamePassword,
            vec![
                var(GIT_ENV_USERNAME, username),
                var(GIT_ENV_PASSWORD, password.expose()),
            ],
        )),
        CredentialKind::SshPrivateKey {
            username,
            private_key,
            passphrase,
            ..
        } => {
            let mut env = vec![
                var(GIT_ENV_USERNAME, username),
                var(GIT_ENV_SSH_KEY, private_key.expose()),
            ];
            if let Some(passphrase) = passphrase {
                env.push(var(GIT_ENV_PASSPHRASE, passphrase.expose()));
            }
            Ok((GitCredentialKind::SshKey, env))
        }
        CredentialKind::SecretText { .. } | CredentialKind::SecretFile { .. } => Err(format!(
            "credential {id} is a {}: git needs a username with password or an SSH private key",
            credential.class_name()
        )),
    }
}
/// Files a git command on the controller needs for a credential (its `GIT_ASKPASS`
/// script, an SSH key), in a private directory of the home removed when this is dropped.
#[derive(Debug)]
pub struct GitAuth {
    dir: std::path::PathBuf,
}

impl Drop for GitAuth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sets `command` (a git run by the controller) up to authenticate with credential `id`.
pub async fn git_command_env(
    state: &AppState,
    id: &str,
    command: &mut tokio::process::Command,
) -> Result<GitAuth, String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use steward_protocol::job_xml::git::{GIT_ENV_PASSPHRASE, GIT_ENV_SSH_KEY};

    let (kind, env) = for_git(state, id).await?;
    let dir = state
        .config
        .home
        .join("tmp")
        .join(format!("git-{:016x}", rand::random::<u64>()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let auth = GitAuth { dir: dir.clone() };
    let write = |name: &str, content: &[u8], mode: u32| {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| f.write_all(content))
            .map(|()| path)
            .map_err(|e| format!("cannot write a credential file in {}: {e}", dir.display()))
    };
    let askpass = write(
        "askpass.sh",
        steward_protocol::job_xml::git::ASKPASS_SCRIPT.as_bytes(),
        0o700,
    )?;
    command.env("GIT_TERMINAL_PROMPT", "0");
    match kind {
        GitCredentialKind::UsernamePassword => {
            command.env("GIT_ASKPASS", &askpass);
        }
        GitCredentialKind::SshKey => {
            let key = env
                .iter()
                .find(|(k, _)| k == GIT_ENV_SSH_KEY)
                .map(|(_, v)| {
                    let mut key = v.clone().into_bytes();
                    if !key.ends_with(b"\n") {
                        key.push(b'\n');
                    }
                    key
                })
                .unwrap_or_default();
            let key_file = write("ssh-key", &key, 0o600)?;
            let mut ssh = format!(
                "ssh -i '{}' -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new",
                key_file.display().to_string().replace('\'', r"'\''")
            );
            if env.iter().any(|(k, _)| k == GIT_ENV_PASSPHRASE) {
                command
                    .env("SSH_ASKPASS", &askpass)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .env("DISPLAY", ":0");
            } else {
                ssh.push_str(" -o BatchMode=yes");
            }
            command.env("GIT_SSH_COMMAND", ssh);
        }
    }
    command.envs(env);
    Ok(auth)
}
