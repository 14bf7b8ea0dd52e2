//! Breakpoints on the wire: what the `breakpoint` command asks, what the controller
//! answers, and how the command reaches its agent.
//!
//! `breakpoint` runs on the agent's machine, inside an SSH session or a build step. It
//! talks to its agent over a Unix socket (`STEWARD_AGENT_SOCKET`), one [`BreakpointCall`]
//! per connection, framed as [`frame`] says; the agent passes the call to the controller as
//! [`crate::agent_calls::AgentCall::Breakpoint`] and hands back the [`BreakpointReply`].
//! The controller owns every breakpoint: the agent only relays.

use serde::{Deserialize, Serialize};

/// Largest framed message on the agent's local socket.
pub const MAX_LOCAL_MESSAGE: usize = 64 * 1024;

/// A build, by job and number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRef {
    pub job: String,
    pub number: u64,
}

/// One `breakpoint` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakpointCall {
    /// The build it concerns (`JOB_NAME` and `BUILD_NUMBER` of the step or session).
    pub build: BuildRef,
    /// The SSH connection it runs in (`STEWARD_SSH_CONNECTION`), which names who asked.
    pub connection: Option<u64>,
    /// The build's key (`STEWARD_BUILD_KEY`), which only its steps and its SSH sessions
    /// hold: the controller refuses a call without it.
    pub build_key: String,
    pub command: BreakpointCommand,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakpointCommand {
    /// `breakpoint status`: [`BreakpointReply::Status`].
    Status,
    /// `breakpoint extend [--for DUR]`: push the expiry by `by_ms` (default 30 minutes),
    /// within the breakpoint's maximum; answers the new [`BreakpointReply::Status`].
    Extend { by_ms: Option<u64> },
    /// `breakpoint resume`: end it now; [`BreakpointReply::Resumed`].
    Resume,
    /// `breakpoint wait [--for DUR]` in a step: start a breakpoint now and answer
    /// [`BreakpointReply::Ended`] when it ends. `token` is the command's own: asked again
    /// with the same token (after the agent or controller restarted), the controller joins
    /// the breakpoint it started, or answers at once that it ended.
    Wait { for_ms: Option<u64>, token: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakpointReply {
    Status(BreakpointStatus),
    Resumed,
    /// The breakpoint a `Wait` started has ended, and why.
    Ended {
        how: String,
    },
    /// Refused, with the reason (no breakpoint there, not allowed…): the command prints it
    /// and exits 1.
    Refused {
        message: String,
    },
}

/// A breakpoint as `breakpoint status`, `list-breakpoints` and the REST API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakpointStatus {
    pub job: String,
    pub number: u64,
    pub node: String,
    /// Why it holds the build: `the build failed`, `-breakpoint always`, `breakpoint wait`.
    pub reason: String,
    /// When it started, ms since the Unix epoch.
    pub started_ms: i64,
    /// When it ends unless extended.
    pub expires_ms: i64,
    /// The furthest extensions may push the expiry.
    pub max_expires_ms: i64,
    /// While nobody has connected: when the breakpoint ends for want of a client.
    pub connect_by_ms: Option<i64>,
    /// Whether the last client logging out ends it.
    pub resume_on_logout: bool,
    /// `.hold`'s modification time plus the duration, while the workspace has one.
    pub hold_until_ms: Option<i64>,
    pub clients: Vec<BreakpointClient>,
}

/// One client connected to a build under a breakpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakpointClient {
    /// The Steward user the controller authenticated.
    pub user: String,
    /// Once the SSH server accepted a key: the SSH user name and the key's fingerprint.
    pub ssh_user: Option<String>,
    pub key_fingerprint: Option<String>,
    /// The client's address as the controller saw it.
    pub address: String,
    pub since_ms: i64,
}

/// Why a local message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message of {0} bytes is over the limit of {MAX_LOCAL_MESSAGE}")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// A message on the local socket: its length (u32, big-endian), then its postcard.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let body = postcard::to_allocvec(message).expect("breakpoint messages serialize");
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// The length a frame's 4-byte header announces, checked against the limit.
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_LOCAL_MESSAGE {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// A frame's body.
pub fn unframe<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_frames_round_trip_and_refuse_oversize() {
        let call = BreakpointCall {
            build: BuildRef {
                job: "web".into(),
                number: 7,
            },
            connection: Some(3),
            build_key: "k".into(),
            command: BreakpointCommand::Wait {
                for_ms: Some(60_000),
                token: "t".into(),
            },
        };
        let framed = frame(&call);
        let len = frame_len(framed[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, framed.len() - 4);
        assert_eq!(unframe::<BreakpointCall>(&framed[4..]), Ok(call));
        assert_eq!(
            frame_len(((MAX_LOCAL_MESSAGE + 1) as u32).to_be_bytes()),
            Err(FrameError::TooLarge(MAX_LOCAL_MESSAGE + 1))
        );
        assert!(unframe::<BreakpointCall>(&[0xff, 0xff]).is_err());
    }
}
