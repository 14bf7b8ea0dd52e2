//! The build queue and build records.
//!
//! A queued build is a row of `queue` until an executor takes it; then, in one transaction,
//! the row goes, the job's next build number is taken and a `builds` row is written with the
//! job configuration as it was at that moment. A build is running while its `result` is
//! NULL; `step_index` and `step_log_start` say which shell step runs and where its output
//! begins in the console file, so a restarted controller can ask the agent for the rest.
//! Once the step's fate is known, [`end_step`] records it with the console length at that
//! moment (`step_log_end`) before anything else is written: a restarted controller cuts
//! the console back to that length and writes what follows again.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;
use super::jobs::take_build_number;

/// How a build ended; the ordinal is `build -s`'s exit code (compat §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildResult {
    Success,
    Unstable,
    Failure,
    NotBuilt,
    Aborted,
}

impl BuildResult {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Success => "SUCCESS",
            BuildResult::Unstable => "UNSTABLE",
            BuildResult::Failure => "FAILURE",
            BuildResult::NotBuilt => "NOT_BUILT",
            BuildResult::Aborted => "ABORTED",
        }
    }

    /// `build -s`'s exit code.
    pub fn ordinal(self) -> i32 {
        match self {
            BuildResult::Success => 0,
            BuildResult::Unstable => 1,
            BuildResult::Failure => 2,
            BuildResult::NotBuilt => 3,
            BuildResult::Aborted => 4,
        }
    }

    pub fn parse(text: &str) -> Option<BuildResult> {
        [
            BuildResult::Success,
            BuildResult::Unstable,
            BuildResult::Failure,
            BuildResult::NotBuilt,
            BuildResult::Aborted,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for BuildResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a build was asked for: Jenkins' build causes, which its console, `list-builds` and
/// the REST API show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseKind {
    /// The `build` command.
    Cli,
    /// A user through the REST API (`/job/NAME/build`).
    User,
    /// A `TimerTrigger`'s schedule.
    Timer,
    /// Polling found a change (`SCMTrigger`'s schedule, `notifyCommit`, a webhook).
    ScmChange,
    /// A GitHub push event to a job with `GitHubPushTrigger`; the user is the pusher.
    GitHubPush,
    /// Another build ended (`BuildTrigger`, `ReverseBuildTrigger`); the user is
    /// [`upstream_user`]: `JOB#N`.
    Upstream,
}

/// How an upstream build is written in a build's `cause_user`.
pub fn upstream_user(job: &str, number: u64) -> String {
    format!("{job}#{number}")
}

/// The job and number an [`upstream_user`] names.
pub fn parse_upstream(user: &str) -> Option<(&str, u64)> {
    let (job, number) = user.rsplit_once('#')?;
    Some((job, number.parse().ok()?))
}

impl CauseKind {
    const ALL: [CauseKind; 6] = [
        CauseKind::Cli,
        CauseKind::User,
        CauseKind::Timer,
        CauseKind::ScmChange,
        CauseKind::GitHubPush,
        CauseKind::Upstream,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Cli => "cli",
            CauseKind::User => "user",
            CauseKind::Timer => "timer",
            CauseKind::ScmChange => "scm",
            CauseKind::GitHubPush => "github",
            CauseKind::Upstream => "upstream",
        }
    }

    pub fn parse(text: &str) -> Option<CauseKind> {
        CauseKind::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The Java class of Jenkins' cause.
    pub fn class(self) -> &'static str {
        match self {
            CauseKind::Cli => "hudson.cli.BuildCommand$CLICause",
            CauseKind::User => "hudson.model.Cause$UserIdCause",
            CauseKind::Timer => "hudson.triggers.TimerTrigger$TimerTriggerCause",
            CauseKind::ScmChange => "hudson.triggers.SCMTrigger$SCMTriggerCause",
            CauseKind::GitHubPush => "com.cloudbees.jenkins.GitHubPushCause",
            CauseKind::Upstream => "hudson.model.Cause$UpstreamCause",
        }
    }

    /// The line Jenkins writes first in the console, e.g. `Started by user admin`.
    pub fn describe(self, user: &str) -> String {
        match self {
            CauseKind::Cli => format!("Started from command line by {user}"),
            CauseKind::User => format!("Started by user {user}"),
            CauseKind::Timer => "Started by timer".to_owned(),
            CauseKind::ScmChange => "Started by an SCM change".to_owned(),
            CauseKind::GitHubPush => format!("Started by GitHub push by {user}"),
            CauseKind::Upstream => match parse_upstream(user) {
                Some((job, number)) => {
                    format!("Started by upstream project \"{job}\" build number {number}")
                }
                None => format!("Started by upstream project {user}"),
            },
        }
    }
}

