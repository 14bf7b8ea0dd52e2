//! Agents' SSH host keys: asked of each agent when it connects, recorded per node, and a
//! change logged and kept for `node-info`, since clients that pinned the old key will now
//! refuse the node (as they should until someone checks why it changed).

use steward_channel::Channel;
use steward_channel::StreamError;
use steward_channel::call::CallError;
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{Request, Response};
use steward_protocol::ssh::{PublicKey, fingerprint};

use crate::state::AppState;
use crate::store::host_keys::{self, HostKey, Recorded};

/// Asks the agent on `channel` for its host key and records it for `node`. An agent too
/// old to have an SSH server refuses the request; that is only noted.
pub async fn learn(state: &AppState, node: &str, channel: &Channel) {
    let key = match steward_channel::call::call(channel, &Request::SshHostKey).await {
        Ok(Response::SshHostKey { public_key }) => public_key,
        Ok(Response::Error { message }) => {
            tracing::warn!(node, error = ?message, "the agent has no SSH host key");
            return;
        }
        Ok(other) => {
            tracing::warn!(node, answer = ?other, "unexpected answer to SshHostKey");
            return;
        }
        Err(CallError::Stream(StreamError::Reset {
            code: ResetCode::Refused,
            reason,
        })) => {
            tracing::info!(node, reason = ?reason, "the agent offers no SSH server");
            return;
        }
        Err(e) => {
            tracing::debug!(node, error = ?e.to_string(), "cannot ask the agent for its SSH host key");
            return;
        }
    };
    let key = match PublicKey::parse(&key) {
        Ok(key) => key.openssh(),
        Err(e) => {
            tracing::warn!(node, error = ?e.to_string(), "the agent sent an unreadable SSH host key");
            return;
        }
    };
    let (name, recorded_key) = (node.to_owned(), key.clone());
    let now = crate::builds::now_ms();
    match state
        .store
        .call(move |c| host_keys::record(c, &name, &recorded_key, now))
        .await
    {
        Ok(Recorded::First) => {
            tracing::info!(node, fingerprint = ?key_fingerprint(&key), "recorded the node's SSH host key");
        }
        Ok(Recorded::Changed { previous }) => {
            tracing::warn!(
                node,
                was = ?key_fingerprint(&previous),
                now = ?key_fingerprint(&key),
                "the node's SSH host key changed: clients that pinned the old key will refuse it (a new work dir, or another machine under this node's name?)"
            );
        }
        Ok(Recorded::Same | Recorded::NoNode) => {}
        Err(e) => {
            tracing::warn!(node, error = ?e.to_string(), "cannot record the node's SSH host key");
        }
    }
}

/// A node's host key record.
pub async fn get(state: &AppState, node: &str) -> Option<HostKey> {
    let name = node.to_owned();
    state
        .store
        .call(move |c| host_keys::get(c, &name))
        .await
        .ok()
        .flatten()
}

/// `SHA256:…` of an OpenSSH one-line key; the line itself when it cannot be read.
pub fn key_fingerprint(key: &str) -> String {
    PublicKey::parse(key)
        .map(|k| fingerprint(&k.blob))
        .unwrap_or_else(|_| key.to_owned())
}
