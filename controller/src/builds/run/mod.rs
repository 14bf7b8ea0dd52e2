//! One build's run: its shell steps, one after another, as durable steps on its agent, with
//! their output appended to the console.
//!
//! Per step, in this order: the `[JOB] $ /bin/sh -xe …` line goes to the console; the store
//! records the step's index and the console length where its output begins; the agent
//! starts the step; the runner follows the step's log until it ends. A step's output is the
//! only thing written to the console between those points, so `console length − start` is
//! always the offset in the step's own log to follow from: after a lost connection, an
//! agent restart, or a controller restart. When the step's fate is known, the store records
//! it with the console length at that moment before anything else is written (the failure
//! line, the next step's line, `Finished:`): a restarted controller cuts the console back
//! to the last length the store vouches for and writes the rest again, so a kill at any
//! moment leaves one continuous log. Steps are removed from the agent only after the
//! build's end is recorded, so a step that cannot be found was never started.

use std::sync::Arc;
use std::time::Duration;

use steward_channel::Channel;
use steward_channel::steps::{self, StepCallError, Tail};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::services::{Request, Response};
use steward_protocol::steps::{StepEvent, StepOutcome, StepSpec};
use tokio::time::Instant;

use crate::builds::console::{ConsoleWriter, WRITE_BATCH};
use crate::builds::environment::{describe_node, workspace};
mod publishing;
mod timeout;

use timeout::sleep_until_deadline;
pub use timeout::{TIMEOUT_ABORTED, TIMEOUT_FAILED};

use crate::agents::disk_space::LowSpace;
use crate::agents::monitors;
use crate::builds::plan::{Planned, plan};
use crate::builds::{RunningBuild, now_ms};
use crate::state::AppState;
use crate::store::builds::{self as records, BuildResult, BuildRow, NO_EXIT_STATUS, StepEnd};
use crate::units::format_bytes;