/// A build waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRow {
    pub id: u64,
    pub job: String,
    /// Every parameter of the job with its value, in definition order.
    pub params: Vec<(String, String)>,
    pub cause: CauseKind,
    /// The user who asked for it.
    pub cause_user: String,
    pub queued_at_ms: i64,
}

/// A build, running or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRow {
    /// Unique over all builds of all jobs, ever (names the build's steps on the agent).
    pub id: u64,
    pub job: String,
    pub number: u64,
    pub params: Vec<(String, String)>,
    pub cause: CauseKind,
    pub cause_user: String,
    /// The queue item it came from; `None` for builds recorded before queue ids were kept.
    pub queue_id: Option<u64>,
    pub node: String,
    pub executor: u32,
    /// Its workspace's name under the agent's `WORKDIR/workspace/`: the job's name, or
    /// `JOB@N` when builds of the job ran side by side on the node.
    pub workspace: String,
    /// The job's configuration when the build started.
    pub config_xml: String,
    pub queued_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `None` while the build runs.
    pub result: Option<BuildResult>,
    /// The shell step running (or last run), from 0.
    pub step_index: u32,
    /// Console length where that step's output begins; `None` until the first step is
    /// about to start.
    pub step_log_start: Option<u64>,
    /// How that step ended, once known: [`end_step`].
    pub step_end: Option<StepEnd>,
    /// Who aborted the build, once an abort reached its step.
    pub aborted_by: Option<String>,
    /// Kept forever (`keep-build`): the build discarder passes over it.
    pub keep_log: bool,
    /// Why the controller ended the build the way it did, when its steps did not say (its
    /// console could not be written).
    pub end_reason: Option<String>,
    /// A step ended with its `unstableReturn`: the build ends UNSTABLE at best.
    pub unstable: bool,
    /// Set by `set-build-description` or `submitDescription`; `None` until then.
    pub description: Option<String>,
    /// Set by `set-build-display-name`: shown instead of `#N`; `None` until then.
    pub display_name: Option<String>,
}

/// A step's recorded end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEnd {
    /// The step's exit status, or [`NO_EXIT_STATUS`] when it has none (lost, not started,
    /// the agent gone).
    pub code: i32,
    /// Console length when the end was decided: nothing after it is trusted on recovery.
    pub log_end: u64,
    /// The console line written after `log_end` (an error explaining the end), if any.
    pub note: Option<String>,
}

/// What a queued build becomes when an executor takes it.
pub struct Start<'a> {
    pub queue_id: u64,
    pub node: &'a str,
    pub executor: u32,
    /// See [`BuildRow::workspace`].
    pub workspace: &'a str,
    pub config_xml: &'a str,
    pub started_at_ms: i64,
}

fn encode_params(params: &[(String, String)]) -> String {
    serde_json::to_string(params).expect("strings serialize")
}

fn decode_params(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("build parameters: {e}")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
}

fn to_cause(text: &str) -> Result<CauseKind, StoreError> {
    CauseKind::parse(text).ok_or_else(|| StoreError::Corrupt(format!("build cause {text:?}")))
}

/// Adds a build to the queue; its queue id.
pub fn enqueue(
    conn: &Connection,
    job: &str,
    params: &[(String, String)],
    cause: CauseKind,
    cause_user: &str,
    queued_at_ms: i64,
) -> Result<u64, StoreError> {
    conn.execute(
        "INSERT INTO queue (job, params, cause, cause_user, queued_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            job,
            encode_params(params),
            cause.as_str(),
            cause_user,
            queued_at_ms
        ],
    )?;
    to_u64(conn.last_insert_rowid(), "queue id")
}

/// The queue, oldest first.
pub fn queued(conn: &Connection) -> Result<Vec<QueuedRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, job, params, cause, cause_user, queued_at_ms FROM queue ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (id, job, params, cause, cause_user, queued_at_ms) = row?;
        Ok(QueuedRow {
            id: to_u64(id, "queue id")?,
            job,
            params: decode_params(&params)?,
            cause: to_cause(&cause)?,
            cause_user,
            queued_at_ms,
        })
    })
    .collect()
}

/// Removes a queued build; `false` when it was not queued (started or gone).
pub fn dequeue(conn: &Connection, queue_id: u64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM queue WHERE id = ?1", [queue_id as i64])? == 1)
}

