//! Steward's CLI client, the equivalent of `jenkins-cli.jar`.
//!
//! A run goes: [`options`] turns the command line into a [`Config`]; [`run`] dials the
//! controller over WebSocket ([`ws`], compat §4) or full-duplex HTTP ([`http`], §5), falling
//! back from the first to the second when the WebSocket endpoint is missing; either way
//! [`session`] speaks PlainCLIProtocol (§6) over a frame sink and stream, pumping stdin up and
//! output down until the command's exit code arrives. [`auth`] builds the `Authorization`
//! header and [`error`] maps failures to the client's own exit codes; [`progress`] shows a
//! progress bar for copies when stderr is a terminal.
//!
//! Frames are encoded by `steward_protocol::plaincli`; sockets, TLS and proxies come from
//! `steward_transport`.

pub mod auth;
pub mod error;
pub mod http;
pub mod options;
pub mod progress;
pub mod session;
pub mod ws;

pub use error::{CliError, exit};
pub use options::{Config, Invocation, Mode};
pub use session::Stdio;

use steward_transport::TlsOptions;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Runs the configured command on the controller and returns the command's exit code.
///
/// Expects `steward_transport::install_crypto_provider` to have been called. Once this
/// returns, the caller should exit promptly: a stdin read may still be pending.
pub async fn run<I, O, E>(config: &Config, stdio: &mut Stdio<I, O, E>) -> Result<i32, CliError>
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
        match ws::dial(&config.root, config.credentials.as_ref(), &tls).await? {
            ws::Dialed::Open(socket) => {
                let (sink, stream) = ws::frames(*socket);
                let setup = session::Setup {
                    args: config.args.clone(),
                    locale: config.locale.clone(),
                    // The server pings WebSocket sessions itself (compat §9).
                    keepalive: None,
                };
                return Ok(session::run(sink, stream, &setup, stdio).await?);
            }
            ws::Dialed::FallBack { status } => {
                let notice = format!(
                    "WebSocket CLI unavailable (HTTP {status}); falling back to full-duplex HTTP\n"
                );
                // Only a notice: failing to print it must not stop the command.
                let _ = stdio.stderr.write_all(notice.as_bytes()).await;
                let _ = stdio.stderr.flush().await;
            }
        }
    }
    http::run(config, &tls, stdio).await
}