/// Pause before asking again when a call failed on a connection that still looks open.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest wait for the agent's sample after a step failed: the build's end waits for it,
/// and an agent that just sent the step's end answers at once unless its machine is in
/// trouble.
const FAILED_STEP_SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes a new build's first console line (`Started by …`), before anyone learns its
/// number: a client that reads the console as soon as it knows the build (python-jenkins
/// takes an empty console for a missing build) never finds it empty. A failure is logged;
/// the runner then writes the line itself.
pub(super) async fn write_header(state: &AppState, build: &RunningBuild) {
    let row = &build.row;
    let path = state.builds.console_path(&row.job, row.number);
    let header = header_line(row);
    let written = match ConsoleWriter::open(path.clone(), build.progress.clone()).await {
        Ok(mut console) => console.append(header.as_bytes()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::error!(job = ?row.job, number = row.number, path = ?path, error = ?e.to_string(), "cannot write the console");
    }
}

fn header_line(row: &BuildRow) -> String {
    format!("{}\n", row.cause.describe(&row.cause_user))
}

/// Runs a build that has just been given its executor.
pub(super) async fn fresh(state: AppState, build: Arc<RunningBuild>) {
    drive(state, build, false).await
}

/// Picks up a build the store says was running when the controller stopped.
pub(super) async fn resume(state: AppState, build: Arc<RunningBuild>) {
    drive(state, build, true).await
}

async fn drive(state: AppState, build: Arc<RunningBuild>, resuming: bool) {
    let shutdown = state.shutdown.clone();
    tokio::select! {
        // On shutdown the build stays running in the store, and its steps on the agent:
        // the next controller reattaches them.
        _ = shutdown.cancelled() => {}
        _ = run(&state, &build, resuming) => {}
    }
}

async fn run(state: &AppState, build: &Arc<RunningBuild>, resuming: bool) {
    let row = &build.row;
    let path = state.builds.console_path(&row.job, row.number);
    let console = match ConsoleWriter::open(path.clone(), build.progress.clone()).await {
        Ok(console) => Ok(console),
        Err(e) => {
            tracing::error!(job = ?row.job, number = row.number, path = ?path, error = ?e.to_string(), "cannot write the console");
            if crate::disk::is_out_of_space(&e) {
                state.disk.out_of_space("opening a build's console", &e);
            }
            Err(e)
        }
    };
    let (result, end) = match (console, JobConfig::from_stored_xml(&row.config_xml)) {
        (Ok(mut console), Ok(config)) => {
            if config.timestamps()
                && let Err(e) = console.keep_timestamps().await
            {
                tracing::warn!(job = ?row.job, number = row.number, error = ?e.to_string(), "cannot keep console timestamps");
            }
            let mut runner = Runner {
                state,
                build,
                console,
                work_dir: None,
                abort_recorded: build.row.aborted_by.is_some(),
                abort_ended_breakpoint: false,
                unwritten: String::new(),
                console_failure: None,
                bound: None,
                step_masks: Vec::new(),
                timeout: config.build_timeout().ok().flatten(),
                last_activity: Instant::now(),
                step_is_shell: false,
            };
            let result = runner.steps(&config, resuming).await;
            // A timeout that fails the build rather than aborting it.
            let result = match build.aborted_by().as_deref() {
                Some(TIMEOUT_FAILED) if result == BuildResult::Aborted => BuildResult::Failure,
                _ => result,
            };
            let result = runner.publish(&config, result).await;
            runner.breakpoint(&config, result).await;
            runner.finish(result).await;
            (result, runner.end())
        }
        (Err(e), _) => {
            let why = console_failure(&e);
            let at = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
            let tail = format!("\nERROR: {why}: the build cannot run.\nFinished: FAILURE\n");
            (
                BuildResult::Failure,
                BuildEnd {
                    reason: Some(why),
                    tail: Some((tail, at)),
                },
            )
        }
        (Ok(mut console), Err(e)) => {
            let _ = console
                .append(format!("ERROR: the stored job configuration is unreadable: {e}\nFinished: FAILURE\n").as_bytes())
                .await;
            (BuildResult::Failure, BuildEnd::default())
        }
    };
    record_end(state, build, result, end).await;
}

/// What the store keeps of a build's end besides its result.
#[derive(Debug, Default)]
struct BuildEnd {
    /// Why the controller ended the build so, when its steps did not say.
    reason: Option<String>,
    /// Closing console text not written yet, and the console length it follows.
    tail: Option<(String, u64)>,
}

/// Why a console could not be written, for its build's record and console.
fn console_failure(e: &std::io::Error) -> String {
    if crate::disk::is_out_of_space(e) {
        format!("the controller's disk is full ({e})")
    } else {
        format!("the console cannot be written ({e})")
    }
}

/// First pause before recording a build's end again after the store failed.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest pause between attempts: a disk freed by an operator is seen within it.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

/// Stores the result, applies the job's build discarder, tells followers, frees the
/// executor, and removes the steps from the agent. Nobody learns the result before the
/// store has it: a store that fails (a full disk) is asked again, with a growing pause,
/// until it takes it or the controller stops (the build is then resumed, as any running
/// build). A console tail the disk had no room for is written afterwards, as soon as it can
/// be ([`crate::builds::tails`]).
async fn record_end(
    state: &AppState,
    build: &Arc<RunningBuild>,
    result: BuildResult,
    end: BuildEnd,
) {
    let id = build.row.id;
    let mut pause = RECORD_RETRY_FIRST;
    loop {
        let (reason, tail) = (end.reason.clone(), end.tail.clone());
        let recorded = state
            .store
            .call(move |c| {
                let tail = tail.as_ref().map(|(text, at)| (text.as_str(), *at));
                records::finish(c, id, result, now_ms(), reason.as_deref(), tail)
            })
            .await;
        match recorded {
            Ok(()) => break,
            Err(e) => {
                if e.is_disk_full() {
                    state.disk.out_of_space("recording a build's result", &e);
                }
                tracing::error!(job = ?build.row.job, number = build.row.number, error = ?e.to_string(), retry_in = ?pause, "cannot record the build's result; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RECORD_RETRY_MAX);
            }
        }
    }
    // Before the result is told: whoever waits on it (`build -s`) then finds the job's
    // builds as the discarder left them, and still holds this build if it went.
    crate::builds::delete::discard_old(state, &build.row.job).await;
    build.progress.send_modify(|p| p.result = Some(result));
    state.builds.finished(id);
    crate::triggers::downstream::build_ended(state, &build.row.job, build.row.number, result).await;
    // A build's sessions end with it: its workspace is free for the next build.
    state.ssh.close_build(id);
    if let Some((text, at)) = end.tail {
        let tail = records::ConsoleTail {
            build_id: id,
            job: build.row.job.clone(),
            number: build.row.number,
            at,
            text,
        };
        state
            .tasks
            .spawn(crate::builds::tails::write(state.clone(), tail));
    }
    if let Some(channel) = live_channel(state, &build.row.node) {
        let last = build_step_count(build);
        for index in 0..last {
            let _ = steps::remove(&channel, &step_id(id, index)).await;
        }
        // Bound secret files go with the build (relative: under the agent's work dir).
        let files = crate::builds::bindings::secret_files_dir(&format!(
            "workspace/{}",
            build.row.workspace
        ));
        let _ = steward_channel::call::call(&channel, &Request::Remove { path: files }).await;
    }
    build.ended.cancel();
}

/// How many steps the build may have started.
fn build_step_count(build: &RunningBuild) -> u32 {
    JobConfig::from_stored_xml(&build.row.config_xml)
        .map(|c| plan(&c).len() as u32)
        .unwrap_or(build.row.step_index + 1)
}

/// The agent-side name of step `index` of build `id`: unique for all time, as build ids are.
pub fn step_id(build_id: u64, index: u32) -> String {
    format!("build-{build_id}-{index}")
}

fn live_channel(state: &AppState, node: &str) -> Option<Channel> {
    state.agents.channel(node).filter(|c| !c.is_closed())
}

/// How following a step ended.
enum Followed {
    Ended(StepOutcome),
    /// No connection to the agent within the grace period.
    Lost,
    /// Aborted with nothing to kill: the step had not started, or its kill was sent.
    AbortedAway,
    /// Aborted while the agent was away, before the step could be killed: its process may
    /// still run there (it is killed when the agent next connects).
    AbortedUnkilled,
    /// The agent does not have the step, or answered something unusable.
    Failed(String),
    /// The console could not be written.
    Console(std::io::Error),
}

struct Runner<'a> {
    state: &'a AppState,
    build: &'a RunningBuild,
    console: ConsoleWriter,
    /// The agent's work dir, once asked.
    work_dir: Option<String>,
    /// Whether the store knows the build is being aborted.
    abort_recorded: bool,
    /// Whether an abort only ended the breakpoint, after the steps had given the result.
    abort_ended_breakpoint: bool,
    /// Console text that could not be written (the disk was full), with all that came
    /// after it: the build's record keeps it, to be written when space allows.
    unwritten: String,
    /// Why the console could not be written, once it could not.
    console_failure: Option<String>,
    /// The job's credential bindings, resolved before its first shell step.
    bound: Option<crate::builds::bindings::Bound>,
    /// The secrets masked in the output of the step being followed.
    step_masks: Vec<steward_protocol::credentials::SecretBytes>,
    /// The job's build timeout (`BuildTimeoutWrapper`), enforced while shell steps run.
    timeout: Option<steward_protocol::job_xml::publishers::BuildTimeout>,
    /// When the build last printed something: the no-activity timeout counts from it.
    last_activity: Instant,
    /// Whether the step being followed is a shell step (a timeout wraps those, not the
    /// checkout).
    step_is_shell: bool,
}

impl Runner<'_> {
    /// Appends `text`, after any notes waiting ([`RunningBuild::note`]). Never called while
    /// a step's output flows: notes then go through [`Runner::notes_during_step`].
    ///
    /// Once a write has failed, what follows is kept with what was not written, in order,
    /// for the build's record ([`Runner::end`]).
    async fn line(&mut self, text: &str) {
        let mut all = self.build.take_notes().concat();
        all.push_str(text);
        if !self.unwritten.is_empty() {
            self.unwritten.push_str(&all);
            return;
        }
        let before = self.console.size();
        if let Err(e) = self.console.append(all.as_bytes()).await {
            self.console_failed(&e);
            let mut written = (self.console.size() - before) as usize;
            while !all.is_char_boundary(written) {
                written -= 1;
            }
            self.unwritten = all.split_off(written);
        }
    }

    /// Notes that the console could not be written: logged, and when the disk is full, the
    /// controller's reserve is given up to the build's record.
    fn console_failed(&mut self, e: &std::io::Error) {
        tracing::error!(job = ?self.build.row.job, number = self.build.row.number, path = ?self.console.path(), error = ?e.to_string(), "cannot write the console");
        if crate::disk::is_out_of_space(e) {
            self.state.disk.out_of_space("writing a build's console", e);
        }
        self.console_failure
            .get_or_insert_with(|| console_failure(e));
    }

    /// What the build's record keeps besides its result.
    fn end(&mut self) -> BuildEnd {
        let tail = (!self.unwritten.is_empty())
            .then(|| (std::mem::take(&mut self.unwritten), self.console.size()));
        BuildEnd {
            reason: self.console_failure.clone(),
            tail,
        }
    }

    /// Appends a step's output, unless the disk is full: build output then waits for
    /// nobody, and the build fails with the reason.
    /// Once a line is held back (a failed write), output is refused too: it would land in
    /// the console before that line.
    async fn append_output(&mut self, batch: Vec<Vec<u8>>) -> std::io::Result<()> {
        if self.state.disk.is_full() {
            return Err(crate::disk::full_error());
        }
        if !self.unwritten.is_empty() {
            return Err(std::io::Error::other(
                "an earlier console line could not be written",
            ));
        }
        self.console.append_all(batch).await
    }

    /// Stops step `id` when its output can no longer be written; what it does from then on
    /// would be lost. Best effort: a step this cannot reach is stopped when its agent
    /// reconnects after the build has ended.
    async fn stop_step(&self, id: &str) {
        if let Some(channel) = live_channel(self.state, &self.build.row.node)
            && let Err(e) = steps::kill(&channel, id, crate::builds::ABORT_KILL_GRACE).await
        {
            tracing::warn!(step = id, error = ?e.to_string(), "cannot stop a step whose output cannot be written");
        }
    }

    /// Writes the notes waiting while step `index` runs. The step's output starts later in
    /// the console by their length, so its recorded start moves with them: recorded first,
    /// so a controller killed in between reads a few bytes of the step's log twice rather
    /// than skipping them.
    async fn notes_during_step(&mut self, index: u32, log_start: &mut u64) {
        let mut notes = self.build.take_notes().concat();
        if notes.is_empty() {
            return;
        }
        if !self.unwritten.is_empty() {
            // Behind what is held back, in order.
            self.unwritten.push_str(&notes);
            return;
        }
        // The step may be halfway through a line.
        if !self.console.at_line_start() {
            notes.insert(0, '\n');
        }
        let id = self.build.row.id;
        let moved = *log_start + notes.len() as u64;
        if let Err(e) = self
            .state
            .store
            .call(move |c| records::set_step(c, id, index, moved))
            .await
        {
            tracing::warn!(job = ?self.build.row.job, number = self.build.row.number, error = ?e.to_string(), "cannot record a console note; it is left out");
            return;
        }
        let before = self.console.size();
        let written = self.console.append(notes.as_bytes()).await;
        *log_start += self.console.size() - before;
        if let Err(e) = written {
            tracing::error!(path = ?self.console.path(), error = ?e.to_string(), "cannot write the console");
            let start = *log_start;
            if start != moved
                && let Err(e) = self
                    .state
                    .store
                    .call(move |c| records::set_step(c, id, index, start))
                    .await
            {
                tracing::error!(job = ?self.build.row.job, number = self.build.row.number, error = ?e.to_string(), "cannot record a step's start");
            }
        }
    }

    fn grace(&self) -> Duration {
        self.state.builds.reconnect_grace
    }

    /// Runs the job's steps from where the record says; the result.
    ///
    /// On resumption the console has been cut back to the last point the store vouches for
    /// ([`crate::builds::resume_point`]); what follows it is written again here.
    async fn steps(&mut self, config: &JobConfig, resuming: bool) -> BuildResult {
        let row = &self.build.row;
        let steps = plan(config);
        let mut first = 0;
        let mut reattach = None;
        // A step that ended with its `unstableReturn` (recorded, for a resumed build).
        let mut unstable = row.unstable;
        if resuming && let Some(log_start) = row.step_log_start {
            match &row.step_end {
                None => {
                    first = row.step_index;
                    reattach = Some(log_start);
                }
                Some(end) => {
                    if let Some(note) = &end.note {
                        self.line(note).await;
                    }
                    let step = steps.get(row.step_index as usize);
                    if end.code != 0 && step.and_then(|s| s.unstable_return()) != Some(end.code) {
                        return self.failed();
                    }
                    // A checkout that ended before its revision was recorded.
                    if let Some(Planned::Checkout(_)) = step
                        && !self.checkout_recorded().await
                    {
                        let id = step_id(row.id, row.step_index);
                        let recorded = match self.work_dir().await {
                            Some(work_dir) => self.record_checkout(&work_dir, &id).await,
                            None => Err(format!("{} is not connected", row.node)),
                        };
                        if let Err(why) = recorded {
                            self.line(&format!("ERROR: {why}\n")).await;
                            return self.failed();
                        }
                    }
                    first = row.step_index + 1;
                }
            }
        } else {
            // A fresh build's first line is written as it starts ([`write_header`]); a
            // build resumed before its first step was cut back to nothing.
            if self.console.size() == 0 {
                self.line(&header_line(row)).await;
            }
            // What the job holds that this build runs without, said before anything runs.
            for ignored in config.ignored() {
                self.line(&format!("{}\n", ignored.warning())).await;
            }
            // Jenkins names the node and workspace first, steps or none.
            let Some(work_dir) = self.work_dir().await else {
                let note = format!(
                    "\nERROR: Agent {} was lost before the build started and did not \
                     reconnect within {} s; the build fails.\n",
                    row.node,
                    self.grace().as_secs()
                );
                self.line(&note).await;
                return self.failed();
            };
            let line = format!(
                "Building remotely on {} in workspace {}\n",
                describe_node(self.state, &row.node).await,
                workspace(&work_dir, &row.workspace)
            );
            self.line(&line).await;
            if config.pre_build_cleanup() && !self.clean_workspace(&work_dir).await {
                return self.failed();
            }
        }
        for index in first..steps.len() as u32 {
            // A build resumed while it was being aborted still has its step to kill.
            let reattaching = reattach.is_some();
            if self.build.abort.is_cancelled() && !reattaching {
                return BuildResult::Aborted;
            }
            let id = step_id(row.id, index);
            let Some(work_dir) = self.work_dir().await else {
                let note = if self.build.abort.is_cancelled() {
                    self.unkilled_note(index)
                } else {
                    self.lost_note(index)
                };
                self.line(&note).await;
                return self.failed();
            };
            let step = steps[index as usize];
            let spec = match self.spec(&work_dir, step, config).await {
                Ok(spec) => spec,
                Err(why) => {
                    self.line(&format!("ERROR: {why}\n")).await;
                    return self.failed();
                }
            };
            let followed = match reattach.take() {
                Some(log_start) => self.follow(&id, index, log_start, &spec).await,
                None => {
                    if let Planned::Shell(shell) = step {
                        let line = format!(
                            "[{}] $ {} {work_dir}/steps/{id}/script.sh\n",
                            row.job,
                            shell.interpreter().join(" ")
                        );
                        self.line(&line).await;
                    }
                    let log_start = self.console.size();
                    let build_id = row.id;
                    if let Err(e) = self
                        .state
                        .store
                        .call(move |c| records::set_step(c, build_id, index, log_start))
                        .await
                    {
                        self.line(&format!("ERROR: cannot record the step: {e}\n"))
                            .await;
                        return BuildResult::Failure;
                    }
                    self.start(&id, index, &work_dir, &spec, log_start).await
                }
            };
            let (code, note) = match followed {
                Followed::Ended(StepOutcome::Exited { code })
                    if code != 0
                        && Some(code) == step.unstable_return()
                        && !self.build.abort.is_cancelled() =>
                {
                    // As Jenkins' `Shell`: the build is UNSTABLE, and the next steps run.
                    (code, None)
                }
                Followed::Ended(StepOutcome::Exited { code }) => {
                    let failed = code != 0 && !self.build.abort.is_cancelled();
                    if failed {
                        // The step may have failed for want of space: the node stops taking
                        // builds now if so, not at the next sample.
                        self.refresh_monitors().await;
                    }
                    let note = step.failure_note().filter(|_| failed).map(str::to_owned);
                    (code, note)
                }
                Followed::Ended(StepOutcome::Lost) => {
                    let why = match self.refresh_monitors().await {
                        Some(low) => format!(
                            ": the agent's work dir ({}) has only {} free, too little to write \
                             the step's log or result. {} takes no new builds until it has {} free.",
                            low.path,
                            format_bytes(low.free_bytes),
                            row.node,
                            format_bytes(low.threshold_bytes)
                        ),
                        None => " (killed with SIGKILL, or the machine restarted)".to_owned(),
                    };
                    let note = format!(
                        "\nERROR: the step's process on {} ended without an exit status{why}\n",
                        row.node
                    );
                    (NO_EXIT_STATUS, Some(note))
                }
                Followed::Lost => (NO_EXIT_STATUS, Some(self.lost_note(index))),
                Followed::AbortedAway => (NO_EXIT_STATUS, None),
                Followed::AbortedUnkilled => (NO_EXIT_STATUS, Some(self.unkilled_note(index))),
                Followed::Failed(why) => {
                    if !self.build.abort.is_cancelled() {
                        // A step that could not start may have met a full disk.
                        self.refresh_monitors().await;
                    }
                    (NO_EXIT_STATUS, Some(format!("\nERROR: {why}\n")))
                }
                Followed::Console(e) => {
                    self.console_failed(&e);
                    self.stop_step(&id).await;
                    let why = console_failure(&e);
                    (
                        NO_EXIT_STATUS,
                        Some(format!(
                            "\nERROR: {why}: the step's output cannot be kept, so it was \
                             stopped and the build fails.\n"
                        )),
                    )
                }
            };
            // Recorded before anything else is written (see the module comment).
            let end = StepEnd {
                code,
                log_end: self.console.size(),
                note: note.clone(),
            };
            let step_unstable = code != 0 && Some(code) == step.unstable_return();
            unstable |= step_unstable;
            let build_id = row.id;
            if let Err(e) = self
                .state
                .store
                .call(move |c| records::end_step(c, build_id, &end, step_unstable))
                .await
            {
                tracing::error!(job = ?row.job, number = row.number, error = ?e.to_string(), "cannot record a step's end");
            }
            if let Some(note) = note {
                self.line(&note).await;
            }
            if code != 0 && !step_unstable {
                return self.failed();
            }
            if let Planned::Checkout(_) = step
                && let Err(why) = self.record_checkout(&work_dir, &id).await
            {
                self.line(&format!("ERROR: {why}\n")).await;
                return self.failed();
            }
        }
        if self.build.abort.is_cancelled() {
            return BuildResult::Aborted;
        }
        if unstable {
            BuildResult::Unstable
        } else {
            BuildResult::Success
        }
    }

    /// `PreBuildCleanup`: deletes the build's workspace on its node, with the plugin's
    /// lines; whether it went (a failure is said, and fails the build). The first step
    /// makes the workspace again.
    async fn clean_workspace(&mut self, work_dir: &str) -> bool {
        self.line("[WS-CLEANUP] Deleting project workspace...\n")
            .await;
        let path = workspace(work_dir, &self.build.row.workspace);
        let removed = match self.state.agents.channel(&self.build.row.node) {
            Some(channel) => {
                let request = Request::Remove { path: path.clone() };
                match steward_channel::call::call(&channel, &request).await {
                    Ok(steward_protocol::services::Response::Done) => Ok(()),
                    Ok(steward_protocol::services::Response::Error { message }) => Err(message),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
            None => Err(format!("{} is not connected", self.build.row.node)),
        };
        match removed {
            Ok(()) => {
                self.line("[WS-CLEANUP] Done\n").await;
                true
            }
            Err(why) => {
                self.line(&format!(
                    "ERROR: [WS-CLEANUP] Cannot delete workspace {path}: {why}\n"
                ))
                .await;
                false
            }
        }
    }

    /// After a failed step: a fresh sample of the agent, stored as the node's monitors, so
    /// a node low on disk space goes offline now rather than at its next sample minutes
    /// later (`agents::monitors`); the shortage, when its work dir is below the threshold.
    async fn refresh_monitors(&self) -> Option<LowSpace> {
        let node = &self.build.row.node;
        let (connection_id, channel) = self.state.agents.connection(node)?;
        if channel.is_closed() {
            return None;
        }
        let mut older = false;
        let sampled = monitors::sample(&channel, &mut older);
        let sample = tokio::time::timeout(FAILED_STEP_SAMPLE_TIMEOUT, sampled)
            .await
            .ok()?;
        monitors::record(self.state, node, connection_id, sample).await
    }

    /// The result of a build whose step failed: ABORTED when it was aborted.
    fn failed(&self) -> BuildResult {
        if self.build.abort.is_cancelled() {
            BuildResult::Aborted
        } else {
            BuildResult::Failure
        }
    }

    fn lost_note(&self, index: u32) -> String {
        format!(
            "\nERROR: Agent {} was lost during step {} and did not reconnect within {} s; \
             the build fails. Its process, if it still runs, is killed when the agent \
             reconnects.\n",
            self.build.row.node,
            index + 1,
            self.grace().as_secs()
        )
    }

    fn unkilled_note(&self, index: u32) -> String {
        format!(
            "\nAgent {} is not connected, so step {} could not be stopped; its process may \
             still run there, and is stopped when the agent reconnects.\n",
            self.build.row.node,
            index + 1
        )
    }

    /// Tells the store who aborted the build, once, before its step is killed: a controller
    /// restarted meanwhile then finishes the abort rather than take the killed step's end
    /// (or a step that shrugs off SIGTERM) for the build's result.
    async fn record_abort(&mut self) {
        // Sessions into the build end with it, and what they started is killed.
        self.state.ssh.close_build(self.build.row.id);
        if self.abort_recorded {
            return;
        }
        let Some(by) = self.build.aborted_by() else {
            return;
        };
        self.abort_recorded = true;
        let id = self.build.row.id;
        if let Err(e) = self
            .state
            .store
            .call(move |c| records::set_aborted(c, id, &by))
            .await
        {
            tracing::warn!(error = ?e.to_string(), "cannot record an abort");
        }
    }

    /// Holds the build at a breakpoint when its job, or `build -breakpoint`, asks for one
    /// after steps that ended with `result`, or holds on the one a restart interrupted;
    /// returns when it ends. The result stays what the steps made it.
    async fn breakpoint(&mut self, config: &JobConfig, result: BuildResult) {
        use crate::breakpoints::{self, Settings};
        // One a step started (`breakpoint wait`) and still holding, whatever the job says:
        // the build ends only once it has.
        if let Some(held) = self.state.breakpoints.of_build(self.build.row.id) {
            self.hold_until_ended(&held).await;
            return;
        }
        if self.build.abort.is_cancelled() {
            return;
        }
        let resumed = match breakpoints::after_steps_stored(self.state, self.build.row.id).await {
            Err(()) => return,
            Ok(resumed) => resumed,
        };
        let job = config.breakpoint();
        let settings = match &resumed {
            Some(row) => Settings::of_job(job, &row.reason),
            None => {
                let when = match breakpoints::requested(self.state, self.build.row.queue_id).await {
                    Some(when) => when,
                    None => job.map_or(
                        steward_protocol::job_xml::breakpoint::BreakpointWhen::Never,
                        |b| b.when,
                    ),
                };
                let Some(reason) = breakpoints::applies(when, result) else {
                    return;
                };
                Settings::of_job(job, reason)
            }
        };
        let build = self
            .state
            .builds
            .running_build(&self.build.row.job, self.build.row.number);
        let Some(build) = build else { return };
        let held = breakpoints::hold(self.state, &build, &settings, resumed, None).await;
        self.hold_until_ended(&held).await;
    }

    /// Writes the breakpoint's console lines as they come, until it ends.
    async fn hold_until_ended(&mut self, held: &crate::breakpoints::Held) {
        let aborted_before = self.build.abort.is_cancelled();
        let ended = held.ended();
        tokio::pin!(ended);
        loop {
            tokio::select! {
                _ = &mut ended => break,
                () = self.build.noted.notified() => self.line("").await,
            }
        }
        // Its closing line is a note: written now, before the build's own.
        self.line("").await;
        self.abort_ended_breakpoint = !aborted_before
            && self.build.abort.is_cancelled()
            && held
                .ended_how()
                .is_some_and(|how| how.starts_with(crate::breakpoints::ABORTED));
    }

    /// Writes the closing lines.
    async fn finish(&mut self, result: BuildResult) {
        if let Some(by) = self
            .build
            .aborted_by()
            .filter(|_| !self.abort_ended_breakpoint)
        {
            // Jenkins' lines: the abort, then who asked for it (a timeout said why itself).
            self.line("Build was aborted\n").await;
            if let Some(line) = crate::builds::abort::console_line(&by) {
                self.line(&line).await;
            }
        }
        self.line(&format!("Finished: {result}\n")).await;
        if let Err(e) = self.console.sync().await {
            tracing::warn!(path = ?self.console.path(), error = ?e.to_string(), "cannot sync the console");
        }
    }

    /// The agent's work dir, asked once (and again after a failed attempt).
    async fn work_dir(&mut self) -> Option<String> {
        if let Some(dir) = &self.work_dir {
            return Some(dir.clone());
        }
        let deadline = Instant::now() + self.grace();
        loop {
            let channel = self.wait_channel(deadline).await?;
            match steward_channel::call::call(&channel, &Request::Info).await {
                Ok(Response::Info(info)) => {
                    let dir = info.work_dir.trim_end_matches('/').to_owned();
                    self.work_dir = Some(dir.clone());
                    return Some(dir);
                }
                Ok(other) => {
                    tracing::warn!(node = ?self.build.row.node, answer = ?other, "unexpected answer to Info");
                    return None;
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    /// The environment and script of a step (compat §7.4), and the secrets masked in its
    /// output: a shell step gets the job's bindings (resolved once per run of the build),
    /// as the credentials-binding wrapper gives the build steps.
    async fn spec(
        &mut self,
        work_dir: &str,
        step: Planned<'_>,
        config: &JobConfig,
    ) -> Result<StepSpec, String> {
        let row = &self.build.row;
        let mut env = crate::builds::environment::variables(self.state, row, work_dir).await;
        self.step_masks.clear();
        self.step_is_shell = matches!(step, Planned::Shell(_));
        let script = match step {
            Planned::Shell(shell) => {
                if self.bound.is_none() {
                    let channel = live_channel(self.state, &row.node);
                    let bound = crate::builds::bindings::bind(
                        self.state,
                        config,
                        channel.as_ref(),
                        &workspace(work_dir, &row.workspace),
                    )
                    .await?;
                    self.bound = Some(bound);
                }
                if let Some(bound) = &self.bound {
                    // Checked here, before the step starts: an agent that cannot mask
                    // refuses to show the output at all.
                    steward_protocol::mask::Masker::new(
                        bound.masks.iter().map(|m| m.expose().to_vec()),
                    )
                    .map_err(|e| format!("the bound secrets cannot be masked: {e}"))?;
                    env.extend(bound.env.iter().cloned());
                    self.step_masks = bound.masks.clone();
                }
                shell.command.as_bytes().to_vec()
            }
            Planned::Checkout(git) => {
                let (script, secrets) =
                    crate::builds::checkout::script(self.state, row, git).await?;
                env.extend(secrets);
                script
            }
        };
        Ok(StepSpec { script, env })
    }

    /// Whether the store has this build's checkout.
    async fn checkout_recorded(&self) -> bool {
        let id = self.build.row.id;
        matches!(
            self.state
                .store
                .call(move |c| crate::store::scm::of_build(c, id))
                .await,
            Ok(Some(_))
        )
    }

    /// Reads back and records what the checkout step `id` checked out. A controller
    /// restarted after the step ended reads it again: the step's directory stays on the
    /// agent until the build ends.
    async fn record_checkout(&mut self, work_dir: &str, id: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.grace();
        let Some(channel) = self.wait_channel(deadline).await else {
            return Err(format!(
                "{} is not connected: the checked-out revision cannot be read",
                self.build.row.node
            ));
        };
        let step_dir = format!("{work_dir}/steps/{id}");
        crate::builds::checkout::record(self.state, &channel, self.build.row.id, &step_dir)
            .await
            .map(|_| ())
    }

    /// Starts a step and follows it.
    async fn start(
        &mut self,
        id: &str,
        index: u32,
        work_dir: &str,
        spec: &StepSpec,
        log_start: u64,
    ) -> Followed {
        let deadline = Instant::now() + self.grace();
        let Some(channel) = self.wait_channel(deadline).await else {
            return self.away().await;
        };
        match steps::start(
            &channel,
            id,
            &workspace(work_dir, &self.build.row.workspace),
            spec,
        )
        .await
        {
            Ok(_) => {}
            // Whether it started is unknown: following finds out.
            Err(e) if e.is_connection_lost() => {}
            Err(e) => return Followed::Failed(format!("the step could not start: {e}")),
        }
        self.follow(id, index, log_start, spec).await
    }

    async fn away(&mut self) -> Followed {
        if self.build.abort.is_cancelled() {
            self.record_abort().await;
            Followed::AbortedAway
        } else {
            Followed::Lost
        }
    }

    /// Follows step `id` until it ends, appending its output from where the console stops;
    /// reconnects while the grace period lasts; kills the step when the build is aborted.
    /// A step the agent does not have and that has written nothing was never started: it
    /// is started then (once). Notes for the console go in as they come
    /// ([`Runner::notes_during_step`]).
    async fn follow(
        &mut self,
        id: &str,
        index: u32,
        mut log_start: u64,
        spec: &StepSpec,
    ) -> Followed {
        let timed = self.timeout.is_some() && self.step_is_shell;
        self.last_activity = Instant::now();
        let mut deadline = Instant::now() + self.grace();
        let mut kill_sent = false;
        let mut started_here = false;
        loop {
            self.notes_during_step(index, &mut log_start).await;
            let aborting = self.build.abort.is_cancelled();
            if aborting {
                self.record_abort().await;
            }
            // An aborted build does not wait for its agent: a step it could not kill is
            // killed when the agent connects again (`orphans`).
            let Some(channel) = self.wait_channel(deadline).await else {
                if !self.build.abort.is_cancelled() {
                    return Followed::Lost;
                }
                self.record_abort().await;
                return if kill_sent {
                    Followed::AbortedAway
                } else {
                    Followed::AbortedUnkilled
                };
            };
            if aborting && !kill_sent {
                match steps::kill(&channel, id, crate::builds::ABORT_KILL_GRACE).await {
                    Ok(()) => kill_sent = true,
                    Err(e) if e.is_connection_lost() => {
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    // Nothing to kill: the step never started.
                    Err(StepCallError::Refused(_)) => return Followed::AbortedAway,
                    Err(e) => return Followed::Failed(e.to_string()),
                }
            }
            let offset = self.console.size().saturating_sub(log_start);
            let mut tail = match Tail::open_masked(&channel, id, offset, &self.step_masks).await {
                Ok(tail) => tail,
                Err(e) if e.is_refused() && !channel.is_closed() => {
                    return Followed::Failed(format!(
                        "step {id} cannot be followed on {}: {e}",
                        self.build.row.node
                    ));
                }
                Err(e) if e.is_connection_lost() => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(StepCallError::Refused(why)) if offset == 0 && !started_here && !aborting => {
                    tracing::info!(step = id, reason = ?why, "step not on the agent: starting it");
                    started_here = true;
                    let workspace = workspace(
                        self.work_dir.as_deref().unwrap_or("."),
                        &self.build.row.workspace,
                    );
                    if let Err(e) = steps::start(&channel, id, &workspace, spec).await
                        && !e.is_connection_lost()
                    {
                        return Followed::Failed(format!("the step could not start: {e}"));
                    }
                    continue;
                }
                Err(e) => {
                    return Followed::Failed(format!(
                        "step {id} cannot be followed on {}: {e}",
                        self.build.row.node
                    ));
                }
            };
            loop {
                tokio::select! {
                    event = tail.next() => match event {
                        Some(Ok(StepEvent::Log(data))) => {
                            self.last_activity = Instant::now();
                            // With what else has arrived meanwhile, in one write.
                            let mut size = data.len();
                            let mut batch = vec![data];
                            while size < WRITE_BATCH
                                && let Some(more) = tail.ready_log()
                            {
                                size += more.len();
                                batch.push(more);
                            }
                            if let Err(e) = self.append_output(batch).await {
                                return Followed::Console(e);
                            }
                        }
                        Some(Ok(StepEvent::Ended(outcome))) => return Followed::Ended(outcome),
                        // The connection went (or the stream ended without the step's end).
                        None => break,
                        Some(Err(e)) if e.is_connection_lost() => break,
                        Some(Err(e)) => return Followed::Failed(e.to_string()),
                    },
                    () = self.build.noted.notified() => {
                        self.notes_during_step(index, &mut log_start).await;
                    }
                    () = sleep_until_deadline(self.timeout_deadline()), if timed && !kill_sent => {
                        self.time_out();
                    }
                    _ = self.build.abort.cancelled(), if !kill_sent => {
                        self.record_abort().await;
                        match steps::kill(&channel, id, crate::builds::ABORT_KILL_GRACE).await {
                            Ok(()) => kill_sent = true,
                            Err(e) if e.is_connection_lost() => break,
                            Err(e) => return Followed::Failed(e.to_string()),
                        }
                    }
                }
            }
            tracing::info!(job = ?self.build.row.job, number = self.build.row.number, node = ?self.build.row.node, "lost the agent during a step; waiting for it");
            deadline = Instant::now() + self.grace();
        }
    }

    /// A live channel to the build's node, waiting until `deadline` for one; `None` past
    /// the deadline, or at once when the build is aborted: an aborted build does not wait
    /// for its agent (the step is killed when the agent connects again, see `orphans`).
    async fn wait_channel(&self, deadline: Instant) -> Option<Channel> {
        let node = &self.build.row.node;
        let mut changes = self.state.agents.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(channel) = live_channel(self.state, node) {
                return Some(channel);
            }
            tokio::select! {
                _ = self.build.abort.cancelled() => return None,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}
