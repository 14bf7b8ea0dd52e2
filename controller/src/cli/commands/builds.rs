//! Build commands: `build`, `console`, `stop-builds`, `delete-builds` and `keep-build` as
//! Jenkins has them (compat §7.3), and our own `queue`, `cancel-queue` and `list-builds`.

use std::sync::Arc;

use futures_util::FutureExt;
use steward_protocol::duration::utc;
use steward_protocol::job_xml::breakpoint::BreakpointWhen;
use steward_protocol::job_xml::parameters::ParameterError;
use steward_protocol::shown::Shown;
use tokio::sync::watch;

use super::args::Args;
use super::nodes::for_each_name;
use super::{Command, CommandError, CommandResult, Context};
use crate::audit::Actor;
use crate::auth::Permission;
use crate::builds::{self, BuildError, FindError, ItemState, RunningBuild, console};
use crate::cli::stop::{Stop, StopCause};
use crate::jobs;
use crate::state::AppState;
use crate::store::builds::{BuildResult, BuildRow, CauseKind};

pub const COMMANDS: &[&Command] = &[
    &BUILD,
    &CONSOLE,
    &STOP_BUILDS,
    &DELETE_BUILDS,
    &KEEP_BUILD,
    &QUEUE,
    &CANCEL_QUEUE,
    &CLEAR_QUEUE,
    &LIST_BUILDS,
];

const BUILD: Command = Command {
    name: "build",
    summary: "Builds a job, and optionally waits until its completion.\n\
              -s: wait until the build completes; interrupting the command aborts the build\n\
              -f: like -s, but interrupting the command leaves the build running (exit 125)\n\
              -w: wait until the build starts\n\
              -v: print the console output (with -s or -f)\n\
              -p NAME=VALUE: a build parameter (repeat for more)\n\
              -c: poll the job's repositories first; build only if there are changes\n\
              -r N: retries of reading the console (accepted as Jenkins has it; never needed here)\n\
              -breakpoint WHEN: onFailure, always or never: overrides the job's breakpoint\n\
              The exit code is the result's: SUCCESS 0, UNSTABLE 1, FAILURE 2, NOT_BUILT 3, ABORTED 4.",
    usage: "JOB [-c] [-s] [-f] [-w] [-v] [-r N] [-p NAME=VALUE]... [-breakpoint WHEN]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| build(ctx).boxed(),
};

const CONSOLE: Command = Command {
    name: "console",
    summary: "Retrieves console output of a build (default: the last one).\n\
              BUILD: a number or a permalink such as lastSuccessfulBuild\n\
              -f: follow the output until the build completes\n\
              -n N: print only the last N lines\n\
              -timestamps: each line with the time it began (jobs with the Timestamper wrapper)",
    usage: "JOB [BUILD] [-f] [-n N] [-timestamps]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| console_command(ctx).boxed(),
};

const STOP_BUILDS: Command = Command {
    name: "stop-builds",
    summary: "Stop all running builds for job(s)",
    usage: "JOB_NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| stop_builds(ctx).boxed(),
};

const DELETE_BUILDS: Command = Command {
    name: "delete-builds",
    summary: "Deletes build records of a job, and their consoles.\n\
              RANGE: the build numbers: N, N-M, or a comma-separated list of them (1-5,8)\n\
              Running builds are not deleted: stop them first.",
    usage: "JOB RANGE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete_builds(ctx).boxed(),
};

const KEEP_BUILD: Command = Command {
    name: "keep-build",
    summary: "Mark the build to keep the build forever.\n\
              BUILD: a number or a permalink such as lastSuccessfulBuild\n\
              The job's build discarder passes over a kept build; delete-builds still deletes it.",
    usage: "JOB BUILD",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| keep_build(ctx).boxed(),
};

const QUEUE: Command = Command {
    name: "queue",
    summary: "Lists the builds waiting in the queue: id, job, parameters, time waited and why \
              each waits.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| queue(ctx).boxed(),
};

const CANCEL_QUEUE: Command = Command {
    name: "cancel-queue",
    summary: "Removes waiting builds from the queue, by the ids `queue` shows.",
    usage: "ID ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| cancel_queue(ctx).boxed(),
};

const CLEAR_QUEUE: Command = Command {
    name: "clear-queue",
    summary: "Clears the build queue.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| clear_queue(ctx).boxed(),
};

