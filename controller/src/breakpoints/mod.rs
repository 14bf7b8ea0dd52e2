//! Breakpoints: a build held after its steps (on failure, or always) or by a step running
//! `breakpoint wait`, keeping its executor and workspace while users connect over SSH.
//!
//! - [`Breakpoints`]: the builds held now, by build; one per controller.
//! - [`Held`]: one breakpoint: its expiry, how far it may be extended, and how it ended.
//! - [`hold`]: the task that watches a breakpoint until it ends: expiry, auto-extension
//!   while a client is connected, `.hold` in the workspace, the connect timeout, the last
//!   client logging out, the build aborted; warnings to sessions, console lines.
//! - [`console`]: what the build's console says.
//! - [`relayed`](relayed()): the `breakpoint` command on the agent, relayed as an agent
//!   call, checked against the build's key.
//!
//! A breakpoint is stored as it changes (`store::breakpoints`): a controller restarted
//! during one holds the build on until the same expiry, and one restarted after it does not
//! hold the build again. It never changes the build's result.

pub mod console;
pub mod hold;
mod relayed;

pub use relayed::relayed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use steward_protocol::breakpoint::{BreakpointClient, BreakpointStatus};
use steward_protocol::duration::{format_duration, utc};
use steward_protocol::job_xml::breakpoint::Breakpoint;
use steward_protocol::shown::Shown;
use tokio::sync::watch;

use crate::audit::{Action, Actor};
use crate::builds::{RunningBuild, now_ms};
use crate::state::AppState;
use crate::store::breakpoints::BreakpointRow;

/// What `breakpoint extend` and `extend-breakpoint` add when not told.
pub const DEFAULT_EXTENSION: Duration = Duration::from_secs(30 * 60);
/// While a client is connected the expiry is kept at least this far ahead (or the
/// breakpoint's duration, if shorter): a session is never cut while someone works in it.
pub const AUTO_EXTEND_AHEAD: Duration = Duration::from_secs(5 * 60);

/// The reason of a breakpoint held after the steps of a failed build.
pub const AFTER_FAILURE: &str = "the build failed";
/// How an abort ends a breakpoint: `the build was aborted by bob`.
pub const ABORTED: &str = "the build was aborted";
/// The reason of a breakpoint held after the steps whatever the result (`always`).
pub const AFTER_STEPS: &str = "the build's steps ended (breakpoint: always)";

/// How a breakpoint is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub reason: String,
    pub duration: Duration,
    pub max_duration: Duration,
    pub connect_timeout: Option<Duration>,
    pub resume_on_logout: bool,
}

impl Settings {
    /// The job's settings (or the defaults when it has none) with `reason`.
    pub fn of_job(job: Option<&Breakpoint>, reason: &str) -> Settings {
        let defaults = Breakpoint::default();
        let job = job.unwrap_or(&defaults);
        Settings {
            reason: reason.to_owned(),
            duration: job.duration,
            max_duration: job.max_duration,
            connect_timeout: job.connect_timeout,
            resume_on_logout: job.resume_on_logout,
        }
    }

