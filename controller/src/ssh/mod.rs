//! Debug access, the controller's side: SSH sessions into nodes and builds that run end to
//! end between the user's client and the SSH server inside the agent. The controller only
//! pipes bytes: it authenticates the HTTP request, checks permissions, tells the agent where
//! the session lands and which keys may log in, and never decodes SSH.
//!
//! - [`targets`]: `NODE` or `JOB#N`, the permission each needs, the request for the agent.
//! - [`connections`]: the forwarded connections, by build (a breakpoint's clients).
//! - [`console`]: the console lines a build gets for each login and disconnect.
//! - [`keys`]: users' SSH public keys (`add-ssh-key` and friends).
//! - [`host_keys`]: agents' host keys, recorded when they connect, changes flagged.
//! - [`recordings`]: the sessions' recordings the agents send, written as asciicast.
//!
//! The WebSocket routes that carry the bytes are in `http::ssh`.

pub mod connections;
pub mod console;
pub mod host_keys;
pub mod keys;
pub mod recordings;
pub mod targets;