const LIST_BUILDS: Command = Command {
    name: "list-builds",
    summary: "Lists a job's builds, newest first: number, result, start, duration, node, \
              cause, parameters, test counts, display name and description.\n\
              -n N: at most N builds (default 20)",
    usage: "JOB [-n N]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_builds(ctx).boxed(),
};

impl From<BuildError> for CommandError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Job(job) => job.into(),
            // Jenkins' `build` refuses an unknown name as a bad argument, with its usage.
            BuildError::BadParameter(ParameterError::Unknown { .. }) => {
                CommandError::BadArgs(e.to_string())
            }
            BuildError::BadParameter(_) => CommandError::IllegalArgument(e.to_string()),
            BuildError::Disabled(_)
            | BuildError::NotParameterized { .. }
            | BuildError::QueueFull => CommandError::IllegalState(e.to_string()),
            BuildError::Store(s) => CommandError::unexpected("build", s),
        }
    }
}

fn store_error(e: crate::store::StoreError) -> CommandError {
    CommandError::unexpected("build", e)
}

/// `-p NAME=VALUE` values as pairs.
fn parameters(values: &[&str]) -> Result<Vec<(String, String)>, CommandError> {
    values
        .iter()
        .map(|p| match p.split_once('=') {
            Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
            // args4j's words for a map option without `=`, as Jenkins prints them.
            None => Err(CommandError::BadArgs(format!(
                "An argument for setting a Map must contain a \"=\" (\"{}\" has none)",
                Shown(p)
            ))),
        })
        .collect()
}

async fn build(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(
        &ctx.args,
        &["-s", "-f", "-w", "-v", "-c"],
        &["-p", "-breakpoint", "-r"],
    )?;
    let job = args.one("JOB")?.to_owned();
    let given = parameters(&args.values("-p"))?;
    if let Some(retries) = args.value("-r")
        && retries.parse::<u32>().is_err()
    {
        return Err(CommandError::BadArgs(format!(
            "\"{}\" is not a valid value for \"-r\"",
            Shown(retries)
        )));
    }
    let breakpoint = match args.value("-breakpoint") {
        None => None,
        Some(text) => Some(BreakpointWhen::parse(text).ok_or_else(|| {
            CommandError::BadArgs(format!(
                "\"{}\" is not a valid value for \"-breakpoint\" (onFailure, always or never)",
                Shown(text)
            ))
        })?),
    };
    // The stored name: `job` may be another spelling of it.
    let record = ctx.job(&job, Permission::JobBuild).await?;
    let job = record.name.clone();
    // -c: Jenkins polls first, prints the polling log, and builds only on changes.
    if args.flag("-c") {
        let (changed, log) = crate::triggers::poll::has_changes(&ctx.state, &record)
            .await
            .map_err(|e| CommandError::unexpected("build", e))?;
        ctx.out.stdout(log).await;
        if !changed {
            return Ok(0);
        }
    }
    let follow = args.flag("-f");
    let sync = args.flag("-s") || follow;
    let wait = args.flag("-w") || sync;
    let by = ctx.actor();
    let mut queued =
        builds::enqueue_with_breakpoint(&ctx.state, &job, &given, CauseKind::Cli, &by, breakpoint)
            .await?;
    if !wait {
        return Ok(0);
    }
    // Dropped when the session stops the command (this future): with -s, if the user
    // interrupted, the build, or its queue item, is aborted; -f leaves it running.
    let mut on_leave = AbortOnLeave {
        state: ctx.state.clone(),
        stop: ctx.stop.clone(),
        by,
        job: job.clone(),
        queue_id: queued.id,
        item: queued.state.clone(),
        build: None,
        armed: sync && !follow,
    };
    let Some(number) = queued.started().await else {
        on_leave.armed = false;
        return Err(CommandError::IllegalState(format!(
            "The queued build of {job} was cancelled"
        )));
    };
    let running = ctx.state.builds.running_build(&job, number);
    on_leave.build = running.clone();
    ctx.out.stdout(format!("Started {job} #{number}\n")).await;
    if !sync {
        on_leave.armed = false;
        return Ok(0);
    }
    let path = ctx.state.builds.console_path(&job, number);
    let result = match &running {
        Some(build) if args.flag("-v") => {
            console::follow(&path, build.progress(), 0, &ctx.out, None)
                .await
                .map_err(|e| CommandError::unexpected("build", e))?
        }
        Some(build) => {
            let mut progress = build.progress();
            progress
                .wait_for(|p| p.result.is_some())
                .await
                .ok()
                .and_then(|p| p.result)
        }
        // Ended before it could be followed: the record has it all.
        None => {
            if args.flag("-v") {
                let len = file_len(&path).await;
                console::copy_range(&path, 0, len, &ctx.out, None)
                    .await
                    .map_err(|e| CommandError::unexpected("build", e))?;
            }
            builds::get(&ctx.state, &job, number)
                .await
                .map_err(store_error)?
                .and_then(|b| b.result)
        }
    };
    on_leave.armed = false;
    let Some(result) = result else {
        let reason = if builds::get(&ctx.state, &job, number)
            .await
            .map_err(store_error)?
            .is_none()
        {
            format!("build #{number} was deleted before its result could be read")
        } else {
            "the controller is shutting down".to_owned()
        };
        return Err(CommandError::unexpected("build", reason));
    };
    ctx.out
        .stdout(format!("Completed {job} #{number} : {result}\n"))
        .await;
    Ok(result.ordinal())
}

