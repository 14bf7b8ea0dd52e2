//! Builds: the queue, the scheduler that hands queued builds to executors, the runner that
//! drives a build's shell steps on its agent, and the console logs.
//!
//! - The queue is persisted (`store::builds`) and mirrored here with each item's wait
//!   reason; [`scheduler`] calls [`crate::schedule::assign`] whenever something changes.
//! - A running build is a [`RunningBuild`]: the record, the console length and result as a
//!   `watch` (followers wait on it), and an abort token. Its task ([`run`]) runs the job's
//!   shell steps as durable steps on the agent and appends their output to the console file.
//! - The console is `HOME/jobs/JOB/builds/N/log`, append-only, never held whole in memory
//!   ([`console`]).
//!
//! The build's steps live on after a lost connection, on the agent (they are durable steps),
//! and after a controller restart, in the store: [`start`] reattaches every build whose
//! record has no result. A step its build could not kill or remove (the agent was away
//! when the build ended) is killed and removed when the agent connects again ([`orphans`]).

pub mod console;
pub mod orphans;
mod run;
mod scheduler;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steward_protocol::job_xml::{Builder, JobConfig, ParameterError};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, BuildResult, BuildRow, QueuedRow};

/// Default time a build waits for its agent to come back after the connection is lost
/// before it fails; `--build-reconnect-grace` changes it.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);
/// Time between SIGTERM and SIGKILL when a build is aborted.
pub const ABORT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Most builds waiting in the queue; more are refused until some start.
pub const MAX_QUEUE_LEN: usize = 100_000;
/// Most build records `list-builds` and the permalinks look through.
pub const MAX_HISTORY: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("Cannot build {0} because it is disabled.")]
    Disabled(String),
    #[error("{job} cannot be built: Steward does not run its build steps {steps}")]
    UnsupportedSteps { job: String, steps: String },
    #[error("{job} is not parameterized but the -p option was specified.")]
    NotParameterized { job: String },
    #[error("{0}")]
    BadParameter(#[from] ParameterError),
    #[error("The build queue is full ({MAX_QUEUE_LEN} items)")]
    QueueFull,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a queued item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemState {
    Waiting,
    Started { number: u64 },
    Cancelled,
}

/// A queued build as users see it.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub row: QueuedRow,
    /// Why it is still waiting, in Jenkins' words.
    pub why: String,
}

struct QueueItem {
    row: QueuedRow,
    why: String,
    state: watch::Sender<ItemState>,
}

/// A build's console length and, once it has ended, its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub log_len: u64,
    pub result: Option<BuildResult>,
}

/// A build that has started and not ended.
pub struct RunningBuild {
    pub row: BuildRow,
    progress: watch::Sender<Progress>,
    abort: CancellationToken,
    aborted_by: Mutex<Option<String>>,
}

