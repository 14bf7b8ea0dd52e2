//! What a build's console says of the SSH sessions into it: every login and every
//! disconnect, with the Steward user, the SSH user and key, and the client's address.

use steward_protocol::shown::Shown;

use super::connections::ConnectionInfo;
use crate::builds::RunningBuild;

/// `SSH: alice connected as web-7 (key SHA256:…, from 127.0.0.1:5000)`.
pub fn logged_in(build: &RunningBuild, info: &ConnectionInfo) {
    let Some(login) = &info.login else { return };
    build.note(format!(
        "SSH: {} connected as {} (key {}{}, from {})\n",
        Shown(&info.user),
        Shown(&login.ssh_user),
        login.key_fingerprint,
        key_origin(login.key_owner.as_deref(), &info.user),
        info.address
    ));
}

/// `SSH: alice disconnected (key SHA256:…, from 127.0.0.1:5000): why`, or for a connection
/// that never logged in, that it ended before.
pub fn disconnected(build: &RunningBuild, info: Option<&ConnectionInfo>, why: &str) {
    let Some(info) = info else { return };
    let line = match &info.login {
        Some(login) => format!(
            "SSH: {} disconnected (key {}, from {}): {why}\n",
            Shown(&info.user),
            login.key_fingerprint,
            info.address
        ),
        None => format!(
            "SSH: a connection by {} from {} ended before logging in (no key was accepted): {why}\n",
            Shown(&info.user),
            info.address
        ),
    };
    build.note(line);
}

/// Where an accepted key came from, when it is not the connecting user's own.
fn key_origin(owner: Option<&str>, user: &str) -> String {
    match owner {
        Some(owner) if owner == user => String::new(),
        Some(owner) => format!(" of {}", Shown(owner)),
        None => " from the agent's .authorized_keys".to_owned(),
    }
}
