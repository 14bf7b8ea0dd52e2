//! The task that holds a breakpoint until it ends, and ends it:
//! - at its expiry, or `.hold`'s (the file's mtime + the breakpoint's duration, within the
//!   maximum), whichever is later;
//! - at the connect timeout, when nobody has connected by then;
//! - when the last client logs out, if the job says so and no `.hold` holds it;
//! - when the build is aborted, or someone resumes it ([`super::Held::end`]).
//!
//! While a client is connected the expiry is kept [`super::AUTO_EXTEND_AHEAD`] ahead.
//! Sessions are warned five minutes and one minute before the end; the console repeats how
//! to connect every five minutes. When it ends, the connections into the build are closed,
//! which ends their sessions on the agent and kills what they started.

use std::sync::Arc;
use std::time::Duration;

use steward_protocol::duration::{format_duration, utc};
use steward_protocol::services::{Request, Response};

use super::console::{from_now, how_to_connect};
use super::{AUTO_EXTEND_AHEAD, Held, save};
use crate::builds::now_ms;
use crate::state::AppState;

/// How often `.hold` is looked for in the workspace.
pub const HOLD_POLL: Duration = Duration::from_secs(5);
/// How often the console repeats how to connect.
pub const REPRINT: Duration = Duration::from_secs(5 * 60);
/// When sessions are warned, before the end.
pub const WARNINGS: [Duration; 2] = [Duration::from_secs(5 * 60), Duration::from_secs(60)];
/// After a resume, how long the build's sessions have to end by themselves before they are
/// closed (and what they started killed).
pub const RESUME_GRACE: Duration = Duration::from_secs(2);
/// The longest a `.hold` check may take: the agent answers at once or is away.
const HOLD_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> i64 {
    super::ms(d)
}