/// Aborts a `build -s`'s build (or cancels its queue item) when the command is dropped
/// before the build has ended because its user interrupted it. A client lost for any other
/// reason leaves the build running, with a line in its console; a controller shutting down
/// leaves it alone (it goes on when the controller is back).
struct AbortOnLeave {
    state: AppState,
    stop: StopCause,
    by: Actor,
    job: String,
    queue_id: u64,
    item: watch::Receiver<ItemState>,
    build: Option<Arc<RunningBuild>>,
    armed: bool,
}

impl Drop for AbortOnLeave {
    fn drop(&mut self) {
        if !self.armed || self.state.shutdown.is_cancelled() {
            return;
        }
        let why = match self.stop.get() {
            Some(Stop::Interrupted(why)) => why,
            Some(Stop::ClientLost(why)) => {
                if let Some(build) = &self.build {
                    tracing::info!(job = ?build.row.job, number = build.row.number, reason = ?why, "build -s client lost: the build goes on");
                    build.note(format!(
                        "The client waiting for this build (build -s by {}) went away: {why}. \
                         The build goes on.\n",
                        self.by.user
                    ));
                }
                return;
            }
            Some(Stop::Shutdown) | None => return,
        };
        if let Some(build) = &self.build {
            tracing::info!(job = ?build.row.job, number = build.row.number, reason = ?why, "build -s interrupted: aborting the build");
            builds::abort::asked_by(&self.state, build, &self.by);
            return;
        }
        let (state, by, job, id, mut item) = (
            self.state.clone(),
            self.by.clone(),
            self.job.clone(),
            self.queue_id,
            self.item.clone(),
        );
        tokio::spawn(async move {
            if builds::cancel_queued(&state, id).await.unwrap_or(false) {
                return;
            }
            // It started meanwhile: abort the build.
            let state_now = item
                .wait_for(|s| *s != ItemState::Waiting)
                .await
                .map(|s| s.clone());
            if let Ok(ItemState::Started { number }) = state_now
                && let Some(build) = state.builds.running_build(&job, number)
            {
                builds::abort::asked_by(&state, &build, &by);
            }
        });
    }
}

