//! The SSH commands, which the client runs itself rather than sending them to the
//! controller: `ssh-proxy`, `ssh-tunnel`, `ssh` and `ssh-config`.
//!
//! The controller carries an SSH client's raw byte stream as binary WebSocket messages at
//! `ROOT/computer/NODE/ssh` and `ROOT/job/JOB/N/ssh`, to the SSH server inside the node's
//! agent. Here:
//! - [`args`] reads the command lines, [`target`] the `NODE` or `JOB#N` they name, and the
//!   routes and ssh names that follow from it;
//! - [`dial`] opens the WebSocket (the CLI's own TLS and dialing), [`relay`] pumps bytes
//!   between it and a local byte stream, one message in flight each way;
//! - [`proxy`] relays stdin and stdout (ssh's ProxyCommand), [`tunnel`] a local port;
//! - [`host_keys`] gets the nodes' host keys from the controller's `ssh-host-keys` command,
//!   [`handoff`] hands this client's options on to the ProxyCommand without putting a
//!   token on a command line, [`quote`] writes them for the shell and ssh, [`client`] runs
//!   the system's `ssh` with the key pinned, and [`config`] renders `ssh-config`'s output;
//! - [`error`] names the failures and their exit codes.

pub mod args;
pub mod client;
pub mod config;
pub mod dial;
pub mod error;
pub mod handoff;
pub mod host_keys;
pub mod proxy;
pub mod quote;
pub mod relay;
pub mod stdio;
pub mod target;
pub mod tunnel;

pub use args::SshCommand;
pub use error::SshError;

use steward_transport::TlsOptions;
use tokio::io::AsyncWriteExt as _;

use crate::options::{Config, ProcessEnv};
use crate::{CliError, Interrupts};
use host_keys::Fetched;

/// Runs an SSH command with the process's standard streams; its exit code. Failures are
/// reported on stderr.
///
/// Expects `steward_transport::install_crypto_provider` to have been called.
pub async fn run(config: &Config, command: &SshCommand) -> i32 {
    match run_command(config, command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

async fn run_command(config: &Config, command: &SshCommand) -> Result<i32, SshError> {
    let tls = steward_transport::tls_config(&TlsOptions {
        extra_ca_pem: config.extra_ca_pem.clone(),
        no_certificate_check: config.no_certificate_check,
    })
    .map_err(CliError::from)?;
    // ssh-proxy keeps the default signal actions: ssh ends its ProxyCommand with SIGHUP,
    // and a Ctrl-C in a terminal goes to ssh and it alike.
    if let SshCommand::Proxy { target } = command {
        let (stdin, stdout) = (stdio::stdin(), stdio::stdout());
        proxy::run(config, &tls, target, stdin, stdout).await?;
        return Ok(0);
    }
    let interrupts = Interrupts::process().map_err(|e| CliError::Connect {
        url: config.root.to_string(),
        reason: format!("cannot watch for interrupts: {e}"),
    })?;
    match command {
        SshCommand::Proxy { .. } => unreachable!("handled above"),
        SshCommand::Tunnel { target, port } => {
            let listener = tunnel::bind(*port).await?;
            if let Ok(address) = listener.local_addr() {
                eprintln!("Listening on {address}");
            }
            let serving = tunnel::serve(config, &tls, target, listener, |line| {
                eprintln!("{line}");
            });
            match interrupts.clone().or_interrupt(serving).await {
                Ok(served) => served.map(|()| 0),
                Err(signal) => Ok(signal.exit_code()),
            }
        }
        SshCommand::Ssh {
            target,
            user,
            command,
        } => client::run(config, target, user.as_deref(), command, &interrupts).await,
        SshCommand::Config { sections, targets } => {
            let keys = match host_keys::fetch(config, targets, &interrupts).await? {
                Fetched::Keys(keys) => keys,
                Fetched::Failed(code) => return Ok(code),
            };
            let exe = std::env::current_exe().map_err(SshError::Spawn)?;
            let handoff = handoff::for_config(config, &exe);
            let node_user = client::default_user(&ProcessEnv);
            let text = config::render(
                &keys,
                &config::Rendering {
                    sections: *sections,
                    handoff: &handoff,
                    node_user: &node_user,
                },
            );
            let mut stdout = tokio::io::stdout();
            let written = async {
                stdout.write_all(text.as_bytes()).await?;
                stdout.flush().await
            };
            written.await.map_err(|source| {
                CliError::Session(crate::session::SessionError::Output {
                    stream: "stdout",
                    source,
                })
            })?;
            Ok(0)
        }
    }
}
