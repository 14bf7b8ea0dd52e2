//! Builds: the queue, the scheduler that hands queued builds to executors, the runner that
//! drives a build's shell steps on its agent, and the console logs.
//!
//! - The queue ([`queue`]) is persisted (`store::builds`) and mirrored here with each item's
//!   wait reason; [`scheduler`] calls [`crate::schedule::assign`] whenever something changes.
//! - A running build is a [`RunningBuild`]: the record, the console length and result as a
//!   `watch` (followers wait on it), and an abort token. Its task ([`run`]) runs the job's
//!   shell steps as durable steps on the agent and appends their output to the console file.
//! - The console is `HOME/jobs/JOB/builds/N/log`, append-only, never held whole in memory
//!   ([`console`]).
//! - An item that leaves the queue (started or cancelled) is remembered for a while
//!   ([`left`]), so clients can still learn which build their item became.
//! - [`quiet`]: quieting down, when no build starts (before a restart).
//! - [`tails`]: console endings a full disk kept from being written, written when it can.
//! - [`environment`]: a build's workspace and the variables its steps (and SSH sessions into
//!   it) get.
//! - [`abort`]: who or what aborted a build and the console line saying so; the builds of
//!   a node being deleted, aborted.
//! - [`history`] reads builds back: a job's list, one build by number or permalink, the
//!   estimated duration. [`delete`] deletes ended builds, by number or by the job's build
//!   discarder when one of its builds ends.
//!
//! The build's steps live on after a lost connection, on the agent (they are durable steps),
//! and after a controller restart, in the store: [`start`] reattaches every build whose
//! record has no result. A step its build could not kill or remove (the agent was away
//! when the build ended) is killed and removed when the agent connects again ([`orphans`]).

pub mod abort;
pub mod bindings;
mod checkout;
pub mod console;
pub mod delete;
pub mod describe;
pub mod environment;
pub mod history;
pub mod left;
pub mod orphans;
mod plan;
pub mod publish;
mod queue;
pub mod quiet;
mod run;
mod scheduler;
mod tails;
pub mod timestamps;

pub use history::{FindError, estimated_duration, find, get, history};
pub use queue::{
    ItemState, ItemView, QueueView, Queued, WaitKind, cancel_queued, cancel_queued_by,
    cancel_queued_of, check_buildable, enqueue, enqueue_with_breakpoint,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steward_protocol::job_xml::ParameterError;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::audit::Actor;
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, BuildResult, BuildRow};
use left::LeftItems;
use queue::QueueItem;

/// Default time a build waits for its agent to come back after the connection is lost
/// before it fails; `--build-reconnect-grace` changes it.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);
/// Time between SIGTERM and SIGKILL when a build is aborted.
pub const ABORT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Most builds waiting in the queue; more are refused until some start.
pub const MAX_QUEUE_LEN: usize = 100_000;
/// Most build records `list-builds` and the permalinks look through.
pub const MAX_HISTORY: u32 = 10_000;
/// Most console notes waiting for the runner to write them ([`RunningBuild::note`]); more
/// are dropped. Each comes from a client waiting on the build, and a few say it all.
pub const MAX_PENDING_NOTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("Cannot build {0} because it is disabled.")]
    Disabled(String),
    #[error("{job} is not parameterized but the -p option was specified.")]
    NotParameterized { job: String },
    #[error("{0}")]
    BadParameter(#[from] ParameterError),
    #[error("The build queue is full ({MAX_QUEUE_LEN} items)")]
    QueueFull,
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Cancelled once the build's end is recorded and its steps are removed from the agent.
    ended: CancellationToken,
    /// Lines for the console from outside the runner, waiting to be written.
    notes: Mutex<Vec<String>>,
    noted: Notify,
}

impl RunningBuild {
    /// Asks the runner to write `line` (ending in a newline) into the console as soon as it
    /// can without breaking a step's output: at once while a step runs, else before its
    /// next line. At most [`MAX_PENDING_NOTES`] wait; more are dropped.
    pub fn note(&self, line: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if notes.len() < MAX_PENDING_NOTES {
            notes.push(line);
        }
        drop(notes);
        self.noted.notify_one();
    }

