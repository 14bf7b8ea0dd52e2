//! A build's `SecretBuildWrapper` bindings (credentials-binding): the variables its steps
//! get, the files it needs on the agent, and the secrets masked in its console.
//!
//! Files (a secret file, an SSH key) are written to `WORKSPACE@tmp/secretFiles/RANDOM/`
//! on the agent with mode 0600, as the plugin writes them beside the workspace, and that
//! directory is removed when the build ends. Every secret bound is masked as `****` in the
//! console: passwords, secret texts, `user:password`, passphrases, private keys, and
//! usernames marked secret; a secret file's content and the files' paths are not, as in the
//! plugin.

use bytes::Bytes;
use steward_channel::Channel;
use steward_channel::call::{open, read_response};
use steward_protocol::credentials::{CredentialKind, SecretBytes};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::job_xml::bindings::Binding;
use steward_protocol::services::{Request, Response};

use crate::state::AppState;

/// What the bindings give a build.
#[derive(Debug, Default, Clone)]
pub struct Bound {
    pub env: Vec<(String, String)>,
    /// The secrets to mask, longest first is the masker's business.
    pub masks: Vec<SecretBytes>,
}

/// `WORKSPACE@tmp/secretFiles`: where a build's bound files go.
pub fn secret_files_dir(workspace: &str) -> String {
    format!("{workspace}@tmp/secretFiles")
}

/// Resolves the job's bindings for a build in `workspace` on the agent behind `channel`.
pub async fn bind(
    state: &AppState,
    config: &JobConfig,
    channel: Option<&Channel>,
    workspace: &str,
) -> Result<Bound, String> {
    let bindings = config
        .bindings()
        .map_err(|e| format!("the job's bindings cannot be read: {e}"))?;
    let mut bound = Bound::default();
    if bindings.is_empty() {
        return Ok(bound);
    }
    let dir = format!(
        "{}/{:016x}",
        secret_files_dir(workspace),
        rand::random::<u64>()
    );
    let mut made_dir = false;
    for binding in &bindings {
        let id = binding.credentials_id();
        let credential = crate::credentials::get(state, id)
            .await
            .map_err(|e| match e {
                crate::credentials::CredentialsError::Command(_) => {
                    format!("Could not find credentials entry with ID '{id}'")
                }
                other => other.to_string(),
            })?;
        let mut set = |k: &str, v: &str| bound.env.push((k.to_owned(), v.to_owned()));
        let mut mask = |v: &[u8]| {
            if !v.is_empty() {
                bound.masks.push(SecretBytes::new(v.to_vec()));
            }
        };
        let wrong = |expected: &str| {
            format!(
                "Credentials '{id}' is of type '{}' where '{expected}' was expected",
                kind_name(&credential.kind)
            )
        };
        match (binding, &credential.kind) {
            (
                Binding::UsernamePasswordMulti {
                    username_variable,
                    password_variable,
                    ..
                },
                CredentialKind::UsernamePassword {
                    username, password, ..
                },
            ) => {
                set(username_variable, username);
                set(password_variable, password.expose());
                mask(password.expose().as_bytes());
                if credential.kind.username_is_secret() {
                    mask(username.as_bytes());
                }
            }
            (
                Binding::UsernamePassword { variable, .. },
                CredentialKind::UsernamePassword {
                    username, password, ..
                },
            ) => {
                let both = format!("{username}:{}", password.expose());
                set(variable, &both);
                mask(both.as_bytes());
                mask(password.expose().as_bytes());
            }
            (Binding::Text { variable, .. }, CredentialKind::SecretText { secret }) => {
                set(variable, secret.expose());
                mask(secret.expose().as_bytes());
            }
            (Binding::File { variable, .. }, CredentialKind::SecretFile { file_name, content }) => {
                let channel = channel.ok_or("the agent is not connected")?;
                if !made_dir {
                    make_dir(channel, &dir).await?;
                    made_dir = true;
                }
                let name = file_name.rsplit('/').next().unwrap_or(file_name);
                let path = format!("{dir}/{name}");
                write_file(channel, &path, content.expose()).await?;
                set(variable, &path);
            }
            (
                Binding::SshKey {
                    key_file_variable,
                    passphrase_variable,
                    username_variable,
                    ..
                },
                CredentialKind::SshPrivateKey {
                    username,
                    private_key,
                    passphrase,
                    ..
                },
            ) => {
                let channel = channel.ok_or("the agent is not connected")?;
                if !made_dir {
                    make_dir(channel, &dir).await?;
                    made_dir = true;
                }
                let path = format!("{dir}/{id}.key");
                let mut key = private_key.expose().as_bytes().to_vec();
                if !key.ends_with(b"\n") {
                    key.push(b'\n');
                }
                write_file(channel, &path, &key).await?;
                set(key_file_variable, &path);
                mask(private_key.expose().as_bytes());
                if let (Some(variable), Some(passphrase)) = (passphrase_variable, passphrase) {
                    set(variable, passphrase.expose());
                    mask(passphrase.expose().as_bytes());
                }
                if let Some(variable) = username_variable {
                    set(variable, username);
                    if credential.kind.username_is_secret() {
                        mask(username.as_bytes());
                    }
                }
            }
            (Binding::UsernamePasswordMulti { .. } | Binding::UsernamePassword { .. }, _) => {
                return Err(wrong("StandardUsernamePasswordCredentials"));
            }
            (Binding::Text { .. }, _) => return Err(wrong("StringCredentials")),
            (Binding::File { .. }, _) => return Err(wrong("FileCredentials")),
            (Binding::SshKey { .. }, _) => return Err(wrong("SSHUserPrivateKey")),
        }
    }
    Ok(bound)
}

fn kind_name(kind: &CredentialKind) -> &'static str {
    match kind {
        CredentialKind::UsernamePassword { .. } => "Username with password",
        CredentialKind::SecretText { .. } => "Secret text",
        CredentialKind::SecretFile { .. } => "Secret file",
        CredentialKind::SshPrivateKey { .. } => "SSH Username with private key",
    }
}

async fn make_dir(channel: &Channel, path: &str) -> Result<(), String> {
    let request = Request::MakeDirs {
        path: path.to_owned(),
    };
    match steward_channel::call::call(channel, &request).await {
        Ok(Response::Done) => Ok(()),
        Ok(Response::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("cannot create {path} on the agent: {e}")),
    }
}

/// Writes `content` to `path` on the agent, readable by its user only.
async fn write_file(channel: &Channel, path: &str, content: &[u8]) -> Result<(), String> {
    let request = Request::WriteFile {
        path: path.to_owned(),
        mode: Some(0o600),
    };
    let failed = |e: &dyn std::fmt::Display| format!("cannot write {path} on the agent: {e}");
    let mut stream = open(channel, &request).await.map_err(|e| failed(&e))?;
    stream
        .send(Bytes::copy_from_slice(content))
        .await
        .map_err(|e| failed(&e))?;
    stream.finish().await.map_err(|e| failed(&e))?;
    match read_response(&mut stream).await {
        Ok(Response::Written { .. }) => Ok(()),
        Ok(Response::Error { message }) => Err(message),
        Ok(other) => Err(failed(&format!("unexpected answer {other:?}"))),
        Err(e) => Err(failed(&e)),
    }
}
