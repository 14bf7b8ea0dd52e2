//! The scheduler task: whenever something changes (a build queued or cancelled, an executor
//! freed, a node connected, disconnected, marked offline or reconfigured, a job changed, the
//! controller's disk full or not) it asks [`crate::schedule::assign`] which waiting builds
//! start where, starts them, and records the others' wait reasons.
//!
//! A pass that could not do its work (the store failed: a full disk, say) is tried again
//! after a pause that doubles up to [`RETRY_MAX`], and the builds it could not start say
//! why. While the controller's disk is full nothing starts, and waiting builds say so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use steward_protocol::label::{self, LabelExpr};

use super::{ItemState, WaitKind, now_ms, register, run};
use crate::jobs::JobError;
use crate::schedule::{self, Decision, NodeView, Waiting};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, Start};
use crate::store::jobs::JobRecord;

/// First pause before a failed pass is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between tries of a failing pass.
const RETRY_MAX: Duration = Duration::from_secs(60);

pub(super) async fn run(state: AppState) {
    let mut changes = state.agents.subscribe();
    let mut disk = state.disk.subscribe();
    let mut pause = RETRY_FIRST;
    loop {
        changes.borrow_and_update();
        disk.borrow_and_update();
        let retry = match pass(&state, pause).await {
            Pass::Done => {
                pause = RETRY_FIRST;
                None
            }
            Pass::Failed => {
                let at = tokio::time::Instant::now() + pause;
                pause = (pause * 2).min(RETRY_MAX);
                Some(at)
            }
        };
        tokio::select! {
            _ = state.builds.wake.notified() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            changed = disk.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// How a pass went.
enum Pass {
    Done,
    /// Something failed; the pass is tried again after a pause.
    Failed,
}

/// A job as the scheduler needs it.
struct JobView {
    record: Arc<JobRecord>,
    label: Result<Option<LabelExpr>, String>,
}

/// One pass; `retry_in` is the pause before the next try if this one fails, for the
/// reasons given to the builds it could not start.
async fn pass(state: &AppState, retry_in: Duration) -> Pass {
    // Held for the whole pass: a quiet-down's wait takes it once, so a build this pass
    // starts is registered before that wait looks for running builds.
    let _pass = state.builds.scheduling.lock().await;
    let items: Vec<(u64, String)> = state
        .builds
        .lock()
        .queue
        .iter()
        .map(|i| (i.row.id, i.row.job.clone()))
        .collect();
    if items.is_empty() {
        return Pass::Done;
    }
    let names: BTreeSet<String> = items.iter().map(|(_, job)| job.clone()).collect();
    // From the parsed jobs in memory: the store is not asked, nothing is parsed.
    let mut jobs: BTreeMap<String, JobView> = BTreeMap::new();
    for name in names {
        let record = match crate::jobs::get(state, &name).await {
            Ok(record) => record,
            // Deleted meanwhile: its items go with it.
            Err(JobError::NotFound { .. }) => continue,
            Err(e) => {
                tracing::error!(job = ?name, error = ?e.to_string(), retry_in = ?retry_in, "the scheduler cannot read a job");
                return Pass::Failed;
            }
        };
        let label = label::parse(record.config.assigned_node.as_deref().unwrap_or(""))
            .map_err(|e| format!("Invalid label expression: {e}"));
        jobs.insert(name, JobView { record, label });
    }
    let nodes = match crate::nodes::list(state).await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::error!(error = ?e.to_string(), retry_in = ?retry_in, "the scheduler cannot read the nodes");
            return Pass::Failed;
        }
    };

    let running = state.builds.running();
    let mut busy: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let mut running_build: BTreeMap<&str, u64> = BTreeMap::new();
    for build in &running {
        busy.entry(build.row.node.as_str())
            .or_default()
            .insert(build.row.executor);
        let newest = running_build.entry(build.row.job.as_str()).or_default();
        *newest = (*newest).max(build.row.number);
    }
    let views: Vec<NodeView<'_>> = nodes
        .iter()
        .map(|record| {
            let status = crate::nodes::status(state, record);
            NodeView {
                config: &record.config,
                // Steps run over the channel, which our agent opens after its hello.
                online: status.online
                    && state
                        .agents
                        .channel(&record.config.name)
                        .is_some_and(|c| !c.is_closed()),
                java_agent: record.temporarily_offline.is_none()
                    && status.live.is_some_and(|l| {
                        l.kind == crate::agents::registry::AgentKind::JavaRemoting
                    }),
                busy: busy
                    .get(record.config.name.as_str())
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect();

    // Items that cannot be considered get their reason here; the rest go to `assign`.
    let mut reasons: BTreeMap<u64, (String, WaitKind)> = BTreeMap::new();
    let mut waiting = Vec::new();
    let mut considered = Vec::new();
    let mut vanished = Vec::new();
    for (id, job) in &items {
        let Some(view) = jobs.get(job) else {
            vanished.push(*id);
            continue;
        };
        if view.record.config.disabled {
            reasons.insert(*id, (format!("{job} is disabled"), WaitKind::Blocked));
            continue;
        }
        match &view.label {
            Err(why) => {
                reasons.insert(*id, (why.clone(), WaitKind::Stuck));
            }
            Ok(label) => {
                waiting.push(Waiting {
                    job,
                    label: label.as_ref(),
                    concurrent: view.record.config.concurrent_build,
                    running_build: running_build.get(job.as_str()).copied(),
                });
                considered.push(*id);
            }
        }
    }
    // Quieting down, or no room on the controller's disk: nothing starts, and everything
    // that could waits with its reason.
    let decisions = match state.builds.quieting_down() {
        Some(quiet) => vec![Decision::Wait(quiet.wait_reason()); waiting.len()],
        None if state.disk.is_full() => {
            vec![Decision::Wait(state.disk.wait_reason()); waiting.len()]
        }
        None => schedule::assign(&waiting, &views),
    };
    let mut starts = Vec::new();
    for (id, decision) in considered.iter().zip(decisions) {
        match decision {
            Decision::Start { node, executor } => starts.push((*id, node, executor)),
            Decision::Wait(why) => {
                reasons.insert(*id, (why, WaitKind::Buildable));
            }
            Decision::Stuck(why) => {
                reasons.insert(*id, (why, WaitKind::Stuck));
            }
            Decision::Blocked(why) => {
                reasons.insert(*id, (why, WaitKind::Blocked));
            }
        }
    }
    {
        let mut inner = state.builds.lock();
        for item in inner.queue.iter_mut() {
            if let Some((why, kind)) = reasons.remove(&item.row.id) {
                item.why = why;
                item.kind = kind;
            }
        }
    }
    for id in vanished {
        let _ = super::cancel_queued(state, id).await;
    }
    // The workspaces held on each node: by running builds, then by those started here.
    let mut held: BTreeSet<(String, String)> = running
        .iter()
        .map(|b| (b.row.node.clone(), b.row.workspace.clone()))
        .collect();
    let mut outcome = Pass::Done;
    for (id, node, executor) in starts {
        // Quiet-down set, or the disk found full, during this pass: start nothing more;
        // the next pass gives the rest its reason.
        if state.builds.quieting_down().is_some() || state.disk.is_full() {
            state.builds.reschedule();
            break;
        }
        let job = &items.iter().find(|(i, _)| *i == id).expect("considered").1;
        let xml = jobs[job].record.xml.clone();
        let workspace = workspace_name(job, |name| held.contains(&(node.clone(), name.to_owned())));
        held.insert((node.clone(), workspace.clone()));
        if let Err(e) = start_build(state, id, node, executor, workspace, xml).await {
            tracing::error!(queue_id = id, error = ?e.to_string(), retry_in = ?retry_in, "cannot start a queued build; trying again");
            if e.is_disk_full() {
                state.disk.out_of_space("starting a build", &e);
            }
            let why = format!(
                "Cannot start this build: {e}; trying again in {} s",
                retry_in.as_secs().max(1)
            );
            let mut inner = state.builds.lock();
            if let Some(item) = inner.queue.iter_mut().find(|i| i.row.id == id) {
                item.why = why;
                item.kind = WaitKind::Buildable;
            }
            outcome = Pass::Failed;
        }
    }
    outcome
}

/// The workspace a build of `job` gets on a node: the job's name, or when a running build
/// holds that, `JOB@2`, `JOB@3`… as Jenkins does, so builds of a concurrent job never share
/// a directory.
fn workspace_name(job: &str, in_use: impl Fn(&str) -> bool) -> String {
    if !in_use(job) {
        return job.to_owned();
    }
    (2u32..)
        .map(|n| format!("{job}@{n}"))
        .find(|name| !in_use(name))
        .expect("a node runs finitely many builds")
}

/// Gives queued item `queue_id` its executor: the store records the build with its number,
/// then the item's waiters learn the number and the runner starts. A store failure leaves
/// the item queued, and is returned.
async fn start_build(
    state: &AppState,
    queue_id: u64,
    node: String,
    executor: u32,
    workspace: String,
    xml: String,
) -> Result<(), StoreError> {
    let started_at_ms = now_ms();
    let for_store = node.clone();
    let row = state
        .store
        .call(move |c| {
            records::start(
                c,
                &Start {
                    queue_id,
                    node: &for_store,
                    executor,
                    workspace: &workspace,
                    config_xml: &xml,
                    started_at_ms,
                },
            )
        })
        .await;
    // The item leaves the queue and joins the left items in one step, once its build is
    // registered: whoever looks it up meanwhile finds it waiting, then started, never gone.
    let leave = |outcome: ItemState| {
        let mut inner = state.builds.lock();
        if let Some(at) = inner.queue.iter().position(|i| i.row.id == queue_id) {
            let item = inner.queue.remove(at);
            inner.leave(item, outcome);
        }
    };
    match row? {
        Some(row) => {
            let number = row.number;
            tracing::info!(job = ?row.job, number, node = ?node, executor, "build started");
            state.audit.record(
                &crate::audit::Actor::new(&row.cause_user, None),
                crate::audit::Action::BuildStart,
                &format!("{}#{number}", row.job),
                serde_json::json!({"cause": row.cause.as_str(), "node": node, "queueId": queue_id}),
            );
            let build = register(state, row);
            run::write_header(state, &build).await;
            leave(ItemState::Started { number });
            state.tasks.spawn(run::fresh(state.clone(), build));
        }
        // Cancelled meanwhile.
        None => leave(ItemState::Cancelled),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::workspace_name;

    #[test]
    fn a_build_takes_the_jobs_workspace_when_it_is_free() {
        assert_eq!(workspace_name("app", |_| false), "app");
    }

    #[test]
    fn a_concurrent_build_takes_the_first_free_numbered_workspace() {
        let held = ["app", "app@2", "app@4", "other"];
        assert_eq!(workspace_name("app", |n| held.contains(&n)), "app@3");
        assert_eq!(workspace_name("app@2", |n| held.contains(&n)), "app@2@2");
        assert_eq!(workspace_name("other", |n| held.contains(&n)), "other@2");
    }
}
