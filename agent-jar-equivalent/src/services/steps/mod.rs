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
//! kills: every request reads the files, which is what makes a restarted agent see the
//! same steps as the one that started them.

pub mod dir;
pub mod kill;
pub mod start;
pub mod tail;

use std::future::Future;
use std::sync::Mutex;

use steward_protocol::services::{MAX_LIST_ENTRIES, Response};
use steward_protocol::steps::{StepState, StepStatus, check_step_id};
use tokio::task::JoinSet;

use super::Context;
use super::files::failed;
use dir::{StepDir, steps_root};

/// The tasks a step request leaves running after it has answered (reaping a wrapper, a
/// kill's escalation). They belong to the agent rather than to a connection, so a dropped
/// connection does not cut them short; they are aborted when the agent's services end.
#[derive(Debug, Default)]
pub struct StepTasks {
    tasks: Mutex<JoinSet<()>>,
}

impl StepTasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the finished ones, so the set holds only what runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
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