/// Moves a queued build to an executor: the build row, with its new number. `None` when the
/// item is no longer queued.
pub fn start(conn: &mut Connection, start: &Start<'_>) -> Result<Option<BuildRow>, StoreError> {
    let tx = conn.transaction()?;
    let item: Option<(String, String, String, String, i64)> = tx
        .query_row(
            "DELETE FROM queue WHERE id = ?1
             RETURNING job, params, cause, cause_user, queued_at_ms",
            [start.queue_id as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((job, params, cause, cause_user, queued_at_ms)) = item else {
        return Ok(None);
    };
    let number = take_build_number(&tx, &job)?;
    tx.execute(
        "INSERT INTO builds (job, number, params, cause, cause_user, queue_id, node, executor,
                             config_xml, queued_at_ms, started_at_ms, step_index, workspace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12)",
        params![
            job,
            number as i64,
            params,
            cause,
            cause_user,
            start.queue_id as i64,
            start.node,
            start.executor,
            start.config_xml,
            queued_at_ms,
            start.started_at_ms,
            start.workspace,
        ],
    )?;
    let id = to_u64(tx.last_insert_rowid(), "build id")?;
    tx.commit()?;
    Ok(Some(BuildRow {
        id,
        job,
        number,
        params: decode_params(&params)?,
        cause: to_cause(&cause)?,
        cause_user,
        queue_id: Some(start.queue_id),
        node: start.node.to_owned(),
        executor: start.executor,
        workspace: start.workspace.to_owned(),
        config_xml: start.config_xml.to_owned(),
        queued_at_ms,
        started_at_ms: start.started_at_ms,
        finished_at_ms: None,
        result: None,
        step_index: 0,
        step_log_start: None,
        step_end: None,
        aborted_by: None,
        keep_log: false,
        end_reason: None,
        unstable: false,
        description: None,
        display_name: None,
    }))
}

/// [`StepEnd::code`] of a step that has no exit status.
pub const NO_EXIT_STATUS: i32 = -1;

/// Records that shell step `index` of build `id` starts at console offset `log_start`.
pub fn set_step(conn: &Connection, id: u64, index: u32, log_start: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET step_index = ?1, step_log_start = ?2, step_code = NULL,
                step_log_end = NULL, step_note = NULL
         WHERE id = ?3",
        params![index, log_start as i64, id as i64],
    )?;
    Ok(())
}

/// Records how the current step of build `id` ended, and (in the same write) that the
/// build is UNSTABLE when the step ended with its `unstableReturn`.
pub fn end_step(
    conn: &Connection,
    id: u64,
    end: &StepEnd,
    unstable: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET step_code = ?1, step_log_end = ?2, step_note = ?3,
                unstable = unstable OR ?5
         WHERE id = ?4",
        params![end.code, end.log_end as i64, end.note, id as i64, unstable],
    )?;
    Ok(())
}

/// Records who aborted build `id`.
pub fn set_aborted(conn: &Connection, id: u64, by: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET aborted_by = ?1 WHERE id = ?2 AND aborted_by IS NULL",
        params![by, id as i64],
    )?;
    Ok(())
}

/// The closing text of a build's console that could not be written when the build ended
/// (the disk was full): it belongs at byte `at` of the console, and is written there as
/// soon as space allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTail {
    pub build_id: u64,
    pub job: String,
    pub number: u64,
    pub at: u64,
    pub text: String,
}

/// Records a build's end: its result, why the controller ended it so when the steps did
/// not say (`reason`), and the console text still to write (`tail`: the text and the
/// console length it follows).
pub fn finish(
    conn: &Connection,
    id: u64,
    result: BuildResult,
    finished_at_ms: i64,
    reason: Option<&str>,
    tail: Option<(&str, u64)>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET result = ?1, finished_at_ms = ?2, end_reason = ?3,
                console_tail = ?4, console_tail_at = ?5
         WHERE id = ?6",
        params![
            result.as_str(),
            finished_at_ms,
            reason,
            tail.map(|t| t.0),
            tail.map(|t| t.1 as i64),
            id as i64
        ],
    )?;
    Ok(())
}

/// Ended builds whose console still lacks its closing text.
pub fn console_tails(conn: &Connection) -> Result<Vec<ConsoleTail>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, job, number, console_tail_at, console_tail FROM builds
         WHERE console_tail IS NOT NULL AND result IS NOT NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (id, job, number, at, text) = row?;
        Ok(ConsoleTail {
            build_id: to_u64(id, "build id")?,
            job,
            number: to_u64(number, "build number")?,
            at: to_u64(at.unwrap_or_default(), "console tail offset")?,
            text,
        })
    })
    .collect()
}

/// Whether build `id` still has a record.
pub fn exists(conn: &Connection, id: u64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM builds WHERE id = ?1")?
        .exists(params![id as i64])?)
}

