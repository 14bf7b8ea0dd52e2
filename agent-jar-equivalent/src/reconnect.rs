//! The connect loop (compat §3.3): attempt, session, and again, printing the status lines
//! the real agent prints.
//!
//! ```text
//! Setting up agent: NAME
//! ┌─> attempt (login probe + upgrade) ── fails ──> Failed to connect: REASON
//! │     │ 101                                      Waiting N seconds before retry ──┐
//! │     v                                                                          │
//! │   WebSocket connection open, hello exchange, Connected                         │
//! │     │ connection ends                                                          │
//! │     v                                                                          │
//! └── Terminated (reconnect at once with the cookie; -noReconnect exits) <──────────┘
//! ```
//!
//! A refusal says what it means at error level (a 403: the secret refused; a 400: the
//! controller's reason). While the controller has no such node (it was deleted), the agent
//! tries once a minute instead of every 10 s, and connects as usual once the node exists.

use steward_protocol::handshake::MSG_NO_SUCH_AGENT;
use steward_protocol::shown::Shown;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span};

use crate::ExitReason;
use crate::connect::{self, AttemptError, Endpoint, Transport};
use crate::retry::Retry;
use crate::services;
use crate::session::{self, SessionEnd, SessionParams};

/// How the loop behaves between connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconnectPolicy {
    /// `-noReconnect`: stop when an established connection ends.
    pub no_reconnect: bool,
    /// `-noReconnectAfter`: stop retrying after this long.
    pub give_up_after: Option<std::time::Duration>,
}

/// Connects and stays connected until shutdown or the policy says stop.
pub async fn connect_loop(
    endpoint: &Endpoint,
    transport: &Transport,
    policy: ReconnectPolicy,
    services: &services::Context,
    shutdown: &CancellationToken,
) -> ExitReason {
    let span = info_span!("agent", node = %endpoint.node_name);
    run(endpoint, transport, policy, services, shutdown)
        .instrument(span)
        .await
}

async fn run(
    endpoint: &Endpoint,
    transport: &Transport,
    policy: ReconnectPolicy,
    services: &services::Context,
    shutdown: &CancellationToken,
) -> ExitReason {
    info!("Setting up agent: {}", endpoint.node_name);
    let mut cookie: Option<String> = None;
    let mut retry = Retry::new(policy.give_up_after);
    loop {
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return ExitReason::Shutdown,
            attempt = connect::attempt(endpoint, transport, cookie.as_deref()) => attempt,
        };
        let mut unknown_node = false;
        match attempt {
            Err(e) => unknown_node = report_failure(&endpoint.node_name, &e),
            Ok((ws, answer)) => {
                info!(
                    channel_version = answer.channel_version,
                    "WebSocket connection open"
                );
                if answer.cookie.is_some() {
                    cookie = answer.cookie;
                }
                let params = SessionParams {
                    node_name: endpoint.node_name.clone(),
                    channel_version: answer.channel_version,
                    idle_timeout: session::DEFAULT_IDLE_TIMEOUT,
                    services: services.clone(),
                };
                let outcome = session::run_session(ws, &params, shutdown).await;
                if outcome.end == SessionEnd::Shutdown {
                    return ExitReason::Shutdown;
                }
                if outcome.established {
                    info!(reason = ?outcome.end.to_string(), "Terminated");
                    if policy.no_reconnect {
                        return ExitReason::ConnectionEnded;
                    }
                    retry.reset();
                    continue;
                }
                info!("Failed to connect: {}", Shown(&outcome.end.to_string()));
            }
        }
        let waited = if unknown_node {
            retry.wait_for_node(shutdown).await
        } else {
            retry.wait(shutdown).await
        };
        if let Err(stop) = waited {
            return stop;
        }
    }
}

/// `Failed to connect: REASON`, then at error level what a refusal means: a 403 is the
/// node's secret refused, another refusal gives the controller's own words (its body). A
/// refused certificate is an error on every attempt, with what to do about it: retrying
/// goes on (the server's certificate may be fixed), but not quietly.
///
/// Whether the controller said it has no such node, which slows the retries down.
fn report_failure(node: &str, error: &AttemptError) -> bool {
    if let AttemptError::Untrusted { .. } = error {
        error!("Failed to connect: {}", Shown(&error.to_string()));
        return false;
    }
    info!("Failed to connect: {}", Shown(&error.to_string()));
    match error {
        AttemptError::Refused { status: 403, .. } => {
            error!(
                "The controller refused the secret for node {}: the -secret given is not this \
                 node's (`cli agent-command {}` on the controller prints the right one)",
                Shown(node),
                Shown(node)
            );
        }
        AttemptError::Refused { status: 400, body } if body == MSG_NO_SUCH_AGENT => {
            error!(
                "The controller refused the connection: {body} (it has no node named {}: \
                 deleted, or not created yet); trying again once a minute",
                Shown(node)
            );
            return true;
        }
        AttemptError::Refused { body, .. } if !body.is_empty() => {
            error!("The controller refused the connection: {body}");
        }
        AttemptError::BadAnswer(reason) => error!("{}", Shown(reason)),
        _ => {}
    }
    false
}
