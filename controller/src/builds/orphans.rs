//! Steps left on an agent by builds that are no longer running: a build that failed
//! because its agent stayed away past the grace period, or was aborted while it was away,
//! could not kill its step then. When the agent connects again, its build steps are
//! compared with the running builds: the orphans are killed, and removed once ended.

use steward_channel::Channel;
use steward_channel::steps::{self, Tail};
use steward_protocol::steps::{StepEvent, StepState, StepStatus};

use super::ABORT_KILL_GRACE;
use crate::state::AppState;

/// The build id in a step id made by [`super::run::step_id`]; `None` for any other name.
fn build_of(step_id: &str) -> Option<u64> {
    let (build, index) = step_id.strip_prefix("build-")?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(build) || !digits(index) {
        return None;
    }
    index.parse::<u32>().ok()?;
    build.parse().ok()
}

/// Kills and removes the build steps on `node` whose builds are not running. Ends when done
/// or when the channel closes.
pub async fn reconcile(state: &AppState, node: &str, channel: &Channel) {
    let Ok(listed) = steps::list(channel).await else {
        return;
    };
    let running: Vec<u64> = state.builds.running().iter().map(|b| b.row.id).collect();
    let orphans: Vec<StepStatus> = listed
        .into_iter()
        .filter(|s| build_of(&s.id).is_some_and(|id| !running.contains(&id)))
        .collect();
    for step in orphans {
        if let StepState::Running { .. } = step.state {
            tracing::info!(node = ?node, step = %step.id, "killing a step whose build is no longer running");
            if steps::kill(channel, &step.id, ABORT_KILL_GRACE)
                .await
                .is_err()
            {
                continue;
            }
            if !wait_for_end(channel, &step).await {
                continue;
            }
        }
        let _ = steps::remove(channel, &step.id).await;
    }
}

/// Follows the step from its current end until it reports its end; `false` if the tail
/// failed first.
async fn wait_for_end(channel: &Channel, step: &StepStatus) -> bool {
    let Ok(mut tail) = Tail::open(channel, &step.id, step.log_len).await else {
        return false;
    };
    while let Some(event) = tail.next().await {
        match event {
            Ok(StepEvent::Ended(_)) => return true,
            Ok(StepEvent::Log(_)) => {}
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_build_step_ids_name_a_build() {
        assert_eq!(build_of(&super::super::run::step_id(42, 3)), Some(42));
        assert_eq!(build_of("build-7-0"), Some(7));
        for other in [
            "build-7",
            "build-x-1",
            "build-7-y",
            "deploy-1-2",
            "build--1",
        ] {
            assert_eq!(build_of(other), None, "{other}");
        }
    }
}
