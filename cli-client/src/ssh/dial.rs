//! Opening the controller's SSH WebSocket for a target (`GET ROOT/computer/NODE/ssh`,
//! `GET ROOT/job/JOB/N/ssh`), authenticated as the REST API is, with the TLS setup and
//! dialing of the CLI's own `/cli/ws`. The controller refuses before the upgrade, with a
//! status and a one-line reason, which [`open`] turns into an [`SshError::Refused`].

use std::sync::Arc;

use steward_protocol::shown::shown;
use steward_transport::{WsConnectError, WsStream};

use super::error::SshError;
use super::target::Target;
use crate::answer;
use crate::auth::AUTHORIZATION;
use crate::options::Config;

/// Largest message taken from the controller: its own cap on SSH messages, so whatever it
/// may send fits, and no more is buffered.
pub const MAX_SSH_MESSAGE: usize = 256 * 1024;

/// Opens the WebSocket to `target`, waiting at most the idle timeout for the answer.
pub async fn open(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
) -> Result<WsStream, SshError> {
    let url = target.route(&config.root).map_err(crate::CliError::from)?;
    open_url(config, tls, &url, MAX_SSH_MESSAGE).await
}

/// Opens a WebSocket route of the controller (`url`), authenticated, taking messages of up
/// to `max_message` bytes.
pub async fn open_url(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    url: &url::Url,
    max_message: usize,
) -> Result<WsStream, SshError> {
    // The controller applies its same-origin rule to WebSockets: the root's origin, as the
    // CLI sends on /cli/ws.
    let mut headers = vec![(
        "Origin".to_owned(),
        steward_transport::origin_of(&config.root),
    )];
    if let Some(credentials) = &config.credentials {
        headers.push((AUTHORIZATION.to_owned(), credentials.header_value()));
    }
    let dialing = steward_transport::connect_websocket_within(
        url,
        &headers,
        tls,
        max_message,
        config.idle_timeout,
    );
    match dialing.await {
        Ok((socket, _)) => Ok(socket),
        Err(WsConnectError::Refused {
            status,
            headers,
            body,
        }) if !answer::is_proxy_failure(status, &headers) => Err(SshError::Refused {
            status,
            reason: reason(status, &body),
        }),
        Err(e) => Err(crate::ws::dial_failed(url, e).into()),
    }
}

/// The refusal's one-line reason: the body's first line, control characters escaped, or
/// the status when the body says nothing.
fn reason(status: u16, body: &str) -> String {
    match body.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => shown(line).into_owned(),
        None => format!("the controller refused the connection with HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_first_line_of_the_body() {
        assert_eq!(reason(404, "No such node ‘x’\n"), "No such node ‘x’");
        assert_eq!(reason(403, "\n  a\u{1b}[31m\nb"), "a\\u{1b}[31m");
        assert_eq!(
            reason(500, ""),
            "the controller refused the connection with HTTP 500"
        );
    }
}
