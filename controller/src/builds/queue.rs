//! The build queue: queueing a build (once per job and parameters while it waits),
//! cancelling it, and the views users get of waiting items (with Jenkins' wait reason and
//! kind) and of items that left recently ([`super::left`]). The scheduler takes items from
//! here; the queue is persisted in `store::builds`.

use serde_json::json;
use steward_protocol::job_xml::JobConfig;
use steward_protocol::job_xml::breakpoint::BreakpointWhen;
use tokio::sync::watch;

use super::left::LeftItem;
use super::{BuildError, Builds, MAX_QUEUE_LEN, now_ms};
use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, CauseKind, QueuedRow};

/// What became of a queued item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemState {
    Waiting,
    Started { number: u64 },
    Cancelled,
}

/// How a waiting item waits, as Jenkins classifies queue items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// For an executor that an online node has (Jenkins' buildable item).
    Buildable,
    /// For an executor no online node can offer: buildable, and what Jenkins calls stuck.
    Stuck,
    /// For something else: another build of the job, the job being enabled (Jenkins'
    /// blocked item).
    Blocked,
}

/// A queued build as users see it.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub row: QueuedRow,
    /// Why it is still waiting, in Jenkins' words.
    pub why: String,
    pub kind: WaitKind,
}

/// A queue item, waiting or recently left.
#[derive(Debug, Clone)]
pub enum ItemView {
    Waiting(QueueView),
    Left(LeftItem),
}

pub(super) struct QueueItem {
    pub(super) row: QueuedRow,
    pub(super) why: String,
    pub(super) kind: WaitKind,
    pub(super) state: watch::Sender<ItemState>,
}

impl QueueItem {
    pub(super) fn new(row: QueuedRow) -> QueueItem {
        QueueItem {
            row,
            why: "Waiting for the scheduler".into(),
            kind: WaitKind::Buildable,
            state: watch::Sender::new(ItemState::Waiting),
        }
    }

    fn view(&self) -> QueueView {
        QueueView {
            row: self.row.clone(),
            why: self.why.clone(),
            kind: self.kind,
        }
    }
}

impl Builds {
    /// The queue, oldest first, with each item's wait reason.
    pub fn queue(&self) -> Vec<QueueView> {
        self.lock().queue.iter().map(QueueItem::view).collect()
    }

    /// `job`'s waiting items, oldest first.
    pub fn queue_of(&self, job: &str) -> Vec<QueueView> {
        self.lock()
            .queue
            .iter()
            .filter(|item| item.row.job == job)
            .map(QueueItem::view)
            .collect()
    }

    /// Queue item `id`: waiting, or what became of it if it left the queue recently
    /// ([`left::LEFT_ITEM_TTL`]).
    pub fn queue_item(&self, id: u64) -> Option<ItemView> {
        let inner = self.lock();
        if let Some(item) = inner.queue.iter().find(|i| i.row.id == id) {
            return Some(ItemView::Waiting(item.view()));
        }
        inner
            .left
            .get(id, std::time::Instant::now())
            .cloned()
            .map(ItemView::Left)
    }
}

/// A build waiting to start, as the `build` command follows it.
pub struct Queued {
    pub id: u64,
    pub state: watch::Receiver<ItemState>,
}

impl Queued {
    /// Waits until the item starts (its build number) or is cancelled (`None`).
    pub async fn started(&mut self) -> Option<u64> {
        let state = self
            .state
            .wait_for(|s| *s != ItemState::Waiting)
            .await
            .ok()?
            .clone();
        match state {
            ItemState::Started { number } => Some(number),
            _ => None,
        }
    }
}

