//! The calls an agent makes of the controller over the channel: the reverse of
//! [`crate::services`].
//!
//! An agent opens a stream whose OPEN header is postcard of `(AGENT_CALLS_VERSION,
//! AgentCall)`, sends EOF, and reads one postcard [`AgentReply`] (a `Wait` answers only when
//! its breakpoint ends). An unknown version or call is refused with a RESET naming it.

use serde::{Deserialize, Serialize};

use crate::breakpoint::{BreakpointCall, BreakpointReply};

/// Version of the call and reply layouts; new calls are added at the end of the enum.
pub const AGENT_CALLS_VERSION: u16 = 1;
/// How many [`AgentCall`] variants this side knows.
pub const KNOWN_AGENT_CALLS: u32 = 3;
/// Largest encoded reply.
pub const MAX_AGENT_REPLY: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentCall {
    /// The SSH server accepted a key on connection `connection` (an
    /// [`crate::ssh::SshRequest::connection`]): who logged in, for the build's console and
    /// the breakpoint's clients. Answered with [`AgentReply::Done`].
    SshLogin(SshLogin),
    /// A `breakpoint` command, relayed: [`AgentReply::Breakpoint`].
    Breakpoint(BreakpointCall),
    /// An SSH session's recording: unlike the other calls, the stream stays open. The
    /// controller answers [`AgentReply::Done`] (record) or [`AgentReply::Error`] (this node
    /// is not recorded, or the connection is not its), and the agent then sends batches of
    /// [`RecordEvent`]s, postcard `Vec<RecordEvent>` per DATA frame, until EOF.
    SshRecording(SshRecordingStart),
}

/// What an SSH session's recording is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRecordingStart {
    pub connection: u64,
    /// The SSH channel, unique within the connection.
    pub channel: u32,
    /// `shell`, `exec`, `sftp` or `direct-tcpip`.
    pub kind: String,
    /// The command (`exec`), the shell, or where a forward goes.
    pub command: String,
    pub width: u16,
    pub height: u16,
    /// Milliseconds since the Unix epoch.
    pub started_ms: i64,
}

/// One event of a recording, at `micros` since it started: `o` output, `i` input,
/// `r` a resize (`COLSxROWS`), `m` a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEvent {
    pub micros: u64,
    pub code: u8,
    #[serde(with = "crate::byte_buf")]
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshLogin {
    pub connection: u64,
    /// The user name the client asked for.
    pub ssh_user: String,
    /// `SHA256:…` of the accepted key.
    pub key_fingerprint: String,
    /// The Steward user whose key it is; `None` for a key from the agent's
    /// `.authorized_keys`.
    pub key_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentReply {
    Done,
    Breakpoint(BreakpointReply),
    /// The call failed; the message says why.
    Error {
        message: String,
    },
}

/// Encodes a call as an OPEN header.
pub fn encode_call(call: &AgentCall) -> Vec<u8> {
    postcard::to_allocvec(&(AGENT_CALLS_VERSION, call)).expect("calls serialize")
}

/// Why an OPEN header is not a call this side understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentCallError {
    #[error(
        "agent calls version {found} is not supported (this controller speaks {AGENT_CALLS_VERSION})"
    )]
    Version { found: u16 },
    #[error(
        "unknown agent call #{index}: this controller knows calls #0 to #{}; it may be older than the agent",
        KNOWN_AGENT_CALLS - 1
    )]
    Unknown { index: u32 },
    #[error("malformed agent call: {0}")]
    Malformed(String),
}

/// Decodes an OPEN header.
pub fn decode_call(header: &[u8]) -> Result<AgentCall, AgentCallError> {
    let (version, rest): (u16, &[u8]) =
        postcard::take_from_bytes(header).map_err(|e| AgentCallError::Malformed(e.to_string()))?;
    if version != AGENT_CALLS_VERSION {
        return Err(AgentCallError::Version { found: version });
    }
    if let Ok((index, _)) = postcard::take_from_bytes::<u32>(rest)
        && index >= KNOWN_AGENT_CALLS
    {
        return Err(AgentCallError::Unknown { index });
    }
    postcard::from_bytes(rest).map_err(|e| AgentCallError::Malformed(e.to_string()))
}

pub fn encode_reply(reply: &AgentReply) -> Vec<u8> {
    postcard::to_allocvec(reply).expect("replies serialize")
}

pub fn decode_reply(body: &[u8]) -> Result<AgentReply, String> {
    postcard::from_bytes(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakpoint::{BreakpointCommand, BuildRef};

    #[test]
    fn calls_round_trip() {
        let calls = [
            AgentCall::SshLogin(SshLogin {
                connection: 9,
                ssh_user: "web-7".into(),
                key_fingerprint: "SHA256:x".into(),
                key_owner: Some("alice".into()),
            }),
            AgentCall::Breakpoint(BreakpointCall {
                build: BuildRef {
                    job: "web".into(),
                    number: 7,
                },
                connection: None,
                build_key: "k".into(),
                command: BreakpointCommand::Extend { by_ms: None },
            }),
        ];
        for call in calls {
            assert_eq!(decode_call(&encode_call(&call)), Ok(call));
        }
    }

    #[test]
    fn unknown_versions_and_calls_are_named() {
        let header = postcard::to_allocvec(&(2u16, 0u32)).unwrap();
        assert_eq!(
            decode_call(&header),
            Err(AgentCallError::Version { found: 2 })
        );
        let header = postcard::to_allocvec(&(AGENT_CALLS_VERSION, KNOWN_AGENT_CALLS)).unwrap();
        assert_eq!(
            decode_call(&header),
            Err(AgentCallError::Unknown {
                index: KNOWN_AGENT_CALLS
            })
        );
    }
}
