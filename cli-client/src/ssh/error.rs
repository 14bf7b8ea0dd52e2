//! The SSH commands' failures and their exit codes: the client's own for connection
//! problems (255), and for a refusal by the controller the code its CLI commands give for
//! the same reason (docs/cli.md, "Command exit codes and errors"), so a script reads
//! `cli ssh-proxy` and `cli get-node` alike.

use steward_protocol::shown::shown;

use super::host_keys::FetchError;
use super::relay::RelayError;
use crate::CliError;
use crate::error::exit;

/// Exit codes the controller's commands use, given here for the same refusals.
pub mod refused {
    /// Illegal argument: no such node, job or build.
    pub const NOT_FOUND: i32 = 3;
    /// Illegal state: the node is offline, or cannot take an SSH connection now.
    pub const UNAVAILABLE: i32 = 4;
    /// Access denied.
    pub const DENIED: i32 = 6;
    /// Bad or missing credentials.
    pub const BAD_CREDENTIALS: i32 = 7;
}

/// Why an SSH command failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The controller refused the WebSocket with `status` and its one-line reason.
    #[error("ERROR: {reason}")]
    Refused { status: u16, reason: String },
    #[error("{0}")]
    Cli(#[from] CliError),
    #[error("{0}")]
    Relay(#[from] RelayError),
    /// The controller closed the connection for a reason other than its normal end.
    #[error("{0}")]
    Closed(String),
    #[error("{0}")]
    HostKeys(#[from] FetchError),
    #[error(
        "ERROR: the host key of node ‘{}’ is not known yet (its agent has not reported one); \
         try again once it has connected",
        shown(.0)
    )]
    UnknownHostKey(String),
    #[error("ERROR: the controller listed no host key for {}", shown(.0))]
    NoHostKey(String),
    #[error("cannot run ssh: {0}")]
    Spawn(std::io::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot write a temporary file: {0}")]
    TempFile(std::io::Error),
}

impl SshError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            SshError::Refused { status, .. } => match status {
                401 => refused::BAD_CREDENTIALS,
                403 => refused::DENIED,
                404 => refused::NOT_FOUND,
                503 => refused::UNAVAILABLE,
                _ => exit::CONNECTION,
            },
            SshError::Cli(e) => e.exit_code(),
            SshError::UnknownHostKey(_) => refused::UNAVAILABLE,
            SshError::Relay(_)
            | SshError::Closed(_)
            | SshError::HostKeys(_)
            | SshError::NoHostKey(_)
            | SshError::Spawn(_)
            | SshError::Listen { .. }
            | SshError::TempFile(_) => exit::CONNECTION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_exit_as_the_controllers_commands_do() {
        let refused = |status| SshError::Refused {
            status,
            reason: "No such node ‘x’".into(),
        };
        assert_eq!(refused(401).exit_code(), 7);
        assert_eq!(refused(403).exit_code(), 6);
        assert_eq!(refused(404).exit_code(), 3);
        assert_eq!(refused(503).exit_code(), 4);
        assert_eq!(refused(500).exit_code(), 255);
        assert_eq!(refused(404).to_string(), "ERROR: No such node ‘x’");
        let proxy = SshError::Cli(CliError::Proxy {
            url: "ws://h/computer/x/ssh".into(),
            status: 502,
        });
        assert_eq!(proxy.exit_code(), 255);
    }
}