    /// The notes waiting to be written, taken.
    fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

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

    /// Cancelled once the build is asked to stop.
    pub fn abort_requested(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// Who asked the build to stop, once someone did.
    pub fn aborted_by(&self) -> Option<String> {
        self.aborted_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Cancelled once the build has ended: its result recorded and told, its steps removed
    /// from the agent (when it is connected).
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }
}

#[derive(Default)]
struct Inner {
    queue: Vec<QueueItem>,
    /// By build id.
    running: BTreeMap<u64, Arc<RunningBuild>>,
    left: LeftItems,
}

impl Inner {
    /// Tells an item's waiters what became of it, and remembers it for a while.
    fn leave(&mut self, item: QueueItem, outcome: ItemState) {
        item.state.send_replace(outcome.clone());
        self.left.push(item.row, outcome, std::time::Instant::now());
    }
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
    /// Set while quieting down ([`quiet`]): no build starts.
    quiet: watch::Sender<Option<quiet::QuietDown>>,
    /// Held by the scheduler through each pass ([`quiet`] waits for a pass under way).
    scheduling: tokio::sync::Mutex<()>,
}

impl Builds {
    pub fn new(jobs_dir: PathBuf, reconnect_grace: Duration) -> Self {
        Builds {
            inner: Mutex::default(),
            wake: Notify::new(),
            enqueueing: tokio::sync::Mutex::new(()),
            jobs_dir,
            reconnect_grace,
            quiet: watch::Sender::new(None),
            scheduling: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory of a job's builds.
    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.jobs_dir.join(job)
    }

    /// Build `number` of `job`'s directory: its console, and nothing else yet.
    pub fn build_dir(&self, job: &str, number: u64) -> PathBuf {
        build_dir(&self.jobs_dir, job, number)
    }

    /// Where build `number` of `job` keeps its console.
    pub fn console_path(&self, job: &str, number: u64) -> PathBuf {
        self.build_dir(job, number).join("log")
    }

    /// How much of build `number`'s console there is to read now: what its runner has
    /// written while it runs, the file's length once it has ended.
    pub async fn console_len(&self, job: &str, number: u64) -> u64 {
        if let Some(build) = self.running_build(job, number) {
            return build.progress().borrow().log_len;
        }
        tokio::fs::metadata(self.console_path(job, number))
            .await
            .map(|m| m.len())
            .unwrap_or(0)
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

    /// The builds running on `node`.
    pub fn running_on(&self, node: &str) -> Vec<Arc<RunningBuild>> {
        self.lock()
            .running
            .values()
            .filter(|b| b.row.node == node)
            .cloned()
            .collect()
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

fn build_dir(jobs_dir: &Path, job: &str, number: u64) -> PathBuf {
    jobs_dir.join(job).join("builds").join(number.to_string())
}

/// Before a job is deleted: its queued items are cancelled and its running builds aborted
/// and waited for (at most `wait`), then its records and console files are removed.
pub async fn forget_job(
    state: &AppState,
    job: &str,
    by: &Actor,
    wait: Duration,
) -> Result<(), StoreError> {
    cancel_queued_of(state, job).await?;
    let running = state.builds.running_of(job);
    for build in &running {
        abort::asked_by(state, build, by);
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
            inner.queue.push(QueueItem::new(row));
        }
    }
    for row in running {
        let path = state.builds.console_path(&row.job, row.number);
        if let Some(len) = resume_point(&row)
            && let Err(e) = cut_console(&path, len)
        {
            tracing::error!(path = ?path, error = ?e.to_string(), "cannot cut a console back");
        }
        let build = register(state, row);
        state.tasks.spawn(run::resume(state.clone(), build));
    }
    tails::resume(state).await?;
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
        ended: CancellationToken::new(),
        notes: Mutex::default(),
        noted: Notify::new(),
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