impl RunningBuild {
    /// Follows the console length and the result.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Asks the build to stop: its steps are killed and it ends ABORTED. Only the first
    /// caller is named in the console.
    pub fn abort(&self, by: &str) {
        self.aborted_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| by.to_owned());
        self.abort.cancel();
    }

    fn aborted_by(&self) -> Option<String> {
        self.aborted_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[derive(Default)]
struct Inner {
    queue: Vec<QueueItem>,
    /// By build id.
    running: BTreeMap<u64, Arc<RunningBuild>>,
}

/// The queue and the running builds; one per controller.
pub struct Builds {
    inner: Mutex<Inner>,
    /// Wakes the scheduler: an item was queued or cancelled, an executor was freed.
    wake: Notify,
    /// Held by [`enqueue`] from looking for an identical item until its own is in the
    /// queue, so two identical requests at once queue one item, as in Jenkins.
    enqueueing: tokio::sync::Mutex<()>,
    /// `HOME/jobs`.
    jobs_dir: PathBuf,
    reconnect_grace: Duration,
}

impl Builds {
    pub fn new(jobs_dir: PathBuf, reconnect_grace: Duration) -> Self {
        Builds {
            inner: Mutex::default(),
            wake: Notify::new(),
            enqueueing: tokio::sync::Mutex::new(()),
            jobs_dir,
            reconnect_grace,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory of a job's builds.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.jobs_dir.join(job)
    }

    /// Where build `number` of `job` keeps its console.
    pub fn console_path(&self, job: &str, number: u64) -> PathBuf {
        console_path(&self.jobs_dir, job, number)
    }

    /// The queue, oldest first, with each item's wait reason.
    pub fn queue(&self) -> Vec<QueueView> {
        self.lock()
            .queue
            .iter()
            .map(|item| QueueView {
                row: item.row.clone(),
                why: item.why.clone(),
            })
            .collect()
    }

    /// A job's running builds, newest first.
    pub fn running_of(&self, job: &str) -> Vec<Arc<RunningBuild>> {
        let mut builds: Vec<_> = self
            .lock()
            .running
            .values()
            .filter(|b| b.row.job == job)
            .cloned()
            .collect();
        builds.sort_by_key(|b| std::cmp::Reverse(b.row.number));
        builds
    }

    /// Every running build, in the order they started.
    pub fn running(&self) -> Vec<Arc<RunningBuild>> {
        self.lock().running.values().cloned().collect()
    }

    /// What runs on `node`'s executors: executor number, job and build number, by executor.
    pub fn busy_on(&self, node: &str) -> Vec<(u32, String, u64)> {
        let mut busy: Vec<_> = self
            .lock()
            .running
            .values()
            .filter(|b| b.row.node == node)
            .map(|b| (b.row.executor, b.row.job.clone(), b.row.number))
            .collect();
        busy.sort();
        busy
    }

    pub fn running_build(&self, job: &str, number: u64) -> Option<Arc<RunningBuild>> {
        self.lock()
            .running
            .values()
            .find(|b| b.row.job == job && b.row.number == number)
            .cloned()
    }

    /// Asks the scheduler to look at the queue again (a job's label or state changed).
    pub fn reschedule(&self) {
        self.wake.notify_one();
    }

    fn finished(&self, id: u64) {
        self.lock().running.remove(&id);
        self.wake.notify_one();
    }
}

fn console_path(jobs_dir: &Path, job: &str, number: u64) -> PathBuf {
    jobs_dir
        .join(job)
        .join("builds")
        .join(number.to_string())
        .join("log")
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
    let unsupported = config.unsupported_builders();
    if !unsupported.is_empty() {
        return Err(BuildError::UnsupportedSteps {
            job: job.to_owned(),
            steps: unsupported.join(", "),
        });
    }
    if config.parameters.is_empty() && !given.is_empty() {
        return Err(BuildError::NotParameterized {
            job: job.to_owned(),
        });
    }
    Ok(config.resolve_parameters(given)?)
}

/// Queues a build of `job` for `user`. As in Jenkins, a build of the same job with the same
/// parameters that is still waiting is not queued twice: its item is returned.
pub async fn enqueue(
    state: &AppState,
    job: &str,
    given: &[(String, String)],
    user: &str,
) -> Result<Queued, BuildError> {
    let record = crate::jobs::get(state, job).await?;
    let params = check_buildable(job, &record.config, given)?;
    // Once the store may have the item, the memory must have it too: the rest runs as a
    // task of its own, which a client leaving (dropping this future) does not cut short.
    let (for_task, job, user) = (state.clone(), job.to_owned(), user.to_owned());
    tokio::spawn(async move { add_to_queue(&for_task, job, params, user).await })
        .await
        .map_err(|e| BuildError::Store(StoreError::Task(e.to_string())))?
}

/// Queues `job` with `params` unless an identical item waits.
async fn add_to_queue(
    state: &AppState,
    job: String,
    params: Vec<(String, String)>,
    user: String,
) -> Result<Queued, BuildError> {
    let builds = &state.builds;
    // The lookup and the insertion below are one step for other enqueuers: the store call
    // between them would otherwise let an identical request queue a second item.
    let _enqueueing = builds.enqueueing.lock().await;
    {
        let inner = builds.lock();
        if let Some(item) = inner
            .queue
            .iter()
            .find(|i| i.row.job == job && i.row.params == params)
        {
            return Ok(Queued {
                id: item.row.id,
                state: item.state.subscribe(),
            });
        }
        if inner.queue.len() >= MAX_QUEUE_LEN {
            return Err(BuildError::QueueFull);
        }
    }
    let queued_at_ms = now_ms();
    let (key, for_store, cause) = (job.clone(), params.clone(), user.clone());
    let id = state
        .store
        .call(move |c| records::enqueue(c, &key, &for_store, &cause, queued_at_ms))
        .await?;
    let (tx, rx) = watch::channel(ItemState::Waiting);
    builds.lock().queue.push(QueueItem {
        row: QueuedRow {
            id,
            job,
            params,
            cause_user: user,
            queued_at_ms,
        },
        why: "Waiting for the scheduler".into(),
        state: tx,
    });
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

/// Removes a waiting item from the queue; `false` when no such item waits.
pub async fn cancel_queued(state: &AppState, id: u64) -> Result<bool, StoreError> {
    // The store decides: the scheduler may be starting this very item.
    if !state.store.call(move |c| records::dequeue(c, id)).await? {
        return Ok(false);
    }
    let item = {
        let mut inner = state.builds.lock();
        let at = inner.queue.iter().position(|i| i.row.id == id);
        at.map(|at| inner.queue.remove(at))
    };
    if let Some(item) = item {
        item.state.send_replace(ItemState::Cancelled);
    }
    state.builds.wake.notify_one();
    Ok(true)
}

/// A job's builds, newest first: the running ones and the records.
pub async fn history(state: &AppState, job: &str, limit: u32) -> Result<Vec<BuildRow>, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::of_job(c, &key, limit))
        .await
}

pub async fn get(state: &AppState, job: &str, number: u64) -> Result<Option<BuildRow>, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::get(c, &key, number))
        .await
}