/// Forgets build `id`'s console tail: it is written.
pub fn clear_console_tail(conn: &Connection, id: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET console_tail = NULL, console_tail_at = NULL WHERE id = ?1",
        params![id as i64],
    )?;
    Ok(())
}

const BUILD_COLUMNS: &str = "id, job, number, params, cause_user, node, executor, config_xml,
    queued_at_ms, started_at_ms, finished_at_ms, result, step_index, step_log_start,
    step_code, step_log_end, step_note, aborted_by, cause, queue_id, workspace, keep_log,
    end_reason, unstable, description, display_name";

fn build_row(r: &Row<'_>) -> rusqlite::Result<RawBuild> {
    Ok(RawBuild {
        id: r.get(0)?,
        job: r.get(1)?,
        number: r.get(2)?,
        params: r.get(3)?,
        cause_user: r.get(4)?,
        node: r.get(5)?,
        executor: r.get(6)?,
        config_xml: r.get(7)?,
        queued_at_ms: r.get(8)?,
        started_at_ms: r.get(9)?,
        finished_at_ms: r.get(10)?,
        result: r.get(11)?,
        step_index: r.get(12)?,
        step_log_start: r.get(13)?,
        step_code: r.get(14)?,
        step_log_end: r.get(15)?,
        step_note: r.get(16)?,
        aborted_by: r.get(17)?,
        cause: r.get(18)?,
        queue_id: r.get(19)?,
        workspace: r.get(20)?,
        keep_log: r.get(21)?,
        end_reason: r.get(22)?,
        unstable: r.get(23)?,
        description: r.get(24)?,
        display_name: r.get(25)?,
    })
}

struct RawBuild {
    id: i64,
    job: String,
    number: i64,
    params: String,
    cause_user: String,
    node: String,
    executor: u32,
    config_xml: String,
    queued_at_ms: i64,
    started_at_ms: i64,
    finished_at_ms: Option<i64>,
    result: Option<String>,
    step_index: u32,
    step_log_start: Option<i64>,
    step_code: Option<i32>,
    step_log_end: Option<i64>,
    step_note: Option<String>,
    aborted_by: Option<String>,
    cause: String,
    queue_id: Option<i64>,
    workspace: Option<String>,
    keep_log: bool,
    end_reason: Option<String>,
    unstable: bool,
    description: Option<String>,
    display_name: Option<String>,
}

impl RawBuild {
    fn into_row(self) -> Result<BuildRow, StoreError> {
        let result = match self.result {
            None => None,
            Some(text) => Some(BuildResult::parse(&text).ok_or_else(|| {
                StoreError::Corrupt(format!("result {text:?} of {} #{}", self.job, self.number))
            })?),
        };
        Ok(BuildRow {
            id: to_u64(self.id, "build id")?,
            number: to_u64(self.number, "build number")?,
            params: decode_params(&self.params)?,
            step_log_start: self
                .step_log_start
                .map(|v| to_u64(v, "step offset"))
                .transpose()?,
            cause: to_cause(&self.cause)?,
            queue_id: self.queue_id.map(|q| to_u64(q, "queue id")).transpose()?,
            workspace: self.workspace.unwrap_or_else(|| self.job.clone()),
            job: self.job,
            cause_user: self.cause_user,
            node: self.node,
            executor: self.executor,
            config_xml: self.config_xml,
            queued_at_ms: self.queued_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            result,
            step_index: self.step_index,
            step_end: match (self.step_code, self.step_log_end) {
                (Some(code), Some(end)) => Some(StepEnd {
                    code,
                    log_end: to_u64(end, "step end")?,
                    note: self.step_note,
                }),
                _ => None,
            },
            aborted_by: self.aborted_by,
            keep_log: self.keep_log,
            end_reason: self.end_reason,
            unstable: self.unstable,
            description: self.description,
            display_name: self.display_name,
        })
    }
}

fn query_builds(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<BuildRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {BUILD_COLUMNS} FROM builds {filter}"))?;
    let rows = stmt.query_map(params, build_row)?;
    rows.map(|row| row?.into_row()).collect()
}

/// Builds that have not ended, in the order they started.
pub fn running(conn: &Connection) -> Result<Vec<BuildRow>, StoreError> {
    query_builds(conn, "WHERE result IS NULL ORDER BY id", [])
}

pub fn get(conn: &Connection, job: &str, number: u64) -> Result<Option<BuildRow>, StoreError> {
    Ok(query_builds(
        conn,
        "WHERE job = ?1 AND number = ?2",
        params![job, number as i64],
    )?
    .pop())
}