async fn file_len(path: &std::path::Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The build `which` names (a number or a permalink; the last build when absent).
async fn find_build(
    state: &AppState,
    job: &str,
    which: Option<&str>,
) -> Result<BuildRow, CommandError> {
    match builds::find(state, job, which.unwrap_or("lastBuild")).await {
        Ok(build) => Ok(build),
        Err(FindError::EmptyPermalink(_)) if which.is_none() => Err(CommandError::IllegalArgument(
            format!("{job} has no builds"),
        )),
        Err(e @ FindError::EmptyPermalink(_)) => Err(CommandError::IllegalState(e.to_string())),
        Err(e @ (FindError::NoSuchNumber(_) | FindError::Unknown(_))) => {
            Err(CommandError::IllegalArgument(e.to_string()))
        }
        Err(FindError::Store(e)) => Err(store_error(e)),
    }
}

async fn console_command(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-f", "-timestamps"], &["-n"])?;
    let (job, which) = match args.positional.as_slice() {
        [job] => (job.clone(), None),
        [job, which] => (job.clone(), Some(which.clone())),
        [] => return Err(CommandError::BadArgs("Argument \"JOB\" is required".into())),
        [_, _, extra @ ..] => {
            return Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                extra.join(" ")
            )));
        }
    };
    let lines = match args.value("-n") {
        None => None,
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            CommandError::BadArgs(format!("\"{n}\" is not a valid value for \"-n\""))
        })?),
    };
    // The stored name: `job` may be another spelling of it.
    let job = ctx.job(&job, Permission::JobRead).await?.name.clone();
    let row = find_build(&ctx.state, &job, which.as_deref()).await?;
    let path = ctx.state.builds.console_path(&job, row.number);
    let running = ctx.state.builds.running_build(&job, row.number);
    let len = ctx.state.builds.console_len(&job, row.number).await;
    let from = match lines {
        Some(n) => console::last_lines_offset(&path, len, n)
            .await
            .map_err(|e| CommandError::unexpected("console", e))?,
        None => 0,
    };
    let mut stamps = None;
    if args.flag("-timestamps") {
        let dir = ctx.state.builds.build_dir(&job, row.number);
        let (format, started) = (builds::timestamps::Format::Time, row.started_at_ms);
        stamps = tokio::task::spawn_blocking(move || {
            builds::timestamps::Annotator::open(&dir, from, format, started)
        })
        .await
        .ok()
        .flatten();
        if stamps.is_none() {
            return Err(CommandError::IllegalArgument(format!(
                "{job} #{} kept no timestamps: its job has no TimestamperBuildWrapper",
                row.number
            )));
        }
    }
    match running {
        Some(build) if args.flag("-f") => {
            console::follow(&path, build.progress(), from, &ctx.out, stamps.as_mut())
                .await
                .map_err(|e| CommandError::unexpected("console", e))?;
        }
        _ => {
            console::copy_range(&path, from, len, &ctx.out, stamps.as_mut())
                .await
                .map_err(|e| CommandError::unexpected("console", e))?;
        }
    }
    Ok(0)
}

async fn stop_builds(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    // The stored names, each once.
    let mut names: Vec<String> = Vec::new();
    for name in args.at_least_one("JOB_NAME")? {
        let stored = match ctx.job(name, Permission::JobCancel).await {
            Ok(record) => record.name.clone(),
            Err(CommandError::IllegalArgument(_)) => {
                return Err(CommandError::IllegalArgument(format!(
                    "Job not found: '{}'",
                    Shown(name)
                )));
            }
            Err(e) => return Err(e),
        };
        if !names.contains(&stored) {
            names.push(stored);
        }
    }
    let mut stopped = false;
    for name in &names {
        for build in ctx.state.builds.running_of(name) {
            builds::abort::asked_by(&ctx.state, &build, &ctx.actor());
            stopped = true;
            ctx.out
                .stdout(format!(
                    "Build '#{}' stopped for job '{name}'\n",
                    build.row.number
                ))
                .await;
        }
    }
    if !stopped {
        ctx.out.stdout("No builds stopped\n").await;
    }
    Ok(0)
}

/// Most ranges one `delete-builds` takes.
pub const MAX_RANGES: usize = 1000;

/// A `delete-builds` RANGE: `N`, `N-M` or a comma-separated list of them, as Jenkins'
/// `RangeSet` reads it; inclusive pairs.
pub(super) fn parse_ranges(text: &str) -> Result<Vec<(u64, u64)>, CommandError> {
    let bad = |why: &str| {
        CommandError::IllegalArgument(format!(
            "Unable to parse '{}', {why}",
            Shown(&text.chars().take(80).collect::<String>())
        ))
    };
    // Jenkins' RangeSet words for each way a range can be wrong.
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad("expected number"));
    let notation = "expected correct notation M,N or M-N";
    let parts: Vec<&str> = text.split(',').take(MAX_RANGES + 1).collect();
    if parts.len() > MAX_RANGES {
        return Err(bad(&format!("more than {MAX_RANGES} ranges")));
    }
    if parts.len() > 1 && parts.iter().any(|p| p.trim().is_empty()) {
        return Err(bad(notation));
    }
    parts
        .into_iter()
        .map(|part| {
            let (from, to) = match part.split_once('-') {
                Some((_, to)) if to.contains('-') => return Err(bad(notation)),
                Some((from, to)) => (number(from)?, number(to)?),
                None => {
                    let n = number(part)?;
                    (n, n)
                }
            };
            if from > to {
                return Err(bad("expected string with a range M-N where M<N"));
            }
            Ok((from, to))
        })
        .collect()
}