/// Before a job is deleted: its queued items are cancelled and its running builds aborted
/// and waited for (at most `wait`), then its records and console files are removed.
pub async fn forget_job(
    state: &AppState,
    job: &str,
    by: &str,
    wait: Duration,
) -> Result<(), StoreError> {
    cancel_queued_of(state, job).await?;
    let running = state.builds.running_of(job);
    for build in &running {
        build.abort(by);
    }
    let _ = tokio::time::timeout(wait, async {
        for build in &running {
            let mut progress = build.progress();
            let _ = progress.wait_for(|p| p.result.is_some()).await;
        }
    })
    .await;
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::delete_job(c, &key))
        .await?;
    let dir = state.builds.job_dir(job);
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    Ok(())
}

/// Loads the queue, reattaches the builds the store says are running, and starts the
/// scheduler. Called once, when the controller starts.
pub async fn start(state: &AppState) -> Result<(), StoreError> {
    let (queued, running) = state
        .store
        .call(|c| Ok((records::queued(c)?, records::running(c)?)))
        .await?;
    {
        let mut inner = state.builds.lock();
        for row in queued {
            let (tx, _) = watch::channel(ItemState::Waiting);
            inner.queue.push(QueueItem {
                row,
                why: "Waiting for the scheduler".into(),
                state: tx,
            });
        }
    }
    for row in running {
        let path = state.builds.console_path(&row.job, row.number);
        if let Some(len) = resume_point(&row)
            && let Err(e) = cut_console(&path, len)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot cut a console back");
        }
        let build = register(state, row);
        state.tasks.spawn(run::resume(state.clone(), build));
    }
    state.tasks.spawn(scheduler::run(state.clone()));
    Ok(())
}

/// Where the console of a build that was running when the controller stopped must be cut
/// back to, so its runner can write what follows again: nothing of a build whose first step
/// was not recorded, up to the recorded end of a step whose end was recorded, and nothing
/// to cut while a step runs (its output is the step's own log).
pub fn resume_point(row: &BuildRow) -> Option<u64> {
    match (row.step_log_start, &row.step_end) {
        (None, _) => Some(0),
        (Some(_), Some(end)) => Some(end.log_end),
        (Some(_), None) => None,
    }
}

fn cut_console(path: &Path, len: u64) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) if file.metadata()?.len() > len => file.set_len(len),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `row` a running build, holding its executor.
fn register(state: &AppState, row: BuildRow) -> Arc<RunningBuild> {
    let aborted_by = row.aborted_by.clone();
    let log_len = std::fs::metadata(state.builds.console_path(&row.job, row.number))
        .map(|m| m.len())
        .unwrap_or(0);
    let build = Arc::new(RunningBuild {
        row,
        progress: watch::Sender::new(Progress {
            log_len,
            result: None,
        }),
        abort: CancellationToken::new(),
        aborted_by: Mutex::default(),
    });
    if let Some(by) = aborted_by {
        build.abort(&by);
    }
    state
        .builds
        .lock()
        .running
        .insert(build.row.id, build.clone());
    build
}

/// The shell scripts of a job, in order (a job with other steps is never started).
fn shell_scripts(config: &JobConfig) -> Vec<&str> {
    config
        .builders
        .iter()
        .filter_map(|b| match b {
            Builder::Shell(shell) => Some(shell.command.as_str()),
            Builder::Other(_) => None,
        })
        .collect()
}

/// `ROOT/job/NAME/`, the name as one URL path segment (Jenkins' `JOB_URL`).
pub fn job_url(root: &url::Url, job: &str) -> String {
    let segment = url::form_urlencoded::byte_serialize(job.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("{root}job/{segment}/")
}

/// `ROOT/job/NAME/N/` (Jenkins' `BUILD_URL`).
pub fn build_url(root: &url::Url, job: &str, number: u64) -> String {
    format!("{}{number}/", job_url(root, job))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_and_build_urls_escape_the_name() {
        let root = url::Url::parse("https://ci.example.com/jenkins/").unwrap();
        assert_eq!(
            job_url(&root, "unit tests+ü"),
            "https://ci.example.com/jenkins/job/unit%20tests%2B%C3%BC/"
        );
        assert_eq!(
            build_url(&root, "a", 7),
            "https://ci.example.com/jenkins/job/a/7/"
        );
    }
}
