//! Durable build steps, Jenkins' durable tasks: a shell script the agent starts detached
//! from itself, whose state lives in files under `WORKDIR/steps/ID/` (see [`dir`]), so it
//! survives the connection dropping and the agent being killed and started again.
//!
//! - [`start`]: `StartStep` writes the directory and starts the wrapper in its own session.
//! - [`tail`]: `TailStep` streams the log from an offset, then how the step ended.
//! - [`kill`]: `KillStep`, SIGTERM then SIGKILL, sparing the wrapper so it records the end.
//! - here: `ListSteps` and `RemoveStep`, and the agent-wide tasks steps leave behind.
//!
//! Nothing about a step is held in memory beyond the tasks that reap wrappers and finish
//! kills (and, while a wrapper this agent started runs, a token its reaper cancels, which
//! only makes a tail look sooner): every request reads the files, which is what makes a
//! restarted agent see the same steps as the one that started them.

pub mod dir;
pub mod kill;
pub mod start;
pub mod tail;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use steward_protocol::services::{MAX_LIST_ENTRIES, Response};
use steward_protocol::steps::{StepState, StepStatus, check_step_id};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::files::failed;
use dir::{StepDir, steps_root};

/// The tasks a step request leaves running after it has answered (reaping a wrapper, a
/// kill's escalation). They belong to the agent rather than to a connection, so a dropped
/// connection does not cut them short; they are aborted when the agent's services end.
#[derive(Debug, Default)]
pub struct StepTasks {
    tasks: Mutex<JoinSet<()>>,
    /// The wrappers this agent process started and has not yet reaped, by step id; each
    /// token is cancelled when its wrapper exits.
    wrappers: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl StepTasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the finished ones, so the set holds only what runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Reaps step `id`'s wrapper, a child of this agent, and cancels its exit token then.
    pub fn reap(&self, id: &str, mut child: tokio::process::Child) {
        let wrappers = self.wrappers.clone();
        lock(&wrappers).insert(id.to_owned(), CancellationToken::new());
        let id = id.to_owned();
        self.spawn(async move {
            let _ = child.wait().await;
            if let Some(exited) = lock(&wrappers).remove(&id) {
                exited.cancel();
            }
        });
    }

    /// A token cancelled when step `id`'s wrapper exits, if this agent process started it
    /// and has not seen it exit: a tail at the end of the log then looks at once instead
    /// of at its next poll. Steps of an earlier agent process are only polled.
    pub fn wrapper_exit(&self, id: &str) -> Option<CancellationToken> {
        lock(&self.wrappers).get(id).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `ListSteps`: every step directory, sorted by id. Names that are not step ids (the temp
/// directories of starts in progress) are skipped.
pub async fn list(context: &Context) -> Response {
    let context = context.clone();
    match tokio::task::spawn_blocking(move || list_steps(&context)).await {
        Ok(Ok(steps)) => Response::Steps(steps),
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: format!("cannot list the steps: {e}"),
        },
    }
}

fn list_steps(context: &Context) -> Result<Vec<StepStatus>, String> {
    let root = steps_root(context);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        // No step was ever started here.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed("list", &root, e)),
    };
    let mut steps = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed("list", &root, e))?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if check_step_id(&id).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if steps.len() == MAX_LIST_ENTRIES {
            return Err(failed(
                "list",
                &root,
                format_args!("more than {MAX_LIST_ENTRIES} steps"),
            ));
        }
        let step = StepDir::new(context, &id)?;
        // The state before the length: a step seen ended has all of its log counted.
        let state = step.state();
        steps.push(StepStatus {
            log_len: step.log_len(),
            state,
            id,
        });
    }
    steps.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(steps)
}

/// `RemoveStep`: deletes an ended step's directory; a running step is refused.
pub async fn remove(context: &Context, id: &str) -> Response {
    let (context, id) = (context.clone(), id.to_owned());
    match tokio::task::spawn_blocking(move || remove_step(&context, &id)).await {
        Ok(Ok(())) => Response::Done,
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: format!("cannot remove the step: {e}"),
        },
    }
}

fn remove_step(context: &Context, id: &str) -> Result<(), String> {
    let step = StepDir::new(context, id)?;
    step.check_exists()?;
    if let StepState::Running { pgid } = step.state() {
        return Err(format!(
            "cannot remove step {id}: it is still running (process group {pgid}); kill it first"
        ));
    }
    std::fs::remove_dir_all(&step.path).map_err(|e| failed("remove", &step.path, e))
}