async fn delete_builds(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let (job, range) = args.two("JOB", "RANGE")?;
    let (job, range) = (job.to_owned(), range.to_owned());
    // The stored name: `job` may be another spelling of it.
    let job = ctx.job(&job, Permission::RunDelete).await?.name.clone();
    let ranges = parse_ranges(&range)?;
    let deleted = builds::delete::delete_ranges(&ctx.state, &job, ranges, &ctx.actor())
        .await
        .map_err(|e| match e {
            builds::delete::DeleteError::Running { .. } => {
                CommandError::IllegalState(e.to_string())
            }
            builds::delete::DeleteError::Store(s) => store_error(s),
        })?;
    tracing::info!(job = ?job, ?deleted, by = ?ctx.identity.name(), "builds deleted");
    ctx.out
        .stdout(format!("Deleted {} builds\n", deleted.len()))
        .await;
    Ok(0)
}

async fn keep_build(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let (job, which) = args.two("JOB", "BUILD")?;
    let (job, which) = (job.to_owned(), which.to_owned());
    // The stored name: `job` may be another spelling of it.
    let job = ctx.job(&job, Permission::RunUpdate).await?.name.clone();
    let build = find_build(&ctx.state, &job, Some(&which)).await?;
    if !builds::delete::keep_forever(&ctx.state, &job, build.number, true, &ctx.actor())
        .await
        .map_err(store_error)?
    {
        // Deleted between the two reads.
        return Err(CommandError::IllegalArgument(format!(
            "No such build #{}",
            build.number
        )));
    }
    Ok(0)
}

