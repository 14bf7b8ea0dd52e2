//! The `breakpoint` command and the agent's side of it.
//!
//! A build held at a breakpoint keeps its executor and workspace while users log in to the
//! agent. Inside the build's steps and those SSH sessions, `breakpoint status|extend|
//! resume|wait` asks the controller about it. The command is this very binary, started
//! under the name `breakpoint` (a symlink in `WORKDIR/remoting/bin`, on the steps' PATH):
//!
//! - [`command`]: the client: arguments, the build from the environment, one call over the
//!   agent's local socket, and what it prints ([`output`] formats it);
//! - [`socket`]: the relay the agent runs: it listens on `WORKDIR/remoting/agent.sock` and
//!   passes each call to the controller as `AgentCall::Breakpoint`;
//! - [`bin`]: the bin directory with the symlink, and the environment that finds both.
//!
//! Wire formats (the local framing and the calls) are `steward_protocol::breakpoint`'s.

pub mod bin;
pub mod command;
pub mod output;
pub mod socket;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub use bin::{bin_dir, command_env};
pub use socket::Relay;

/// The name the binary answers to as the command (its argv[0]'s file name).
pub const COMMAND_NAME: &str = "breakpoint";
/// The variable naming the agent's local socket, set for steps and SSH sessions.
pub const SOCKET_ENV: &str = "STEWARD_AGENT_SOCKET";
/// The variable naming the SSH connection a session runs in, so the controller knows who
/// asked; absent in build steps.
pub const CONNECTION_ENV: &str = "STEWARD_SSH_CONNECTION";
/// The build's key, which steps and SSH sessions into the build get from the controller,
/// and without which it refuses a call.
pub const BUILD_KEY_ENV: &str = "STEWARD_BUILD_KEY";

/// The directory under the work dir that holds the socket and the bin directory, as the
/// `-internalDir` default does for logs.
const INTERNAL_DIR: &str = crate::workdir::DEFAULT_INTERNAL_DIR;
/// The socket's file name.
const SOCKET_FILE: &str = "agent.sock";

/// Where the agent on `work_dir` listens for the command.
pub fn socket_path(work_dir: &Path) -> PathBuf {
    work_dir.join(INTERNAL_DIR).join(SOCKET_FILE)
}

/// Whether a program started as `argv0` is the `breakpoint` command.
pub fn invoked_as_command(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(COMMAND_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_told_by_its_name_alone() {
        for yes in ["breakpoint", "/w/remoting/bin/breakpoint", "./breakpoint"] {
            assert!(invoked_as_command(OsStr::new(yes)), "{yes}");
        }
        for no in [
            "agent",
            "/usr/bin/agent",
            "breakpoint.sh",
            "/breakpoint/agent",
            "",
        ] {
            assert!(!invoked_as_command(OsStr::new(no)), "{no}");
        }
    }
}
