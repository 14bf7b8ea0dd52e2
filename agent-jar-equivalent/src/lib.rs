//! The Steward agent: connects a machine to a controller over WebSocket and keeps it
//! connected, behaving on the command line and on the wire like Jenkins' `agent.jar
//! -webSocket` (see `docs/jenkins-compat.md` §1, §3, §9).
//!
//! How the pieces fit, in the order a start-up meets them:
//! - [`argv`]: Jenkins-style single-dash options and `@FILE` values, rewritten for clap;
//! - [`options`]: the command line, checked, as [`AgentOptions`];
//! - [`duration`]: `-noReconnectAfter` values like `30s` or `5m`;
//! - [`jnlp`]: `-jnlpUrl`: fetch and decrypt the JNLP document and apply its arguments;
//! - [`workdir`] and [`logging`]: the work directory and the log file inside it;
//! - [`reconnect`]: the connect loop and its status lines, paced by [`retry`] on the
//!   pure [`backoff`] schedule;
//! - [`connect`]: one attempt: `GET login`, then the `/wsagents/` upgrade;
//! - [`session`]: one connection after the upgrade, over any `Sink` + `Stream`;
//! - [`breakpoint`]: the `breakpoint` command (this binary under that name) and the local
//!   socket through which the agent relays it to the controller;
//! - [`git`]: `steward-git`, a build's Git checkout (this binary under that name).
//!
//! Network set-up (TLS, proxies, dialing) comes from `steward_transport`; wire formats from
//! `steward_protocol`. The binary's `main` only parses options, sets up logging and calls
//! [`run`].

pub mod argv;
pub mod backoff;
pub mod breakpoint;
pub mod connect;
/// Durations live with the wire formats: the controller reads the same ones.
pub use steward_protocol::duration;
pub mod git;
pub mod jnlp;
pub mod logging;
pub mod options;
pub mod reconnect;
pub mod retry;
pub mod services;
pub mod session;
pub mod terminals;
pub mod workdir;

use std::ops::ControlFlow;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use logging::LogFile;
pub use options::{AgentOptions, Source, parse_args};

/// Why the agent stopped without an error; every one exits 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// SIGINT/SIGTERM: the connection was closed with 1001.
    Shutdown,
    /// `-noReconnect` and an established connection ended.
    ConnectionEnded,
    /// `-noReconnectAfter` expired while retrying.
    BailedOut(Duration),
}

/// Why the agent could not run at all; exits 1.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Transport(#[from] steward_transport::TransportError),
    #[error(transparent)]
    Jnlp(#[from] jnlp::JnlpFetchError),
    #[error(transparent)]
    WorkDir(#[from] workdir::WorkDirError),
    #[error("cannot open the log file {}: {source}", path.display())]
    LogFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Runs the agent until shutdown is requested or the options say stop. Log lines go to the
/// process' tracing subscriber; `log_file` is opened in the work directory once known.
pub async fn run(
    options: AgentOptions,
    log_file: &LogFile,
    shutdown: CancellationToken,
) -> Result<ExitReason, AgentError> {
    let tls = steward_transport::tls_config(&options.tls)?;
    let http = steward_transport::http_client(&tls)?;

    // The work directory of a -jnlpUrl agent is only known once its document is read.
    let from_jnlp = matches!(options.source, Source::Jnlp { .. });
    if !from_jnlp {
        open_work_dir(&options, log_file)?;
    }
    let options = match jnlp::resolve(options, &http, &shutdown).await? {
        ControlFlow::Continue(options) => options,
        ControlFlow::Break(reason) => return Ok(reason),
    };
    if from_jnlp {
        open_work_dir(&options, log_file)?;
    }
    let Source::Direct {
        root,
        node_name,
        secret,
    } = options.source
    else {
        unreachable!("jnlp::resolve turns every -jnlpUrl source into a direct one");
    };

    let endpoint = connect::Endpoint {
        root,
        node_name,
        secret,
        extra_headers: options.web_socket_headers,
    };
    let transport = connect::Transport {
        http,
        tls,
        proxy_credentials: options.proxy_credentials,
    };
    let policy = reconnect::ReconnectPolicy {
        no_reconnect: options.no_reconnect,
        give_up_after: options.no_reconnect_after,
    };
    // Relative paths in requests resolve against the work dir, as remoteFS does in Jenkins.
    // It is made absolute once, so what the agent reports (a build's WORKSPACE) is a path
    // that means the same from any directory.
    let work_dir = match options.work_dir {
        Some(dir) => std::path::absolute(&dir).unwrap_or(dir),
        None => std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from(".")),
    };
    let services = services::Context::new(work_dir.clone());
    let relay = start_breakpoint(&work_dir, &services);
    let reason = reconnect::connect_loop(&endpoint, &transport, policy, &services, &shutdown).await;
    if let Some(relay) = relay {
        relay.stop().await;
    }
    // SSH sessions end with the agent, and so do the processes they started.
    services.ssh().sessions().close_all().await;
    Ok(reason)
}

/// Sets up the `breakpoint` command: its symlink and the socket it reaches the agent by.
/// Neither is needed to run builds, so a failure is a warning, not a reason to stop.
fn start_breakpoint(
    work_dir: &std::path::Path,
    services: &services::Context,
) -> Option<breakpoint::Relay> {
    if let Err(e) = breakpoint::bin_dir(work_dir) {
        warn!(
            "cannot link the breakpoint command into {}: {e}",
            breakpoint::bin::bin_path(work_dir).display()
        );
    }
    breakpoint::Relay::start(work_dir, services.clone())
        .inspect_err(|e| warn!("{e}; the breakpoint command will not work on this agent"))
        .ok()
}

/// Creates the work directory and starts appending the log there.
fn open_work_dir(options: &AgentOptions, log_file: &LogFile) -> Result<(), AgentError> {
    let Some(work_dir) = &options.work_dir else {
        return Ok(());
    };
    let internal = options
        .internal_dir
        .as_deref()
        .unwrap_or(workdir::DEFAULT_INTERNAL_DIR);
    let path = workdir::prepare(work_dir, internal, options.fail_if_work_dir_is_missing)?;
    log_file.open(&path).map_err(|source| AgentError::LogFile {
        path: path.clone(),
        source,
    })?;
    info!(
        "Using {} as the work directory; logging to {}",
        work_dir.display(),
        path.display()
    );
    Ok(())
}
