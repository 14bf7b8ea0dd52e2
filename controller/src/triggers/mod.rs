//! What starts builds besides people: Jenkins' triggers.
//!
//! - [`timer`]: `TimerTrigger` and `SCMTrigger` schedules, in Jenkins' cron syntax, checked
//!   once a minute in each spec's time zone. Only the current minute is ever checked, so a
//!   controller that was down fires nothing for the minutes it missed, and the store keeps
//!   the last minute each trigger fired in, so a restart within a minute does not fire it
//!   twice.
//! - [`poll`]: polling a job's Git repositories with `git ls-remote` from the controller,
//!   on its `SCMTrigger` schedule or when a hook says a repository changed
//!   (`/git/notifyCommit`, the GitHub webhook: `http::hooks`). A branch head that no build
//!   of the job has checked out, and that no earlier poll has already built for, starts
//!   one build.
//! - [`downstream`]: when a build ends, the jobs its `BuildTrigger` publisher names and the
//!   jobs whose `ReverseBuildTrigger` watches it are queued, if the result meets the
//!   trigger's threshold.

pub mod downstream;
pub mod poll;
pub mod timer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use steward_protocol::job_xml::JobConfig;
use steward_protocol::job_xml::triggers::Triggers as JobTriggers;

/// The triggers' shared state: one poll of a job at a time, and each job's last polling
/// log.
#[derive(Debug, Default)]
pub struct Triggers {
    polling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    logs: Mutex<HashMap<String, String>>,
    /// Jobs with a poll asked for that has not begun yet: more requests for them are
    /// covered by it (hooks are open to anyone, so they may not pile up polls).
    waiting: Mutex<std::collections::HashSet<String>>,
}

impl Triggers {
    /// The lock a poll of `job` holds: a timer and a hook polling at once would otherwise
    /// both find the same new commit and start two builds.
    fn poll_lock(&self, job: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut polling = self.polling.lock().unwrap_or_else(|e| e.into_inner());
        polling.entry(job.to_owned()).or_default().clone()
    }

    /// Marks a poll of `job` as asked for; false when one is already waiting to begin,
    /// which will see whatever this request was about.
    pub fn ask_poll(&self, job: &str) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.insert(job.to_owned())
    }

    /// A poll of `job` begins: later requests need a poll of their own.
    fn poll_begins(&self, job: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.remove(job);
    }

    /// The log of `job`'s last poll (`/job/NAME/scmPollLog/pollingLog`), if it was polled
    /// since the controller started.
    pub fn poll_log(&self, job: &str) -> Option<String> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.get(job).cloned()
    }

    fn set_poll_log(&self, job: &str, log: String) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.insert(job.to_owned(), log);
    }
}

/// The triggers of a job as stored (a stored job's triggers that no longer read are none).
pub fn of_job(config: &JobConfig, name: &str) -> JobTriggers {
    config.triggers(name).unwrap_or_default()
}