/// Jenkins' permalinks: names for "the newest build that …".
pub const PERMALINKS: &[(&str, &str)] = &[
    ("lastBuild", "TRUE"),
    ("lastCompletedBuild", "result IS NOT NULL"),
    ("lastSuccessfulBuild", "result IN ('SUCCESS', 'UNSTABLE')"),
    ("lastStableBuild", "result = 'SUCCESS'"),
    ("lastUnstableBuild", "result = 'UNSTABLE'"),
    ("lastFailedBuild", "result = 'FAILURE'"),
    (
        "lastUnsuccessfulBuild",
        "result IS NOT NULL AND result <> 'SUCCESS'",
    ),
];

/// The newest build of `job` that permalink `name` selects; `Err(())` for an unknown name.
pub fn permalink(
    conn: &Connection,
    job: &str,
    name: &str,
) -> Result<Result<Option<BuildRow>, ()>, StoreError> {
    let Some((_, condition)) = PERMALINKS.iter().find(|(n, _)| *n == name) else {
        return Ok(Err(()));
    };
    let filter = format!("WHERE job = ?1 AND {condition} ORDER BY number DESC LIMIT 1");
    Ok(Ok(query_builds(conn, &filter, [job])?.pop()))
}

/// A job's oldest build still on record.
pub fn oldest(conn: &Connection, job: &str) -> Result<Option<BuildRow>, StoreError> {
    Ok(query_builds(conn, "WHERE job = ?1 ORDER BY number ASC LIMIT 1", [job])?.pop())
}

/// Every job's newest completed build: job, number and result, by job.
pub fn last_completed(conn: &Connection) -> Result<Vec<(String, u64, BuildResult)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT job, MAX(number), result FROM builds WHERE result IS NOT NULL
         GROUP BY job ORDER BY job",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (job, number, result) = row?;
        let result = BuildResult::parse(&result)
            .ok_or_else(|| StoreError::Corrupt(format!("result {result:?} of {job} #{number}")))?;
        Ok((job, to_u64(number, "build number")?, result))
    })
    .collect()
}

/// A job's build numbers, newest first, at most `limit`, each with whether it still runs:
/// what lists of builds need, without each build's stored configuration.
pub fn numbers(conn: &Connection, job: &str, limit: u32) -> Result<Vec<(u64, bool)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT number, result IS NULL FROM builds WHERE job = ?1 ORDER BY number DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![job, limit], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
    })?;
    rows.map(|row| {
        let (number, running) = row?;
        Ok((to_u64(number, "build number")?, running))
    })
    .collect()
}

/// A job's builds, newest first, at most `limit`.
pub fn of_job(conn: &Connection, job: &str, limit: u32) -> Result<Vec<BuildRow>, StoreError> {
    query_builds(
        conn,
        "WHERE job = ?1 ORDER BY number DESC LIMIT ?2",
        params![job, limit],
    )
}

/// What [`delete_in_ranges`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeDeletion {
    /// These ended builds were deleted, oldest first.
    Deleted(Vec<u64>),
    /// Nothing was deleted: these builds in the ranges still run.
    Running(Vec<u64>),
}

/// Deletes the builds of `job` whose numbers fall in any of `ranges` (inclusive), in one
/// transaction; when any of them still runs, deletes nothing. The number counter stays.
pub fn delete_in_ranges(
    conn: &mut Connection,
    job: &str,
    ranges: &[(u64, u64)],
) -> Result<RangeDeletion, StoreError> {
    let tx = conn.transaction()?;
    let found = find_in_ranges(&tx, job, ranges)?;
    if let RangeDeletion::Deleted(numbers) = &found {
        delete_numbers(&tx, job, numbers)?;
        tx.commit()?;
    }
    Ok(found)
}

/// What [`delete_in_ranges`] would delete, without deleting anything.
pub fn find_in_ranges(
    conn: &Connection,
    job: &str,
    ranges: &[(u64, u64)],
) -> Result<RangeDeletion, StoreError> {
    let mut found = std::collections::BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT number, result IS NULL FROM builds WHERE job = ?1 AND number BETWEEN ?2 AND ?3",
        )?;
        let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for &(from, to) in ranges {
            let rows = stmt.query_map(params![job, bound(from), bound(to)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
            })?;
            for row in rows {
                let (number, running) = row?;
                found.insert(to_u64(number, "build number")?, running);
            }
        }
    }
    let running: Vec<u64> = found.iter().filter(|(_, r)| **r).map(|(n, _)| *n).collect();
    if !running.is_empty() {
        return Ok(RangeDeletion::Running(running));
    }
    Ok(RangeDeletion::Deleted(found.into_keys().collect()))
}

