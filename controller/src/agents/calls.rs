//! The calls agents make of the controller (`steward_protocol::agent_calls`): each stream an
//! agent opens carries one call in its OPEN header and gets one reply.
//!
//! - `SshLogin`: the agent's SSH server accepted a key on a forwarded connection; the
//!   connection learns who it is, and a build's console says so.
//! - `Breakpoint`: a `breakpoint` command run on the agent, relayed to the build's
//!   breakpoint (`crate::breakpoints`).
//! - `SshRecording`: an SSH session's recording, streamed (`crate::ssh::recordings`).
//!
//! A call names the connection or build it is about; the agent's node must be the one that
//! connection or build is on, so an agent speaks only for what runs on it.

use bytes::Bytes;
use serde_json::json;
use steward_channel::{Incoming, IncomingStream};
use steward_protocol::agent_calls::{self, AgentCall, AgentReply};
use steward_protocol::channel::ResetCode;
use tokio::task::JoinSet;

use crate::audit::{Action, Actor};
use crate::ssh::connections::Login;
use crate::state::AppState;

/// Most calls one agent has in flight: `breakpoint wait` calls stay open until their
/// breakpoint ends, the others answer at once.
pub const MAX_CALLS_PER_AGENT: usize = 256;
/// How long a reply waits for the agent's EOF before its stream is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the streams the agent of `node` opens, until its channel closes.
pub async fn serve(state: AppState, node: String, mut incoming: Incoming) {
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            accepted = incoming.accept() => match accepted {
                Some(accepted) if calls.len() >= MAX_CALLS_PER_AGENT => {
                    accepted.stream.reset(ResetCode::Refused, "too many calls in flight");
                }
                Some(accepted) => {
                    calls.spawn(handle(state.clone(), node.clone(), accepted));
                }
                None => break,
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
    calls.shutdown().await;
}

async fn handle(state: AppState, node: String, accepted: IncomingStream) {
    let IncomingStream { header, mut stream } = accepted;
    let call = match agent_calls::decode_call(&header) {
        Ok(call) => call,
        Err(e) => {
            tracing::debug!(node = ?node, error = ?e.to_string(), "refusing an agent call");
            stream.reset(ResetCode::Refused, &e.to_string());
            return;
        }
    };
    let reply = match call {
        AgentCall::SshLogin(login) => {
            ssh_login(&state, &node, login);
            AgentReply::Done
        }
        AgentCall::SshRecording(start) => {
            // A stream of events rather than one reply: served to its end.
            return crate::ssh::recordings::serve(&state, &node, start, stream).await;
        }
        AgentCall::Breakpoint(call) => {
            // A `breakpoint wait` may take hours: when the agent drops the call (the command
            // was killed), stop waiting for it, so it holds no place here.
            let relayed = crate::breakpoints::relayed(&state, &node, call);
            let dropped = async {
                loop {
                    match stream.recv.recv().await {
                        Some(Ok(_)) => {}
                        None => std::future::pending::<()>().await,
                        Some(Err(_)) => return,
                    }
                }
            };
            tokio::select! {
                reply = relayed => AgentReply::Breakpoint(reply),
                () = dropped => return,
            }
        }
    };
    if stream
        .send(Bytes::from(agent_calls::encode_reply(&reply)))
        .await
        .is_ok()
    {
        let _ = stream.finish().await;
        // The agent sent EOF with its call; reading it before dropping the stream keeps the
        // drop from sending a RESET that could overtake the reply.
        let drained = async { while let Some(Ok(_)) = stream.recv.recv().await {} };
        let _ = tokio::time::timeout(LINGER, drained).await;
    }
}

fn ssh_login(state: &AppState, node: &str, login: agent_calls::SshLogin) {
    // It goes into a build's console: only a fingerprint is taken as one.
    if !steward_protocol::ssh::is_fingerprint(&login.key_fingerprint) {
        tracing::warn!(node = ?node, fingerprint = ?login.key_fingerprint, "an SSH login with a malformed key fingerprint; ignored");
        return;
    }
    let info = state.ssh.logged_in(
        login.connection,
        node,
        Login {
            ssh_user: login.ssh_user,
            key_fingerprint: login.key_fingerprint,
            key_owner: login.key_owner,
        },
    );
    let Some(info) = info else {
        tracing::debug!(node = ?node, connection = login.connection, "an SSH login for a connection that is not this node's");
        return;
    };
    tracing::info!(node = ?node, connection = info.id, user = ?info.user, login = ?info.login, "SSH login");
    let build = info
        .build
        .and_then(|id| state.builds.running().into_iter().find(|b| b.row.id == id));
    // The session starts: who, from where, with which key, as whom on the node.
    let target = match &build {
        Some(build) => format!("{}#{}", build.row.job, build.row.number),
        None => info.node.clone(),
    };
    if let Some(login) = &info.login {
        state.audit.record(
            &Actor::new(&info.user, info.ip()),
            Action::SshStart,
            &target,
            json!({
                "connection": info.id,
                "keyFingerprint": login.key_fingerprint,
                "keyOwner": login.key_owner,
                "sshUser": login.ssh_user,
            }),
        );
    }
    if let Some(build) = build {
        crate::ssh::console::logged_in(&build, &info);
    }
}
