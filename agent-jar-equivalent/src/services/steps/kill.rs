//! `KillStep`: SIGTERM to the step's process group now, SIGKILL to what is left of it after
//! the grace period.
//!
//! The wrapper catches SIGTERM and outlives the script, and SIGKILL spares it (it is picked
//! out of a `/proc` scan of the group), so that it still writes `result`: a killed step
//! ends with 143 (TERM) or 137 (KILL), not as lost. The escalation runs as a task of the
//! agent, not of the request: it goes on when the connection drops during the grace.
//!
//! A group is signalled only while it is provably the step's ([`Leader::group_is_ours`]): a
//! process id reused after the step's end is never hit.

use std::time::Duration;

use steward_protocol::services::Response;
use steward_protocol::steps::MAX_STEP_KILL_GRACE_MS;
use tracing::{debug, warn};

use super::super::Context;
use super::dir::{Leader, StepDir, group_members};

/// How often the escalation looks at the group: during the grace, whether anything of it
/// is left (one system call); after, whether SIGKILL has emptied it (a scan of `/proc`).
pub const KILL_POLL: Duration = Duration::from_millis(20);
/// How long after the grace SIGKILL is repeated at members that appear (a process that
/// forked between scan and kill): far longer than any kernel takes to deliver it.
pub const KILL_PERSIST: Duration = Duration::from_secs(10);

/// Serves one `KillStep`: [`Response::Done`] once SIGTERM is sent (or nothing was left to
/// signal), or an error naming the step.
pub async fn kill(context: &Context, id: &str, grace_ms: u64) -> Response {
    if grace_ms > MAX_STEP_KILL_GRACE_MS {
        return Response::Error {
            message: format!(
                "a grace of {grace_ms} ms is over the limit of {MAX_STEP_KILL_GRACE_MS} ms"
            ),
        };
    }
    let signalled = {
        let (context, id) = (context.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || terminate(&context, &id)).await
    };
    match signalled {
        Ok(Ok(Some(leader))) => {
            debug!(step = id, pgid = leader.pgid, "step sent SIGTERM");
            let grace = Duration::from_millis(grace_ms);
            context
                .steps()
                .spawn(escalate(id.to_owned(), leader, grace));
            Response::Done
        }
        Ok(Ok(None)) => Response::Done,
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: format!("cannot kill step {id}: {e}"),
        },
    }
}

/// SIGTERM to the group; the leader when something may be left to escalate against.
fn terminate(context: &Context, id: &str) -> Result<Option<Leader>, String> {
    let step = StepDir::new(context, id)?;
    step.check_exists()?;
    // No leader recorded: the wrapper never ran the script, nothing to kill.
    let Some(leader) = step.leader() else {
        return Ok(None);
    };
    // Checked first, as the wrapper's last act is TERM to its leftovers: once the result
    // is in, any leftover already had its SIGTERM, and may still need the SIGKILL.
    if !leader.group_is_ours() {
        return Ok(None);
    }
    if signal_group(leader.pgid, libc::SIGTERM) {
        Ok(Some(leader))
    } else {
        Ok(None)
    }
}

/// Waits out the grace (or until the group is empty), then SIGKILLs every member but a
/// live wrapper until none is left.
async fn escalate(id: String, leader: Leader, grace: Duration) {
    let started = tokio::time::Instant::now();
    // During the grace a cheap look (is anything of the group left?), not a /proc scan.
    while started.elapsed() < grace {
        let leader = leader.clone();
        let left = tokio::task::spawn_blocking(move || {
            leader.group_is_ours() && signal_group(leader.pgid, 0)
        })
        .await
        .unwrap_or(false);
        if !left {
            return;
        }
        tokio::time::sleep(KILL_POLL).await;
    }
    loop {
        let leader = leader.clone();
        let left = tokio::task::spawn_blocking(move || sweep(&leader))
            .await
            .unwrap_or(0);
        if left == 0 {
            return;
        }
        debug!(step = id, left, "step processes sent SIGKILL");
        if started.elapsed() >= grace + KILL_PERSIST {
            warn!(
                step = id,
                left, "step processes survive SIGKILL; giving up on them"
            );
            return;
        }
        tokio::time::sleep(KILL_POLL).await;
    }
}

/// SIGKILL to each of the step's processes but a live wrapper; how many there were.
fn sweep(leader: &Leader) -> usize {
    if !leader.group_is_ours() {
        return 0;
    }
    let wrapper_alive = leader.is_alive();
    let members: Vec<i32> = group_members(leader.pgid)
        .into_iter()
        .filter(|pid| !(wrapper_alive && *pid == leader.pgid))
        .collect();
    for pid in &members {
        // SAFETY: kill(2) only sends a signal; `pid` is positive, from /proc.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    members.len()
}

/// killpg, refusing the ids that would mean this agent's own group or every process.
fn signal_group(pgid: i32, signal: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: killpg only sends a signal.
    unsafe { libc::killpg(pgid, signal) == 0 }
}
