//! `cli`: run a command on a Steward (or Jenkins) controller, like `jenkins-cli.jar`.
//!
//! Parses the command line, installs the TLS provider, and hands over to
//! [`steward_cli::run`], or to [`steward_cli::ssh::run`] for the SSH commands the client
//! runs itself. The process exits with the command's exit code, or with the
//! client's own (usage 2, not a controller 3, handshake refused 15, connection 255).

use anyhow::Context as _;
use steward_cli::options::{self, Invocation, ProcessEnv, USAGE};
use steward_cli::ssh::{SshCommand, args::usage};
use steward_cli::{CliError, Config, exit};

fn main() {
    // Errors are reported as one line and an exit code; a bug should look the same rather
    // than dump a backtrace on a user.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("cli: internal error: {message}{place}");
        std::process::exit(exit::CONNECTION);
    }));
    // `process::exit` rather than returning: a stdin read on tokio's blocking pool may
    // still be pending after EXIT, and must not keep the process alive.
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let invocation = match options::parse(std::env::args_os().skip(1), &ProcessEnv) {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("{e}");
            if e.shows_usage() {
                eprintln!("{USAGE}");
            }
            return e.exit_code();
        }
    };
    match invocation {
        Invocation::Version => {
            println!("Version: {}", steward_protocol::STEWARD_VERSION);
            0
        }
        Invocation::Run(mut config) => {
            if let Err(message) = steward_cli::terminal::read_param_files(&mut config.args) {
                eprintln!("{message}");
                return exit::USAGE;
            }
            if let Some(attach) = steward_cli::terminal::Attach::parse(&config.args) {
                return match attach {
                    Ok(attach) => run_attach(&config, &attach),
                    Err(message) => {
                        eprintln!("{message}");
                        exit::USAGE
                    }
                };
            }
            let outcome = match SshCommand::parse(&config.args) {
                None => run(&config),
                Some(Ok(command)) => run_ssh(&config, &command),
                Some(Err(e)) => Err((exit::USAGE, format!("{e}\n{}", usage(e.command())))),
            };
            outcome.unwrap_or_else(|(code, message)| {
                eprintln!("{message}");
                code
            })
        }
    }
}

/// One thread is plenty for two sockets and three standard streams; stdin and stdout reads
/// and writes go to tokio's blocking pool either way.
fn runtime() -> Result<tokio::runtime::Runtime, (i32, String)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| (exit::CONNECTION, format!("{e:#}")))
}

/// Runs `attach-terminal`, which reports its own failures.
fn run_attach(config: &Config, attach: &steward_cli::terminal::Attach) -> i32 {
    steward_transport::install_crypto_provider();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err((code, message)) => {
            eprintln!("{message}");
            return code;
        }
    };
    let code = runtime.block_on(steward_cli::terminal::run(config, attach));
    runtime.shutdown_background();
    code
}

/// Runs an SSH command, which reports its own failures.
fn run_ssh(config: &Config, command: &SshCommand) -> Result<i32, (i32, String)> {
    steward_transport::install_crypto_provider();
    let runtime = runtime()?;
    let code = runtime.block_on(steward_cli::ssh::run(config, command));
    // Do not wait for a stdin read that may never return.
    runtime.shutdown_background();
    Ok(code)
}

/// Runs the command; on failure, the exit code and the one message to print.
fn run(config: &Config) -> Result<i32, (i32, String)> {
    steward_transport::install_crypto_provider();
    let runtime = runtime()?;
    let (mut stdio, progress) = steward_cli::progress::process_stdio(&config.args);
    let result = runtime.block_on(async {
        // From here on SIGINT and SIGTERM are told to the controller, not fatal at once.
        let interrupts = steward_cli::Interrupts::process().map_err(|e| CliError::Connect {
            url: config.root.to_string(),
            reason: format!("cannot watch for interrupts: {e}"),
        })?;
        steward_cli::run(config, &mut stdio, &interrupts).await
    });
    if let Some(progress) = progress {
        progress.finish(matches!(result, Ok(0)));
    }
    // Do not wait for a stdin read that may never return.
    runtime.shutdown_background();
    result.map_err(|e| (e.exit_code(), e.to_string()))
}
