//! Steward's CLI client, the equivalent of `jenkins-cli.jar`.
//!
//! A run goes: [`options`] turns the command line into a [`Config`]; [`run`] dials the
//! controller over WebSocket ([`ws`], compat §4) or full-duplex HTTP ([`http`], §5), falling
//! back from the first to the second when the WebSocket endpoint is missing; either way
//! [`session`] speaks PlainCLIProtocol (§6) over a frame sink and stream, pumping stdin up and
//! output down until the command's exit code arrives. [`auth`] builds the `Authorization`
//! header and [`error`] maps failures to the client's own exit codes; [`progress`] shows a
//! progress bar for copies when stderr is a terminal; [`interrupt`] turns SIGINT and SIGTERM
//! into an explicit `INTERRUPT` for the controller.
//!
//! The SSH commands (`ssh`, `ssh-proxy`, `ssh-tunnel`, `ssh-config`) are run by the client
//! itself: [`ssh`] relays SSH byte streams over the controller's SSH WebSocket routes and
//! runs the system's `ssh` with the node's host key pinned.
//!
//! Liveness: both transports send keepalives (WebSocket pings, `ENCODING` frames) and end
//! with exit 255 when nothing has come from the controller for the idle timeout, which the
//! controller's own keepalives keep from firing while a command is merely quiet.
//!
//! Frames are encoded by `steward_protocol::plaincli`; sockets, TLS and proxies come from
//! `steward_transport`.

pub mod answer;
pub mod auth;
pub mod error;
pub mod http;
pub mod interrupt;
pub mod options;
pub mod progress;
pub mod session;
pub mod ssh;
pub mod terminal;
pub mod ws;

pub use error::{CliError, exit};
pub use interrupt::Interrupts;
pub use options::{Config, Invocation, Mode};
pub use session::Stdio;

use std::time::Duration;

use steward_transport::TlsOptions;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long the client waits with nothing from the controller before it gives up, unless
/// `-idleTimeout` says otherwise: the controller's keepalives come every 15 s (full-duplex
/// HTTP) or 30 s (WebSocket pings, answered at once to ours), so a quiet command never
/// reaches it, and a stopped controller is noticed within a minute, as agents notice it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Ping interval over WebSocket, as a part of the idle timeout: the controller answers each
/// ping, so a third leaves two chances before the timeout.
const PINGS_PER_IDLE_TIMEOUT: u32 = 3;

/// Runs the configured command on the controller and returns the command's exit code, or
/// 128 + the signal's number when `interrupts` delivered one.
///
/// Expects `steward_transport::install_crypto_provider` to have been called. Once this
/// returns, the caller should exit promptly: a stdin read may still be pending.
pub async fn run<I, O, E>(
    config: &Config,
    stdio: &mut Stdio<I, O, E>,
    interrupts: &Interrupts,
) -> Result<i32, CliError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let tls = steward_transport::tls_config(&TlsOptions {
        extra_ca_pem: config.extra_ca_pem.clone(),
        no_certificate_check: config.no_certificate_check,
    })?;
    if config.mode == Mode::WebSocket {
        let dial = ws::dial(
            &config.root,
            config.credentials.as_ref(),
            &tls,
            config.idle_timeout,
        );
        let dialed = match interrupts.clone().or_interrupt(dial).await {
            Ok(dialed) => dialed?,
            Err(signal) => return Ok(signal.exit_code()),
        };
        match dialed {
            ws::Dialed::Open { socket, interrupt } => {
                let (sink, stream) = ws::frames(*socket, config.idle_timeout);
                let setup = session::Setup {
                    args: config.args.clone(),
                    locale: config.locale.clone(),
                    // The controller pings too (compat §9); ours make it answer, so the
                    // idle timeout holds even where its pings are turned off.
                    keepalive: config.idle_timeout.map(|t| t / PINGS_PER_IDLE_TIMEOUT),
                    interrupt,
                };
                return Ok(session::run(sink, stream, &setup, stdio, interrupts.clone()).await?);
            }
            ws::Dialed::FallBack { answer } => {
                // Said once the URL is known to lead to a controller: a URL that leads to
                // none gets its one line from the full-duplex side instead.
                let notice = format!(
                    "WebSocket CLI unavailable ({answer}); falling back to full-duplex HTTP\n"
                );
                return http::run(config, &tls, stdio, interrupts, Some(&notice)).await;
            }
        }
    }
    http::run(config, &tls, stdio, interrupts, None).await
}