/// Marks a build to be kept forever, or not; `false` when there is no such build.
pub fn set_keep_log(
    conn: &Connection,
    job: &str,
    number: u64,
    keep: bool,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE builds SET keep_log = ?3 WHERE job = ?1 AND number = ?2",
        params![job, number as i64, i64::from(keep)],
    )?;
    Ok(changed == 1)
}

/// Sets (or, with `None`, clears) a build's description; `false` when there is no such
/// build.
pub fn set_description(
    conn: &Connection,
    job: &str,
    number: u64,
    description: Option<&str>,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE builds SET description = ?3 WHERE job = ?1 AND number = ?2",
        params![job, number as i64, description],
    )?;
    Ok(changed == 1)
}

/// Sets (or, with `None`, clears) a build's display name; `false` when there is no such
/// build.
pub fn set_display_name(
    conn: &Connection,
    job: &str,
    number: u64,
    display_name: Option<&str>,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE builds SET display_name = ?3 WHERE job = ?1 AND number = ?2",
        params![job, number as i64, display_name],
    )?;
    Ok(changed == 1)
}

/// Applies a job's build discarder: of its builds, newest first, those past the first
/// `num_to_keep` and those started before `started_before_ms` are deleted, except (as in
/// Jenkins) running builds, builds kept forever, and the last successful and last stable
/// builds. Returns the numbers deleted, oldest first.
pub fn discard(
    conn: &mut Connection,
    job: &str,
    num_to_keep: Option<u32>,
    started_before_ms: Option<i64>,
) -> Result<Vec<u64>, StoreError> {
    let tx = conn.transaction()?;
    let newest = |condition: &str| -> Result<Option<i64>, StoreError> {
        Ok(tx.query_row(
            &format!("SELECT MAX(number) FROM builds WHERE job = ?1 AND {condition}"),
            [job],
            |r| r.get::<_, Option<i64>>(0),
        )?)
    };
    let last_successful = newest("result IN ('SUCCESS', 'UNSTABLE')")?;
    let last_stable = newest("result = 'SUCCESS'")?;
    let mut doomed = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT number, result IS NULL OR keep_log <> 0, started_at_ms FROM builds
             WHERE job = ?1 ORDER BY number DESC",
        )?;
        let rows = stmt.query_map([job], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for (position, row) in rows.enumerate() {
            let (number, running_or_kept, started_at_ms) = row?;
            let kept =
                running_or_kept || Some(number) == last_successful || Some(number) == last_stable;
            let too_many = num_to_keep.is_some_and(|n| position as u64 >= u64::from(n));
            let too_old = started_before_ms.is_some_and(|t| started_at_ms < t);
            if !kept && (too_many || too_old) {
                doomed.push(to_u64(number, "build number")?);
            }
        }
    }
    doomed.reverse();
    delete_numbers(&tx, job, &doomed)?;
    tx.commit()?;
    Ok(doomed)
}

fn delete_numbers(conn: &Connection, job: &str, numbers: &[u64]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("DELETE FROM builds WHERE job = ?1 AND number = ?2")?;
    for &number in numbers {
        stmt.execute(params![job, number as i64])?;
    }
    Ok(())
}

/// Deletes a job's queue items and build records (its number counter stays).
/// Records build `id`'s test counts.
pub fn set_test_counts(
    conn: &Connection,
    id: u64,
    total: u64,
    failed: u64,
    skipped: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE builds SET test_total = ?2, test_failed = ?3, test_skipped = ?4 WHERE id = ?1",
        params![id as i64, total as i64, failed as i64, skipped as i64],
    )?;
    Ok(())
}

/// Build `id`'s test counts `(total, failed, skipped)`, when it recorded tests.
pub fn test_counts(conn: &Connection, id: u64) -> Result<Option<(u64, u64, u64)>, StoreError> {
    let counts: Option<(Option<i64>, Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT test_total, test_failed, test_skipped FROM builds WHERE id = ?1",
            [id as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match counts {
        Some((Some(t), Some(f), Some(s))) => Some((t as u64, f as u64, s as u64)),
        _ => None,
    })
}

/// The newest build of `job` that recorded tests: its number, total and failed.
pub fn last_test_counts(
    conn: &Connection,
    job: &str,
) -> Result<Option<(u64, u64, u64)>, StoreError> {
    let found: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT number, test_total, test_failed FROM builds \
             WHERE job = ?1 AND test_total IS NOT NULL ORDER BY number DESC LIMIT 1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(found.map(|(n, t, f)| (n as u64, t as u64, f as u64)))
}

/// The number of the build of `job` before `number`, if one is on record.
pub fn previous_number(
    conn: &Connection,
    job: &str,
    number: u64,
) -> Result<Option<u64>, StoreError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT number FROM builds WHERE job = ?1 AND number < ?2 ORDER BY number DESC LIMIT 1",
            params![job, number as i64],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.map(|n| n as u64))
}

