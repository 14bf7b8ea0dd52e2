//! Chained jobs: when a build ends, the jobs its `hudson.tasks.BuildTrigger` publisher
//! names, and the jobs whose `jenkins.triggers.ReverseBuildTrigger` watches its job, are
//! queued with an upstream cause, if the result is at least the trigger's threshold.

use crate::state::AppState;
use crate::store::builds::{BuildResult, CauseKind, upstream_user};

/// Queues what a build of `job` ending with `result` triggers.
pub async fn build_ended(state: &AppState, job: &str, number: u64, result: BuildResult) {
    let Ok(jobs) = crate::jobs::list(state).await else {
        return;
    };
    let result = result.as_str();
    let mut targets: Vec<String> = Vec::new();
    if let Some(record) = jobs.iter().find(|j| j.name == job)
        && let Ok(Some(linked)) = record.config.build_trigger()
        && linked.threshold.met_by(result)
    {
        targets.extend(
            linked
                .jobs
                .iter()
                .map(|j| j.trim_start_matches('/').to_owned()),
        );
    }
    for other in &jobs {
        let triggers = super::of_job(&other.config, &other.name);
        if let Some(upstream) = triggers.upstream
            && upstream.jobs.iter().any(|j| same_job(j, job))
            && upstream.threshold.met_by(result)
            && !targets.iter().any(|t| same_job(t, &other.name))
        {
            targets.push(other.name.clone());
        }
    }
    let by = crate::audit::Actor::new(&upstream_user(job, number), None);
    for target in targets {
        match crate::builds::enqueue(state, &target, &[], CauseKind::Upstream, &by).await {
            Ok(queued) => {
                tracing::info!(upstream = ?job, number, job = ?target, queue_id = queued.id, "downstream build queued")
            }
            Err(e) => {
                tracing::warn!(upstream = ?job, number, job = ?target, error = ?e.to_string(), "cannot queue a downstream build")
            }
        }
    }
}

/// Job names as triggers write them: Jenkins resolves them relative to the job, which for
/// top-level jobs is the name itself (a leading `/` is absolute).
fn same_job(written: &str, name: &str) -> bool {
    written.trim_start_matches('/') == name
}