/// Holds until the breakpoint ends; on shutdown it returns without ending it, so the next
/// controller holds it on.
pub async fn run(state: AppState, held: Arc<Held>, fresh: bool) {
    let build = held.build.clone();
    let id = build.row.id;
    let now = now_ms();
    let intro = if fresh {
        let row = held.row();
        format!(
            "Breakpoint: {}; holding the executor and workspace on {}.\n",
            row.reason, build.row.node
        )
    } else {
        "Breakpoint: held on after the controller restarted.\n".to_owned()
    };
    build.note(format!(
        "{intro}{}",
        how_to_connect(&state, &held, now).await
    ));

    let mut changes = state.ssh.subscribe();
    let abort = build.abort_requested();
    let mut clients_before = logged_in(&state, id);
    let mut next_print = now + ms(REPRINT);
    let mut next_poll = now;
    let mut warned = [false; WARNINGS.len()];
    let how = loop {
        if let Some(how) = held.end_asked() {
            break how;
        }
        if abort.is_cancelled() {
            let by = build
                .aborted_by()
                .map_or_else(|| "someone".to_owned(), |by| crate::builds::abort::who(&by));
            break format!("{} by {by}", super::ABORTED);
        }
        let now = now_ms();
        let clients = logged_in(&state, id);
        let mut dirty = false;
        {
            let mut record = held.record();
            if clients > 0 {
                if !record.ever_connected {
                    record.ever_connected = true;
                    dirty = true;
                }
                let ahead = ms(AUTO_EXTEND_AHEAD).min(record.duration_ms);
                let floor = (now + ahead).min(record.max_expires_ms);
                if record.expires_ms < floor {
                    record.expires_ms = floor;
                    dirty = true;
                }
            }
        }
        if dirty {
            save(&state, &held, None).await;
        }
        let row = held.row();
        let holding_file = held.hold_until().is_some_and(|until| until > now);
        if clients == 0 && clients_before > 0 && row.resume_on_logout && !holding_file {
            break "the last client logged out (resumeOnLogout)".to_owned();
        }
        clients_before = clients;
        if let Some(connect_by) = row.connect_by_ms
            && !row.ever_connected
            && now >= connect_by
        {
            break format!(
                "nobody connected within {} (connectTimeout)",
                format_duration(Duration::from_millis(
                    (connect_by - row.started_ms).max(0) as u64
                ))
            );
        }
        if now >= next_poll {
            poll_hold_file(&state, &held).await;
            next_poll = now_ms() + ms(HOLD_POLL);
        }
        let expiry = held.effective_expiry();
        if now >= expiry {
            break format!("it expired at {}", utc(expiry));
        }
        // While a client is connected the end moves ahead on its own, up to the maximum:
        // only an end that will not move is worth a warning.
        let end_is_fixed = clients == 0 || expiry >= row.max_expires_ms;
        for (warning, done) in WARNINGS.iter().zip(warned.iter_mut()) {
            let left = expiry - now;
            if left > ms(*warning) || !end_is_fixed {
                *done = false;
            } else if !*done {
                // Done once someone saw it: a session that logs in later in the window
                // still gets it.
                *done = warn_sessions(&state, &held, expiry, now).await;
            }
        }
        if now >= next_print {
            build.note(how_to_connect(&state, &held, now).await);
            next_print = now + ms(REPRINT);
        }

        let mut wake = expiry.min(next_print).min(next_poll);
        if let Some(connect_by) = row.connect_by_ms.filter(|_| !row.ever_connected) {
            wake = wake.min(connect_by);
        }
        for warning in WARNINGS {
            let at = expiry - ms(warning);
            if at > now {
                wake = wake.min(at);
            }
        }
        let sleep = Duration::from_millis((wake - now_ms()).clamp(10, ms(HOLD_POLL)) as u64);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = changes.changed() => {}
            () = held.changed.notified() => {}
            () = abort.cancelled() => {}
            () = state.shutdown.cancelled() => return,
        }
    };
    // From here on no new connection joins it (`Held::ending`).
    held.end(how.clone());
    save(&state, &held, Some(&how)).await;
    build.note(format!("Breakpoint ended: {how}.\n"));
    if held.resumed() {
        // Resumed, perhaps from a session (`breakpoint resume`): its sessions get a moment
        // to end by themselves, so that command returns its answer and exit status.
        let mut changes = state.ssh.subscribe();
        let all_gone = async {
            while !state.ssh.of_build(id).is_empty() {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(RESUME_GRACE, all_gone).await;
    }
    state.ssh.close_build(id);
    state.breakpoints.remove(&held);
    held.ended_as(how.clone());
    tracing::info!(job = ?build.row.job, number = build.row.number, how = ?how, "breakpoint ended");
    state.audit.record(
        &crate::audit::Actor::system(),
        crate::audit::Action::BreakpointEnd,
        &held.target(),
        serde_json::json!({ "how": how }),
    );
}

/// The build's clients: connections the agent's SSH server let in. One still
/// authenticating (or refused) is not a client.
fn logged_in(state: &AppState, build_id: u64) -> usize {
    state
        .ssh
        .of_build(build_id)
        .iter()
        .filter(|c| c.login.is_some())
        .count()
}

/// Looks for `.hold` in the workspace; notes when it appears or goes.
async fn poll_hold_file(state: &AppState, held: &Held) {
    let row = &held.build.row;
    let Some(channel) = state.agents.channel(&row.node).filter(|c| !c.is_closed()) else {
        // The agent is away: what `.hold` said last still holds.
        return;
    };
    let path = format!("workspace/{}/.hold", row.workspace);
    let stat = Request::Stat { path };
    let call = steward_channel::call::call(&channel, &stat);
    let until = match tokio::time::timeout(HOLD_CHECK_TIMEOUT, call).await {
        Ok(Ok(Response::Stat(stat))) => Some(stat.modified_ms + held.row().duration_ms),
        Ok(Ok(_)) => None,
        Ok(Err(_)) | Err(_) => return,
    };
    let before = held.hold_until();
    held.set_hold_until(until);
    match (before, until) {
        (None, Some(until)) => held.build.note(format!(
            "Breakpoint: .hold found in the workspace: held until at least {}.\n",
            utc(until.min(held.row().max_expires_ms))
        )),
        (Some(_), None) => held
            .build
            .note("Breakpoint: .hold was removed from the workspace.\n".to_owned()),
        _ => {}
    }
}

/// Writes a warning into the terminals of the sessions into the build; whether there was
/// a logged-in session to write it to.
async fn warn_sessions(state: &AppState, held: &Held, expiry: i64, now: i64) -> bool {
    let row = &held.build.row;
    let connections: Vec<u64> = state
        .ssh
        .of_build(row.id)
        .iter()
        .filter(|c| c.login.is_some())
        .map(|c| c.id)
        .collect();
    if connections.is_empty() {
        return false;
    }
    let Some(channel) = state.agents.channel(&row.node).filter(|c| !c.is_closed()) else {
        return false;
    };
    let text = format!(
        "\r\n*** Steward: this breakpoint ends in {} (at {}). Run `breakpoint extend` to keep it. ***\r\n",
        from_now(expiry - now),
        utc(expiry)
    );
    let notice = Request::SshNotice { connections, text };
    let call = steward_channel::call::call(&channel, &notice);
    match tokio::time::timeout(HOLD_CHECK_TIMEOUT, call).await {
        Ok(Ok(Response::Done)) => true,
        // No session to write to yet (logged in, not started): tried again.
        Ok(Ok(_)) => false,
        Ok(Err(e)) => {
            tracing::debug!(error = ?e.to_string(), "cannot warn the breakpoint's sessions");
            false
        }
        Err(_) => false,
    }
}
