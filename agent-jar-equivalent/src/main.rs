//! `agent`: the Steward agent program. Parses the command line, sets up logging and the
//! TLS provider, and runs [`steward_agent::run`] until it stops or a signal arrives.
//!
//! Started under the name `breakpoint`, it is that command instead
//! ([`steward_agent::breakpoint::command`], with exit codes of its own); under the name
//! `steward-terminal-holder`, a terminal's holder ([`steward_agent::terminals::holder`]);
//! under the name `steward-git`, a build's checkout ([`steward_agent::git`]).
//!
//! Exit codes: 0 when the agent stops on purpose (signal, `-noReconnect`,
//! `-noReconnectAfter`), 1 when it cannot run (bad work directory, unusable JNLP document),
//! 2 for command-line errors, a `-cert` without a certificate among them (`agent.jar` exits
//! 0 there; scripts need a failure code).

use std::process::ExitCode;

use anyhow::Context;
use steward_agent::{AgentOptions, ExitReason, LogFile};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

fn main() -> ExitCode {
    // Started as `breakpoint` (the symlink in the work dir's bin directory): the command.
    let mut args = std::env::args_os();
    if let Some(argv0) = args.next()
        && steward_agent::breakpoint::invoked_as_command(&argv0)
    {
        let args: Vec<_> = args.collect();
        return ExitCode::from(steward_agent::breakpoint::command::main(&args));
    }
    // Started as `steward-git` by a build's checkout step.
    let mut args = std::env::args_os();
    if let Some(argv0) = args.next()
        && steward_agent::git::invoked_as(&argv0)
    {
        let args: Vec<_> = args.collect();
        return ExitCode::from(steward_agent::git::main(&args));
    }
    // Started as a terminal's holder by the agent itself.
    let mut args = std::env::args_os();
    if let Some(argv0) = args.next()
        && steward_agent::terminals::invoked_as_holder(&argv0)
    {
        let args: Vec<_> = args.collect();
        return ExitCode::from(steward_agent::terminals::holder::main(&args));
    }
    // Started as the ssh driver's client by a terminal holder.
    let mut args = std::env::args_os();
    if let Some(argv0) = args.next()
        && std::path::Path::new(&argv0).file_name()
            == Some(std::ffi::OsStr::new(
                steward_agent::terminals::ssh_client::SSH_CLIENT_NAME,
            ))
    {
        let args: Vec<_> = args.collect();
        return ExitCode::from(steward_agent::terminals::ssh_client::main(&args));
    }
    steward_channel::allocator::keep_freed_memory();
    // Prints the message and the usage (exit 2), or the help/version (exit 0).
    let options = steward_agent::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());

    let log_file = LogFile::new();
    steward_agent::logging::init(log_file.clone());
    steward_transport::install_crypto_provider();

    match start(options, log_file) {
        Ok(reason) => {
            info!("Agent stopped: {}", describe(reason));
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(options: AgentOptions, log_file: LogFile) -> anyhow::Result<ExitReason> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // On a worker thread, not this one: the connection's tasks and the service tasks
        // they wake then share a worker instead of waking each other across threads.
        let mut agent = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { steward_agent::run(options, &log_file, shutdown).await }
        });
        tokio::select! {
            result = &mut agent => return joined(result),
            signal = shutdown_signal() => {
                info!("Received {signal}, closing the connection");
                shutdown.cancel();
            }
        }
        // The agent closes its connection (bounded by its close timeout) and returns.
        joined(agent.await)
    })
}

fn joined(
    result: Result<Result<ExitReason, steward_agent::AgentError>, tokio::task::JoinError>,
) -> anyhow::Result<ExitReason> {
    match result {
        Ok(result) => result.context("the agent cannot run"),
        Err(e) => Err(anyhow::anyhow!("the agent's task failed: {e}")),
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                error!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

fn describe(reason: ExitReason) -> String {
    match reason {
        ExitReason::Shutdown => "shutdown requested".to_owned(),
        ExitReason::ConnectionEnded => "the connection ended and -noReconnect is set".to_owned(),
        ExitReason::BailedOut(after) => format!(
            "no connection within {}",
            steward_agent::duration::format_duration(after)
        ),
    }
}
