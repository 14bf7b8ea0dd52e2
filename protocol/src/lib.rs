//! Steward's wire formats, with no I/O: bytes in, values out.
//!
//! A reader of this crate learns the whole wire format without meeting a socket:
//! - [`handshake`]: the `/wsagents/` request and answer headers, their messages, and the
//!   negotiation of our channel protocol version (Jenkins JEP-222 plus one header of ours).
//! - [`secret`]: the controller's HMAC key and the node secrets derived from it.
//! - [`channel`]: the binary frames agent and controller exchange after the upgrade.
//! - [`plaincli`]: Jenkins' PlainCLIProtocol frames, in the WebSocket and the HTTP framing.
//! - [`jnlp`]: JNLP documents (building, parsing) and their `?encrypt=true` form.
//! - [`node_xml`]: the node XML that `create-node`/`get-node` speak.
//! - [`names`]: node and job names: Jenkins' rules, one Unicode spelling, no invisible or
//!   look-alike names.
//! - [`duration`]: durations as users write them (`30s`, `5m`, `1h`).
//! - [`disk_space`]: the disk-space threshold a node's XML may set, in Jenkins' size notation.
//! - [`cron`]: Jenkins' cron specs (`H/15 * * * *`, `@daily`, `TZ=`), which minutes a build
//!   timer or SCM poll fires at.
//! - [`label`]: Jenkins label expressions (`linux && !arm`), which nodes a job may run on.
//! - [`job_xml`]: the freestyle job XML that `create-job`/`get-job` speak, build parameters.
//! - [`view_xml`]: the view XML that `create-view`/`get-view` speak (list views, the `all`
//!   view).
//! - [`junit`]: JUnit XML test reports, read as Jenkins' JUnit publisher reads them, and the
//!   `testReport` JSON they make.
//! - [`ant_glob`]: Ant file patterns (`**/target/*.jar`), as the artifact and test report
//!   publishers take them.
//! - [`services`]: the requests the controller makes of agents over the channel.
//! - [`steps`]: the durable build steps those requests start, follow and kill.
//! - [`ssh`]: the SSH connections the controller forwards to the agent's SSH server, and
//!   public keys in OpenSSH's form with their fingerprints.
//! - [`agent_calls`]: the calls an agent makes of the controller (who logged in over SSH, the
//!   `breakpoint` command).
//! - [`breakpoint`]: what `breakpoint` asks and is answered, and its local socket's framing.
//! - [`credentials`]: Jenkins credentials as the credentials plugin's CLI speaks them (XML,
//!   redacted and stored; `list-credentials`; the store and domain arguments).
//! - [`mask`]: streaming masking of secrets in build consoles, as credentials-binding does.
//! - [`xml`]: the hardened XML reading shared by JNLP and node XML.
//! - [`zip`]: the records of a streamed, stored ZIP archive (a build's artifacts as one
//!   download).
//! - [`shown`]: user-supplied text made safe to print in messages and logs (escapes for
//!   control and bidirectional characters).
//! - `byte_buf`: how byte payloads (logs, output, scripts) are encoded: as bytes, not as a
//!   sequence of numbers.

pub mod agent_calls;
pub mod ant_glob;
pub mod breakpoint;
mod byte_buf;
pub mod channel;
pub mod credentials;
pub mod cron;
pub mod disk_space;
pub mod duration;
pub mod handshake;
pub mod jnlp;
pub mod job_xml;
pub mod junit;
pub mod label;
pub mod mask;
pub mod names;
pub mod node_xml;
pub mod plaincli;
pub mod secret;
pub mod services;
pub mod shown;
pub mod ssh;
pub mod steps;
pub mod terminals;
pub mod view_xml;
pub mod xml;
pub mod zip;

/// The product version, reported by `version`, `X-Jenkins` and the hello frames.
pub const STEWARD_VERSION: &str = env!("CARGO_PKG_VERSION");