pub fn delete_job(conn: &mut Connection, job: &str) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM queue WHERE job = ?1", [job])?;
    tx.execute("DELETE FROM builds WHERE job = ?1", [job])?;
    super::polls::forget_job(&tx, job)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[tokio::test]
    async fn a_queued_build_starts_once_with_the_next_number_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        let (first, second) = store
            .call(|c| {
                let a = enqueue(c, "j", &[pair("P", "1")], CauseKind::Cli, "alice", 10)?;
                let b = enqueue(c, "j", &[], CauseKind::User, "bob", 11)?;
                assert_eq!(queued(c)?.iter().map(|q| q.id).collect::<Vec<_>>(), [a, b]);
                let taking = |id| Start {
                    queue_id: id,
                    node: "n1",
                    executor: 1,
                    workspace: if id == a { "j" } else { "j@2" },
                    config_xml: "<project/>",
                    started_at_ms: 20,
                };
                let first = start(c, &taking(a))?.expect("queued");
                assert!(start(c, &taking(a))?.is_none(), "started twice");
                let second = start(c, &taking(b))?.expect("queued");
                assert_eq!(second.queue_id, Some(b));
                assert!(queued(c)?.is_empty());
                set_step(c, first.id, 1, 99)?;
                set_aborted(c, first.id, "carol")?;
                set_aborted(c, first.id, "dave")?;
                end_step(
                    c,
                    first.id,
                    &StepEnd {
                        code: 143,
                        log_end: 120,
                        note: Some("killed".into()),
                    },
                    false,
                )?;
                finish(c, second.id, BuildResult::Failure, 30, None, None)?;
                Ok((first, second))
            })
            .await
            .unwrap();
        assert_eq!((first.number, second.number), (1, 2));
        assert_eq!(first.params, [pair("P", "1")]);
        drop(store);

        let store = Store::open(&path).unwrap();
        let (running_now, got, history) = store
            .call(|c| Ok((running(c)?, get(c, "j", 2)?, of_job(c, "j", 10)?)))
            .await
            .unwrap();
        assert_eq!(running_now.len(), 1);
        assert_eq!(
            (running_now[0].step_index, running_now[0].step_log_start),
            (1, Some(99))
        );
        assert_eq!(
            running_now[0].step_end,
            Some(StepEnd {
                code: 143,
                log_end: 120,
                note: Some("killed".into())
            })
        );
        assert_eq!(running_now[0].aborted_by.as_deref(), Some("carol"));
        assert_eq!(running_now[0].workspace, "j");
        let got = got.unwrap();
        assert_eq!(got.workspace, "j@2");
        assert_eq!(got.result, Some(BuildResult::Failure));
        assert_eq!(got.finished_at_ms, Some(30));
        assert_eq!(got.cause_user, "bob");
        assert_eq!(
            (got.cause, got.queue_id),
            (CauseKind::User, second.queue_id)
        );
        assert_eq!(first.cause, CauseKind::Cli);
        let (last, failed, stable, bogus) = store
            .call(|c| {
                Ok((
                    permalink(c, "j", "lastBuild")?,
                    permalink(c, "j", "lastFailedBuild")?,
                    permalink(c, "j", "lastStableBuild")?,
                    permalink(c, "j", "nextBuild")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(last.unwrap().map(|b| b.number), Some(2));
        assert_eq!(failed.unwrap().map(|b| b.number), Some(2));
        assert_eq!(stable.unwrap(), None);
        assert_eq!(bogus, Err(()));
        assert_eq!(history.iter().map(|b| b.number).collect::<Vec<_>>(), [2, 1]);
        let (first_of_job, completed) = store
            .call(|c| Ok((oldest(c, "j")?, last_completed(c)?)))
            .await
            .unwrap();
        assert_eq!(first_of_job.map(|b| b.number), Some(1));
        let listed = store.call(|c| numbers(c, "j", 10)).await.unwrap();
        assert_eq!(listed, [(2, false), (1, true)]);
        assert_eq!(completed, [("j".to_owned(), 2, BuildResult::Failure)]);
    }

    #[tokio::test]
    async fn deleting_a_job_keeps_its_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let numbers = store
            .call(|c| {
                let mut numbers = Vec::new();
                for _ in 0..2 {
                    let id = enqueue(c, "j", &[], CauseKind::Cli, "u", 1)?;
                    let s = Start {
                        queue_id: id,
                        node: "n",
                        executor: 0,
                        workspace: "j",
                        config_xml: "<project/>",
                        started_at_ms: 2,
                    };
                    numbers.push(start(c, &s)?.unwrap().number);
                    enqueue(c, "j", &[], CauseKind::Cli, "u", 3)?;
                    delete_job(c, "j")?;
                    assert!(queued(c)?.is_empty() && of_job(c, "j", 10)?.is_empty());
                }
                Ok(numbers)
            })
            .await
            .unwrap();
        assert_eq!(numbers, [1, 2]);
    }

    /// Runs builds of job "j" started at the given times, ending with the given results
    /// (`None`: still running); returns their numbers.
    fn run_builds(
        c: &mut Connection,
        builds: &[(i64, Option<BuildResult>)],
    ) -> Result<Vec<u64>, StoreError> {
        let mut numbers = Vec::new();
        for &(started_at_ms, result) in builds {
            let queue_id = enqueue(c, "j", &[], CauseKind::Cli, "u", started_at_ms)?;
            let s = Start {
                queue_id,
                node: "n",
                executor: 0,
                workspace: "j",
                config_xml: "<project/>",
                started_at_ms,
            };
            let row = start(c, &s)?.expect("queued");
            if let Some(result) = result {
                finish(c, row.id, result, started_at_ms + 1, None, None)?;
            }
            numbers.push(row.number);
        }
        Ok(numbers)
    }

    fn left(c: &Connection) -> Result<Vec<u64>, StoreError> {
        let mut numbers: Vec<u64> = of_job(c, "j", 100)?.iter().map(|b| b.number).collect();
        numbers.reverse();
        Ok(numbers)
    }

    #[tokio::test]
    async fn ranges_delete_ended_builds_or_nothing_when_one_runs() {
        use BuildResult::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                let ended = [(1, Some(Success)); 6];
                assert_eq!(run_builds(c, &ended)?, [1, 2, 3, 4, 5, 6]);
                let d = delete_in_ranges(c, "j", &[(2, 3), (3, 3), (5, 9), (u64::MAX, u64::MAX)])?;
                assert_eq!(d, RangeDeletion::Deleted(vec![2, 3, 5, 6]));
                assert_eq!(left(c)?, [1, 4]);
                assert_eq!(
                    delete_in_ranges(c, "other", &[(1, 9)])?,
                    RangeDeletion::Deleted(vec![])
                );
                assert_eq!(run_builds(c, &[(2, None)])?, [7], "numbers are not reused");
                let d = delete_in_ranges(c, "j", &[(1, 1), (6, 10)])?;
                assert_eq!(d, RangeDeletion::Running(vec![7]));
                assert_eq!(left(c)?, [1, 4, 7], "nothing deleted");
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_discarder_keeps_running_kept_last_successful_and_last_stable_builds() {
        use BuildResult::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                // 1 stable, 2 unstable (last successful), 3-5 failed, 6 running.
                let builds = [
                    (10, Some(Success)),
                    (20, Some(Unstable)),
                    (30, Some(Failure)),
                    (40, Some(Failure)),
                    (50, Some(Aborted)),
                    (60, None),
                ];
                run_builds(c, &builds)?;
                assert_eq!(discard(c, "j", None, None)?, Vec::<u64>::new());
                assert_eq!(discard(c, "j", Some(3), None)?, [3]);
                assert_eq!(left(c)?, [1, 2, 4, 5, 6]);
                assert_eq!(discard(c, "j", None, Some(45))?, [4]);
                assert!(set_keep_log(c, "j", 5, true)?);
                assert!(!set_keep_log(c, "j", 99, true)?);
                assert_eq!(discard(c, "j", Some(0), Some(i64::MAX))?, Vec::<u64>::new());
                assert!(get(c, "j", 5)?.unwrap().keep_log);
                assert!(set_keep_log(c, "j", 5, false)?);
                assert_eq!(discard(c, "j", Some(0), Some(i64::MAX))?, [5]);
                assert_eq!(left(c)?, [1, 2, 6]);
                Ok(())
            })
            .await
            .unwrap();
    }

    #[test]
    fn results_name_and_number_as_jenkins_does() {
        for (result, text, code) in [
            (BuildResult::Success, "SUCCESS", 0),
            (BuildResult::Unstable, "UNSTABLE", 1),
            (BuildResult::Failure, "FAILURE", 2),
            (BuildResult::NotBuilt, "NOT_BUILT", 3),
            (BuildResult::Aborted, "ABORTED", 4),
        ] {
            assert_eq!((result.as_str(), result.ordinal()), (text, code));
            assert_eq!(BuildResult::parse(text), Some(result));
        }
        assert_eq!(BuildResult::parse("success"), None);
    }
}