/// Checks that `config` can be built with `given` parameters; the parameters the build
/// gets (every one of the job's, defaults filled in).
pub fn check_buildable(
    job: &str,
    config: &JobConfig,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, BuildError> {
    if config.disabled {
        return Err(BuildError::Disabled(job.to_owned()));
    }
    if config.parameters.is_empty() && !given.is_empty() {
        return Err(BuildError::NotParameterized {
            job: job.to_owned(),
        });
    }
    Ok(config.resolve_parameters(given)?)
}

/// Queues a build of `job` for `by`, asked for through `cause`. As in Jenkins, a build of
/// the same job with the same parameters that is still waiting is not queued twice: its
/// item is returned.
pub async fn enqueue(
    state: &AppState,
    job: &str,
    given: &[(String, String)],
    cause: CauseKind,
    by: &Actor,
) -> Result<Queued, BuildError> {
    enqueue_with_breakpoint(state, job, given, cause, by, None).await
}

/// [`enqueue`], with the breakpoint `build -breakpoint` asks for (stored with the item, so
/// the build finds it whenever its steps end).
pub async fn enqueue_with_breakpoint(
    state: &AppState,
    job: &str,
    given: &[(String, String)],
    cause: CauseKind,
    by: &Actor,
    breakpoint: Option<BreakpointWhen>,
) -> Result<Queued, BuildError> {
    let record = crate::jobs::get(state, job).await?;
    // The stored name from here on: `job` may be another spelling of it.
    let job = record.name.as_str();
    let params = check_buildable(job, &record.config, given)?;
    // The parameters' names only: a value may be a password.
    let names: Vec<String> = params.iter().map(|(name, _)| name.clone()).collect();
    // Once the store may have the item, the memory must have it too: the rest runs as a
    // task of its own, which a client leaving (dropping this future) does not cut short.
    let (for_task, job, by) = (state.clone(), job.to_owned(), by.clone());
    tokio::spawn(async move {
        let queued = add_to_queue(
            &for_task,
            job.clone(),
            params,
            cause,
            by.user.clone(),
            breakpoint,
        )
        .await?;
        for_task.audit.record(
            &by,
            Action::BuildQueue,
            &job,
            json!({"cause": cause.as_str(), "queueId": queued.id, "parameters": names}),
        );
        Ok(queued)
    })
    .await
    .map_err(|e| BuildError::Store(StoreError::Task(e.to_string())))?
}

/// Queues `job` with `params` unless an identical item waits.
async fn add_to_queue(
    state: &AppState,
    job: String,
    params: Vec<(String, String)>,
    cause: CauseKind,
    user: String,
    breakpoint: Option<BreakpointWhen>,
) -> Result<Queued, BuildError> {
    let builds = &state.builds;
    // The lookup and the insertion below are one step for other enqueuers: the store call
    // between them would otherwise let an identical request queue a second item.
    let _enqueueing = builds.enqueueing.lock().await;
    let existing = {
        let inner = builds.lock();
        if let Some(item) = inner
            .queue
            .iter()
            .find(|i| i.row.job == job && i.row.params == params)
        {
            Some(Queued {
                id: item.row.id,
                state: item.state.subscribe(),
            })
        } else if inner.queue.len() >= MAX_QUEUE_LEN {
            return Err(BuildError::QueueFull);
        } else {
            None
        }
    };
    if let Some(queued) = existing {
        if let Some(when) = breakpoint {
            let id = queued.id;
            state
                .store
                .call(move |c| crate::store::breakpoints::request(c, id, when.as_str()))
                .await?;
        }
        return Ok(queued);
    }
    let queued_at_ms = now_ms();
    let (key, for_store, by) = (job.clone(), params.clone(), user.clone());
    let id = state
        .store
        .call(move |c| {
            let id = records::enqueue(c, &key, &for_store, cause, &by, queued_at_ms)?;
            if let Some(when) = breakpoint {
                crate::store::breakpoints::request(c, id, when.as_str())?;
            }
            Ok(id)
        })
        .await?;
    let item = QueueItem::new(QueuedRow {
        id,
        job,
        params,
        cause,
        cause_user: user,
        queued_at_ms,
    });
    let rx = item.state.subscribe();
    builds.lock().queue.push(item);
    builds.wake.notify_one();
    Ok(Queued { id, state: rx })
}

/// Cancels every waiting build of `job`.
pub async fn cancel_queued_of(state: &AppState, job: &str) -> Result<(), StoreError> {
    let queued: Vec<u64> = state
        .builds
        .queue()
        .into_iter()
        .filter(|q| q.row.job == job)
        .map(|q| q.row.id)
        .collect();
    for id in queued {
        cancel_queued(state, id).await?;
    }
    Ok(())
}

/// [`cancel_queued`] on behalf of `by` (`cancel-queue`, `clear-queue`, `/queue/cancelItem`),
/// recorded in the audit log when an item was taken out.
pub async fn cancel_queued_by(
    state: &AppState,
    id: u64,
    by: &crate::audit::Actor,
) -> Result<bool, StoreError> {
    let job = state
        .builds
        .queue()
        .into_iter()
        .find(|q| q.row.id == id)
        .map(|q| q.row.job.clone());
    let cancelled = cancel_queued(state, id).await?;
    if cancelled {
        state.audit.record(
            by,
            crate::audit::Action::QueueCancel,
            job.as_deref().unwrap_or_default(),
            serde_json::json!({ "id": id }),
        );
    }
    Ok(cancelled)
}

/// Removes a waiting item from the queue; `false` when no such item waits.
pub async fn cancel_queued(state: &AppState, id: u64) -> Result<bool, StoreError> {
    // The store decides: the scheduler may be starting this very item.
    if !state.store.call(move |c| records::dequeue(c, id)).await? {
        return Ok(false);
    }
    {
        let mut inner = state.builds.lock();
        if let Some(at) = inner.queue.iter().position(|i| i.row.id == id) {
            let item = inner.queue.remove(at);
            inner.leave(item, ItemState::Cancelled);
        }
    }
    state.builds.wake.notify_one();
    Ok(true)
}