    /// A fresh breakpoint's record, starting now.
    fn start(&self, build_id: u64, now: i64) -> BreakpointRow {
        let max_expires_ms = now + ms(self.max_duration);
        BreakpointRow {
            build_id,
            reason: self.reason.clone(),
            started_ms: now,
            duration_ms: ms(self.duration),
            expires_ms: (now + ms(self.duration)).min(max_expires_ms),
            max_expires_ms,
            connect_by_ms: self.connect_timeout.map(|t| now + ms(t)),
            resume_on_logout: self.resume_on_logout,
            ever_connected: false,
            ended: None,
            wait_token: None,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// One breakpoint.
pub struct Held {
    pub build: Arc<RunningBuild>,
    record: Mutex<BreakpointRow>,
    hold_until: Mutex<Option<i64>>,
    /// An end asked for (resumed, by whom), for the holding task to carry out.
    end_asked: Mutex<Option<String>>,
    resumed: std::sync::atomic::AtomicBool,
    /// `None` while it holds; how it ended.
    ended: watch::Sender<Option<String>>,
    /// Wakes the holding task: extended, resumed.
    changed: tokio::sync::Notify,
}

impl Held {
    fn record(&self) -> MutexGuard<'_, BreakpointRow> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored form as it is now.
    pub fn row(&self) -> BreakpointRow {
        self.record().clone()
    }

    /// `JOB#N`, as the audit log names it.
    pub fn target(&self) -> String {
        format!("{}#{}", self.build.row.job, self.build.row.number)
    }

    /// Until when `.hold` in the workspace holds it (its mtime + the duration), as last
    /// seen.
    pub fn hold_until(&self) -> Option<i64> {
        *self.hold_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_hold_until(&self, until: Option<i64>) {
        *self.hold_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// When it ends unless extended: its expiry, or `.hold`'s (within the maximum),
    /// whichever is later.
    pub fn effective_expiry(&self) -> i64 {
        let record = self.record();
        match self.hold_until() {
            Some(until) => record.expires_ms.max(until.min(record.max_expires_ms)),
            None => record.expires_ms,
        }
    }

    /// The status `breakpoint status` and `list-breakpoints` show.
    pub fn status(&self, state: &AppState) -> BreakpointStatus {
        let hold_until_ms = self.hold_until();
        let record = self.row();
        let clients = state
            .ssh
            .of_build(self.build.row.id)
            .into_iter()
            .filter(|c| c.login.is_some())
            .map(|c| BreakpointClient {
                user: c.user,
                ssh_user: c.login.as_ref().map(|l| l.ssh_user.clone()),
                key_fingerprint: c.login.as_ref().map(|l| l.key_fingerprint.clone()),
                address: c.address,
                since_ms: c.since_ms,
            })
            .collect();
        BreakpointStatus {
            job: self.build.row.job.clone(),
            number: self.build.row.number,
            node: self.build.row.node.clone(),
            reason: record.reason.clone(),
            started_ms: record.started_ms,
            expires_ms: record.expires_ms,
            max_expires_ms: record.max_expires_ms,
            connect_by_ms: (!record.ever_connected)
                .then_some(record.connect_by_ms)
                .flatten(),
            resume_on_logout: record.resume_on_logout,
            hold_until_ms,
            clients,
        }
    }

    /// Adds `by` to the expiry, up to the breakpoint's maximum; the new expiry, and whether
    /// the maximum cut it short.
    pub fn extend(&self, by: Duration) -> (i64, bool) {
        let mut record = self.record();
        let wanted = record.expires_ms.saturating_add(ms(by));
        record.expires_ms = wanted.min(record.max_expires_ms);
        let capped = wanted > record.max_expires_ms;
        let expires = record.expires_ms;
        drop(record);
        self.changed.notify_one();
        (expires, capped)
    }

    /// Asks for it to end now, saying how (`resumed by alice`); the first ask counts. The
    /// holding task ends it, writes the console's line, then tells [`Held::ended`].
    pub fn end(&self, how: String) {
        self.end_asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(how);
        self.changed.notify_one();
    }

    /// Whether someone resumed it (rather than it expiring, say).
    fn resumed(&self) -> bool {
        self.resumed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether it is ending or has ended: no new connection may join it.
    pub fn ending(&self) -> bool {
        self.end_asked().is_some() || self.ended_how().is_some()
    }

    fn end_asked(&self) -> Option<String> {
        self.end_asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks it ended, once its console line is written and its record stored.
    fn ended_as(&self, how: String) {
        self.ended.send_replace(Some(how));
    }

    /// How it ended, once it has.
    pub fn ended_how(&self) -> Option<String> {
        self.ended.borrow().clone()
    }

    /// Waits until it ends; how.
    pub async fn ended(&self) -> String {
        let mut ended = self.ended.subscribe();
        loop {
            if let Some(how) = ended.borrow_and_update().clone() {
                return how;
            }
            if ended.changed().await.is_err() {
                return "the controller stopped holding it".to_owned();
            }
        }
    }
}

/// The builds held at a breakpoint now; one per controller.
#[derive(Default)]
pub struct Breakpoints {
    held: Mutex<HashMap<u64, Arc<Held>>>,
}

impl Breakpoints {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The breakpoint holding build `build_id`, if any.
    pub fn of_build(&self, build_id: u64) -> Option<Arc<Held>> {
        self.lock().get(&build_id).cloned()
    }

    /// Every breakpoint held now, oldest first.
    pub fn all(&self) -> Vec<Arc<Held>> {
        let mut all: Vec<_> = self.lock().values().cloned().collect();
        all.sort_by_key(|h| (h.row().started_ms, h.build.row.id));
        all
    }

    fn remove(&self, held: &Arc<Held>) {
        let mut map = self.lock();
        if map
            .get(&held.build.row.id)
            .is_some_and(|h| Arc::ptr_eq(h, held))
        {
            map.remove(&held.build.row.id);
        }
    }
}

/// Holds `build` at a breakpoint: a new one with `settings`, or the stored one `resumed`
/// after a restart. Returns the breakpoint already holding the build if there is one.
/// The holding task runs on its own; [`Held::ended`] says when it ends.
pub async fn hold(
    state: &AppState,
    build: &Arc<RunningBuild>,
    settings: &Settings,
    resumed: Option<BreakpointRow>,
    wait_token: Option<String>,
) -> Arc<Held> {
    let fresh = resumed.is_none();
    let mut record = resumed.unwrap_or_else(|| settings.start(build.row.id, now_ms()));
    if record.wait_token.is_none() {
        record.wait_token = wait_token;
    }
    let held = {
        let mut map = state.breakpoints.lock();
        if let Some(existing) = map.get(&build.row.id) {
            return existing.clone();
        }
        let held = Arc::new(Held {
            build: build.clone(),
            record: Mutex::new(record),
            hold_until: Mutex::new(None),
            end_asked: Mutex::new(None),
            resumed: std::sync::atomic::AtomicBool::new(false),
            ended: watch::Sender::new(None),
            changed: tokio::sync::Notify::new(),
        });
        map.insert(build.row.id, held.clone());
        held
    };
    save(state, &held, None).await;
    if fresh {
        let row = held.row();
        state.audit.record(
            &Actor::system(),
            Action::BreakpointStart,
            &held.target(),
            json!({
                "reason": row.reason,
                "node": build.row.node,
                "expires": utc(row.expires_ms),
                "maxExpires": utc(row.max_expires_ms),
            }),
        );
    }
    tokio::spawn(hold::run(state.clone(), held.clone(), fresh));
    held
}

/// Stores the breakpoint as it is now; a failure is logged (the breakpoint goes on, and
/// a restart would then hold it from its last stored state).
async fn save(state: &AppState, held: &Held, ended: Option<&str>) {
    let mut row = held.row();
    row.ended = ended.map(str::to_owned);
    if let Err(e) = state
        .store
        .call(move |c| crate::store::breakpoints::save(c, &row))
        .await
    {
        tracing::warn!(job = ?held.build.row.job, number = held.build.row.number, error = ?e.to_string(), "cannot store the breakpoint");
    }
}

/// A build's stored breakpoint.
pub async fn stored(state: &AppState, build_id: u64) -> Option<BreakpointRow> {
    state
        .store
        .call(move |c| crate::store::breakpoints::get(c, build_id))
        .await
        .ok()
        .flatten()
}

/// Finds the breakpoint holding build `number` of `job`; the message says why not.
pub fn find(state: &AppState, job: &str, number: u64) -> Result<Arc<Held>, String> {
    let Some(build) = state.builds.running_build(job, number) else {
        return Err(format!(
            "Build {}#{number} is not running, so it is not held at a breakpoint",
            Shown(job)
        ));
    };
    state
        .breakpoints
        .of_build(build.row.id)
        .ok_or_else(|| format!("Build {}#{number} is not held at a breakpoint", Shown(job)))
}

/// `breakpoint extend`, `extend-breakpoint`: the line the user is told. `who` is how the
/// console names the asker, `actor` how the audit log records them.
pub fn extend(state: &AppState, held: &Held, by: Duration, who: &str, actor: &Actor) -> String {
    let (expires, capped) = held.extend(by);
    state.audit.record(
        actor,
        Action::BreakpointExtend,
        &held.target(),
        json!({ "by": format_duration(by), "until": utc(expires), "capped": capped }),
    );
    let line = if capped {
        format!(
            "Breakpoint: extended by {who} until {} (its maximum; asked for {} more).",
            utc(expires),
            format_duration(by)
        )
    } else {
        format!(
            "Breakpoint: extended by {who} by {} until {}.",
            format_duration(by),
            utc(expires)
        )
    };
    held.build.note(format!("{line}\n"));
    line
}

/// `breakpoint resume`, `resume-breakpoint`.
pub fn resume(held: &Held, who: &str, via: &str) {
    held.resumed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    held.end(format!("resumed by {who} ({via})"));
}

/// Whether a build whose steps ended with `result` stops at a breakpoint: `when` is the
/// one `build -breakpoint` asked for, else the job's. An aborted build never does.
pub fn applies(
    when: steward_protocol::job_xml::breakpoint::BreakpointWhen,
    result: crate::store::builds::BuildResult,
) -> Option<&'static str> {
    use crate::store::builds::BuildResult;
    use steward_protocol::job_xml::breakpoint::BreakpointWhen;
    match (when, result) {
        (_, BuildResult::Aborted) | (BreakpointWhen::Never, _) => None,
        (BreakpointWhen::OnFailure, BuildResult::Failure) => Some(AFTER_FAILURE),
        (BreakpointWhen::OnFailure, _) => None,
        (BreakpointWhen::Always, BuildResult::Failure) => Some(AFTER_FAILURE),
        (BreakpointWhen::Always, _) => Some(AFTER_STEPS),
    }
}

/// The breakpoint a build's steps ended into, after a restart: the stored one if it was
/// held after the steps. `Err` when it was, and has ended: it is not held again.
pub async fn after_steps_stored(
    state: &AppState,
    build_id: u64,
) -> Result<Option<BreakpointRow>, ()> {
    match stored(state, build_id).await {
        Some(row) if row.reason == AFTER_FAILURE || row.reason == AFTER_STEPS => {
            if row.ended.is_some() {
                Err(())
            } else {
                Ok(Some(row))
            }
        }
        _ => Ok(None),
    }
}

/// What `build -breakpoint` asked for queue item `queue_id`.
pub async fn requested(
    state: &AppState,
    queue_id: Option<u64>,
) -> Option<steward_protocol::job_xml::breakpoint::BreakpointWhen> {
    let queue_id = queue_id?;
    let when = state
        .store
        .call(move |c| crate::store::breakpoints::requested(c, queue_id))
        .await
        .ok()
        .flatten()?;
    steward_protocol::job_xml::breakpoint::BreakpointWhen::parse(&when)
}