async fn queue(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    let now = builds::now_ms();
    let mut text = String::new();
    for item in ctx.state.builds.queue() {
        let params = match jobs::get(&ctx.state, &item.row.job).await {
            // Only the items of jobs the caller may read are listed.
            Ok(record) if !jobs::readable(&ctx.identity, &record) => continue,
            Ok(record) => record.config.shown_parameters(&item.row.params),
            Err(_) if !ctx.identity.has(Permission::JobRead) => continue,
            // A job gone meanwhile: no definitions to tell secrets by, so none shown.
            Err(_) => item
                .row
                .params
                .iter()
                .map(|(k, _)| format!("{k}=****"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let waited = (now - item.row.queued_at_ms).max(0) as f64 / 1000.0;
        // Users' text, on one line: a tab or line feed in a value is written `\t`, `\n`.
        text.push_str(&format!(
            "{}\t{}\t{}\t{waited:.1} s\t{}\n",
            item.row.id,
            Shown(&item.row.job),
            Shown(&params),
            Shown(&item.why)
        ));
        if text.len() > 64 * 1024 {
            ctx.out.stdout(std::mem::take(&mut text)).await;
        }
    }
    ctx.out.stdout(text).await;
    Ok(0)
}

async fn cancel_queue(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let ids = args.at_least_one("ID")?.to_vec();
    for_each_name(ctx, &ids, |ctx, text| {
        async move {
            let no_item =
                || CommandError::IllegalArgument(format!("No queue item '{}'", Shown(&text)));
            let id: u64 = text.parse().map_err(|_| no_item())?;
            // Job/Cancel on the item's job; an item of a job the caller cannot read is
            // not theirs to see.
            let queue = ctx.state.builds.queue();
            if let Some(item) = queue.iter().find(|q| q.row.id == id) {
                match ctx.job(&item.row.job, Permission::JobCancel).await {
                    Err(CommandError::IllegalArgument(_)) => return Err(no_item()),
                    other => other?,
                };
            }
            if builds::cancel_queued_by(&ctx.state, id, &ctx.actor())
                .await
                .map_err(store_error)?
            {
                Ok(())
            } else {
                Err(CommandError::IllegalArgument(format!(
                    "No queue item '{}' (it may have started already)",
                    Shown(&text)
                )))
            }
        }
        .boxed()
    })
    .await
}

/// Jenkins' `clear-queue`: every waiting build is cancelled (Overall/Administer, as
/// Jenkins asks); one that starts meanwhile runs.
async fn clear_queue(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    ctx.require(Permission::OverallAdminister)?;
    let waiting: Vec<u64> = ctx.state.builds.queue().iter().map(|q| q.row.id).collect();
    let mut cancelled = 0;
    for id in waiting {
        if builds::cancel_queued_by(&ctx.state, id, &ctx.actor())
            .await
            .map_err(store_error)?
        {
            cancelled += 1;
        }
    }
    tracing::info!(cancelled, by = ?ctx.identity.name(), "queue cleared");
    Ok(0)
}

async fn list_builds(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &["-n"])?;
    let job = args.one("JOB")?.to_owned();
    let limit = match args.value("-n") {
        None => 20,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= builds::MAX_HISTORY)
            .ok_or_else(|| {
                CommandError::BadArgs(format!(
                    "\"{n}\" is not a valid value for \"-n\" (0 to {})",
                    builds::MAX_HISTORY
                ))
            })?,
    };
    // The stored name: `job` may be another spelling of it.
    let job = ctx.job(&job, Permission::JobRead).await?.name.clone();
    let rows = builds::history(&ctx.state, &job, limit)
        .await
        .map_err(store_error)?;
    let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();
    let tests = ctx
        .state
        .store
        .call(move |c| {
            ids.iter()
                .map(|id| crate::store::builds::test_counts(c, *id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(store_error)?;
    let now = builds::now_ms();
    let mut text = String::new();
    for (row, tests) in rows.into_iter().zip(tests) {
        let tests = match tests {
            Some((total, failed, skipped)) => {
                format!("{total} tests, {failed} failed, {skipped} skipped")
            }
            None => "-".to_owned(),
        };
        let result = row.result.map_or("RUNNING", BuildResult::as_str);
        let end = row.finished_at_ms.unwrap_or(now);
        let seconds = (end - row.started_at_ms).max(0) as f64 / 1000.0;
        // As the build started: its own definitions tell which values are secrets.
        let params = match steward_protocol::job_xml::JobConfig::from_stored_xml(&row.config_xml) {
            Ok(config) => config.shown_parameters(&row.params),
            Err(_) => row
                .params
                .iter()
                .map(|(k, _)| format!("{k}=****"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        // What people wrote on it, each on this one line: `-` when none.
        let written = |text: &Option<String>| match text.as_deref() {
            None | Some("") => "-".to_owned(),
            Some(text) => Shown(text).to_string(),
        };
        text.push_str(&format!(
            "#{}\t{result}\t{}\t{seconds:.1} s\t{}\t{}\t{}\t{tests}\t{}\t{}\n",
            row.number,
            utc(row.started_at_ms),
            Shown(&row.node),
            Shown(&row.cause.describe(&row.cause_user)),
            Shown(&params),
            written(&row.display_name),
            written(&row.description),
        ));
    }
    ctx.out.stdout(text).await;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_need_a_value() {
        assert_eq!(
            parameters(&["A=1", "B==2", "C="]).unwrap(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "=2".to_owned()),
                ("C".to_owned(), String::new())
            ]
        );
        assert!(matches!(
            parameters(&["A"]),
            Err(CommandError::BadArgs(m)) if m.contains("must contain a \"=\" (\"A\" has none)")
        ));
    }

    #[test]
    fn ranges_read_as_jenkins_range_sets() {
        assert_eq!(parse_ranges("7").unwrap(), [(7, 7)]);
        assert_eq!(
            parse_ranges("1-5, 8 ,3-3").unwrap(),
            [(1, 5), (8, 8), (3, 3)]
        );
        for (bad, why) in [
            ("", "expected number"),
            ("1,,2", "expected correct notation M,N or M-N"),
            ("1,2,", "expected correct notation M,N or M-N"),
            ("x", "expected number"),
            ("-3", "expected number"),
            ("1-2-3", "expected correct notation M,N or M-N"),
            ("99999999999999999999", "expected number"),
            ("5-3", "expected string with a range M-N where M<N"),
        ] {
            match parse_ranges(bad) {
                Err(CommandError::IllegalArgument(m)) => {
                    assert!(m.starts_with(&format!("Unable to parse '{bad}'")), "{m}");
                    assert!(m.contains(why), "{bad}: {m}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let many = vec!["1"; MAX_RANGES + 1].join(",");
        assert!(parse_ranges(&many).is_err());
        assert_eq!(
            parse_ranges(&vec!["1"; MAX_RANGES].join(","))
                .unwrap()
                .len(),
            MAX_RANGES
        );
    }
}
