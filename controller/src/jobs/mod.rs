//! Job operations on top of the store: what the CLI commands and the REST API call. A job is
//! its name and its freestyle configuration ([`steward_protocol::job_xml`]); builds and the
//! queue build on these.
//!
//! Jobs are read from [`cache`], never from the store: a configuration is parsed once, when
//! it is written or at start-up, off the async threads ([`parse_config`]) and outside the
//! store's lock, which a parse of a large document would otherwise hold against every other
//! request. Names are checked and kept in NFC ([`steward_protocol::names`]); a lookup finds
//! a job under the name as given, else under its NFC form ([`cache::JobCache::find`]).

pub mod cache;
pub mod reload;

use std::sync::Arc;

use serde_json::{Value, json};
use steward_protocol::job_xml::{JobConfig, JobNameError};
use steward_protocol::names::{self, NameKind};
use steward_protocol::shown::Shown;
use steward_protocol::xml::{MAX_XML_BYTES, XmlError};

use crate::audit::{Action, Actor};
use crate::auth::{AccessDenied, Identity, Permission};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::jobs::{self, JobRecord, WriteOutcome};
use crate::store::name_keys::{self, Named};
use cache::Entry;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job of that name that the caller may read; `nearest` is the one of those they may
    /// read whose name is closest, as Jenkins' CLI suggests it.
    #[error("No such job '{}'{}", Shown(.name), perhaps(.nearest))]
    NotFound {
        name: String,
        nearest: Option<String>,
    },
    #[error(transparent)]
    Denied(#[from] AccessDenied),
    /// A rename of a job that builds or waits in the queue (Jenkins' words).
    #[error("Unable to rename a job while it is building.")]
    Building,
    /// A next build number below what the job has given out.
    #[error("The next build number of '{}' must be at least {lowest}: Steward never gives a build number out twice", Shown(.job))]
    NumberTooLow { job: String, lowest: u64 },
    #[error("Job '{}' already exists", Shown(.0))]
    Exists(String),
    #[error(
        "A job named ‘{}’ already exists (‘{}’ differs from it only by case or compatibility form)",
        Shown(.existing),
        Shown(.name)
    )]
    LooksLike { name: String, existing: String },
    #[error("{0}")]
    BadName(#[from] JobNameError),
    #[error("Job configuration is {0} bytes once written, over the limit of {MAX_XML_BYTES}")]
    TooLarge(usize),
    /// `--strict-jobs`: the job holds elements Steward does not act on (each line names one).
    #[error("{0}\nThis controller refuses such jobs (--strict-jobs).")]
    Ignored(String),
    /// A trigger's schedule names a time zone this controller does not know.
    #[error("{0}")]
    BadTrigger(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    pub fn not_found(name: &str) -> JobError {
        JobError::NotFound {
            name: name.to_owned(),
            nearest: None,
        }
    }
}

/// `; perhaps you meant 'NAME'?` when there is a nearest name.
fn perhaps(nearest: &Option<String>) -> String {
    match nearest {
        Some(name) => format!("; perhaps you meant '{}'?", Shown(name)),
        None => String::new(),
    }
}

/// Parses job XML from a user on the blocking pool: reading a document of up to
/// [`MAX_XML_BYTES`] is CPU work that must not hold one of the few async threads.
pub async fn parse_config(xml: String) -> Result<Result<JobConfig, XmlError>, JobError> {
    off_runtime(move || JobConfig::from_xml(&xml)).await
}

/// A build's snapshot of its job's configuration (stored XML), parsed on the blocking pool;
/// `None` when it cannot be read.
pub async fn parse_snapshot(xml: String) -> Option<JobConfig> {
    off_runtime(move || {
        JobConfig::from_stored_xml(&steward_protocol::xml::stored_without_nul(&xml)).ok()
    })
    .await
    .ok()
    .flatten()
}

/// Runs `f` on the blocking pool; a panic in it goes on in the caller.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Task(e.to_string()).into()),
    }
}

/// The record to store for `config` under `name` (already checked), written once here,
/// off the async threads, so the store call only copies text.
async fn storable(name: String, config: JobConfig) -> Result<Arc<JobRecord>, JobError> {
    let record = off_runtime(move || JobRecord::new(name, config)).await?;
    if record.xml.len() > MAX_XML_BYTES {
        return Err(JobError::TooLarge(record.xml.len()));
    }
    Ok(Arc::new(record))
}

fn outcome(outcome: WriteOutcome, name: &str) -> Result<(), JobError> {
    match outcome {
        WriteOutcome::Done => Ok(()),
        WriteOutcome::NotFound => Err(JobError::not_found(name)),
        WriteOutcome::NameTaken => Err(JobError::Exists(name.to_owned())),
        WriteOutcome::LooksLike(existing) => Err(JobError::LooksLike {
            name: name.to_owned(),
            existing,
        }),
    }
}

/// Reads every job into the cache: at start-up, before anything else reads or writes jobs.
/// A job whose XML cannot be read is kept as such: it can be deleted or replaced.
pub async fn load(state: &AppState) -> Result<(), JobError> {
    let rows = state.store.call(|c| jobs::rows(c)).await?;
    let entries = off_runtime(move || {
        rows.into_iter()
            .map(|(name, xml)| {
                let entry = match JobRecord::parse(name.clone(), &xml) {
                    Ok(record) => Entry::Ready(Arc::new(record)),
                    Err(e) => {
                        tracing::error!(job = ?name, error = ?e.to_string(), "cannot read a stored job");
                        Entry::Corrupt(e.to_string())
                    }
                };
                (name, entry)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    state.jobs.fill(entries);
    Ok(())
}

/// Checks a new job's name before its configuration is read, as Jenkins does: a bad name,
/// a taken one or one that looks like a taken one is refused. Gives back the name to use
/// (in NFC). The write checks again.
pub async fn check_new_name(state: &AppState, name: &str) -> Result<String, JobError> {
    let name = names::check(NameKind::Job, name)?;
    if state.jobs.find(&name).is_some() {
        return Err(JobError::Exists(name));
    }
    let key = name.clone();
    match state
        .store
        .call(move |c| name_keys::lookalike(c, Named::Jobs, &key, None))
        .await?
    {
        Some(existing) => Err(JobError::LooksLike { name, existing }),
        None => Ok(name),
    }
}

/// Stores `record` as a new job, and puts it in the cache in the same store call.
async fn insert(state: &AppState, record: Arc<JobRecord>) -> Result<(), JobError> {
    let (cache, stored) = (state.jobs.clone(), record.clone());
    let written = state
        .store
        .call(move |c| {
            let outcome = jobs::insert(c, &stored.name, &stored.xml)?;
            if outcome == WriteOutcome::Done {
                cache.put(stored);
            }
            Ok(outcome)
        })
        .await?;
    outcome(written, &record.name)
}

pub async fn create(
    state: &AppState,
    name: &str,
    config: JobConfig,
    by: &Actor,
) -> Result<(), JobError> {
    let name = names::check(NameKind::Job, name)?;
    strict(state, &config)?;
    crate::triggers::timer::check_zones(&config).map_err(JobError::BadTrigger)?;
    insert(state, storable(name.clone(), config).await?).await?;
    state
        .audit
        .record(by, Action::JobCreate, &name, Value::Null);
    Ok(())
}

/// With `--strict-jobs`, a job holding elements Steward does not act on is refused, each
/// named as the warning names it (with `ERROR` for `WARNING`, and "would").
fn strict(state: &AppState, config: &JobConfig) -> Result<(), JobError> {
    if !state.config.strict_jobs {
        return Ok(());
    }
    let ignored = config.ignored();
    if ignored.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = ignored
        .iter()
        .map(|i| {
            i.warning()
                .replacen("WARNING: ", "", 1)
                .replace("builds run without it", "builds would run without it")
        })
        .collect();
    Err(JobError::Ignored(lines.join("\n")))
}

/// The job `name` names (as stored, or in NFC); its `name` is the stored one, which build
/// records and the queue use.
pub async fn get(state: &AppState, name: &str) -> Result<Arc<JobRecord>, JobError> {
    match state.jobs.find(name) {
        Some((_, entry)) => Ok(entry.record()?),
        None => Err(JobError::not_found(name)),
    }
}

/// The job `name` names as `identity` may see it: as Jenkins does, a job they may not read
/// is not found (with the nearest name they may read suggested), and one they may read
/// but not act on is refused with the permission they miss. The job's own grants
/// (`AuthorizationMatrixProperty`) count with the global ones.
pub async fn get_as(
    state: &AppState,
    identity: &Identity,
    name: &str,
    permission: Permission,
) -> Result<Arc<JobRecord>, JobError> {
    let found = match state.jobs.find(name) {
        Some((_, entry)) => Some(entry.record()?),
        None => None,
    };
    match found {
        Some(record) if readable(identity, &record) => {
            identity.require_on(record.config.authorization(), permission)?;
            Ok(record)
        }
        _ => {
            let readable = readable_names(state, identity);
            let nearest = names::nearest(name, readable.iter().map(String::as_str));
            Err(JobError::NotFound {
                name: name.to_owned(),
                nearest: nearest.map(str::to_owned),
            })
        }
    }
}

/// Whether `identity` may see `record` at all (Job/Read on it).
pub fn readable(identity: &Identity, record: &JobRecord) -> bool {
    identity
        .on_job(record.config.authorization())
        .contains(Permission::JobRead)
}

/// Every readable job (see [`list`]) that `identity` may read, by name.
pub fn readable_by(state: &AppState, identity: &Identity) -> Vec<Arc<JobRecord>> {
    state
        .jobs
        .all()
        .iter()
        .filter_map(|e| e.record().ok())
        .filter(|r| readable(identity, r))
        .collect()
}

/// The names of the jobs `identity` may read, by name: those of [`readable_by`], and
/// those whose stored XML cannot be read if Job/Read is granted globally (so that they can
/// be found, deleted or replaced).
pub fn readable_names(state: &AppState, identity: &Identity) -> Vec<String> {
    state
        .jobs
        .entries()
        .into_iter()
        .filter(|(_, entry)| match entry {
            Entry::Ready(record) => readable(identity, record),
            Entry::Corrupt(_) => identity.has(Permission::JobRead),
        })
        .map(|(name, _)| name)
        .collect()
}

/// Every job that can be read, by name. One whose stored XML cannot be read (logged when
/// it was loaded) is left out rather than hide every other: `get-job` names what is wrong
/// with it, and it can be deleted or replaced.
pub async fn list(state: &AppState) -> Result<Vec<Arc<JobRecord>>, JobError> {
    let entries = state.jobs.all();
    Ok(entries.iter().filter_map(|e| e.record().ok()).collect())
}

pub async fn names(state: &AppState) -> Result<Vec<String>, JobError> {
    Ok(state.jobs.names())
}

/// The stored name `name` finds, or `NotFound`.
fn stored_name(state: &AppState, name: &str) -> Result<String, JobError> {
    state
        .jobs
        .find(name)
        .map(|(stored, _)| stored)
        .ok_or_else(|| JobError::not_found(name))
}

pub async fn update(
    state: &AppState,
    name: &str,
    config: JobConfig,
    by: &Actor,
) -> Result<(), JobError> {
    strict(state, &config)?;
    crate::triggers::timer::check_zones(&config).map_err(JobError::BadTrigger)?;
    let record = storable(stored_name(state, name)?, config).await?;
    let (cache, stored) = (state.jobs.clone(), record.clone());
    let written = state
        .store
        .call(move |c| {
            let outcome = jobs::update(c, &stored.name, &stored.xml)?;
            if outcome == WriteOutcome::Done {
                cache.put(stored);
            }
            Ok(outcome)
        })
        .await?;
    // Its queued builds may now go elsewhere, or wait for other reasons.
    state.builds.reschedule();
    outcome(written, &record.name)?;
    state
        .audit
        .record(by, Action::JobUpdate, &record.name, Value::Null);
    Ok(())
}

/// Enables or disables a job (`<disabled>`); a disabled job is not built, and disabling
/// one cancels its waiting builds, as Jenkins does.
pub async fn set_disabled(
    state: &AppState,
    name: &str,
    disabled: bool,
    by: &Actor,
) -> Result<(), JobError> {
    // Changed outside the store's lock, written only if no other write came meanwhile (an
    // `update-job` this would undo), else done again from the new configuration.
    let name = loop {
        let current = get(state, name).await?;
        let mut config = current.config.clone();
        config.disabled = disabled;
        let next = storable(current.name.clone(), config).await?;
        let cache = state.jobs.clone();
        let written = state
            .store
            .call(move |c| {
                if !cache.is_current(&current) {
                    return Ok(None);
                }
                let outcome = jobs::update(c, &next.name, &next.xml)?;
                if outcome == WriteOutcome::Done {
                    cache.put(next.clone());
                }
                Ok(Some((outcome, next.name.clone())))
            })
            .await?;
        if let Some((written, name)) = written {
            outcome(written, &name)?;
            break name;
        }
    };
    let action = if disabled {
        Action::JobDisable
    } else {
        Action::JobEnable
    };
    state.audit.record(by, action, &name, Value::Null);
    if disabled {
        crate::builds::cancel_queued_of(state, &name).await?;
    }
    state.builds.reschedule();
    Ok(())
}

pub async fn copy(state: &AppState, from: &str, to: &str, by: &Actor) -> Result<(), JobError> {
    let to = names::check(NameKind::Job, to)?;
    let source = get(state, from).await?;
    let from = source.name.clone();
    let record = off_runtime(move || JobRecord {
        name: to,
        config: source.config.clone(),
        xml: source.xml.clone(),
    })
    .await?;
    let to = record.name.clone();
    insert(state, Arc::new(record)).await?;
    state
        .audit
        .record(by, Action::JobCopy, &to, json!({ "from": from }));
    Ok(())
}

/// Renames a job, as Jenkins' `doRename`: refused while one of its builds runs or waits in
/// the queue. Its build records, consoles and artifacts, build counter, polled commits and
/// timer fires follow it; other jobs' triggers that name it are not rewritten. The new
/// stored name.
pub async fn rename(
    state: &AppState,
    from: &str,
    to: &str,
    by: &Actor,
) -> Result<String, JobError> {
    let to = names::check(NameKind::Job, to)?;
    let from = stored_name(state, from)?;
    if from == to {
        return Ok(to);
    }
    let waiting = state.builds.queue().iter().any(|q| q.row.job == from);
    if waiting || !state.builds.running_of(&from).is_empty() {
        return Err(JobError::Building);
    }
    let (old_dir, new_dir) = (state.builds.job_dir(&from), state.builds.job_dir(&to));
    let moved = match tokio::fs::rename(&old_dir, &new_dir).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(StoreError::Persist(format!(
                "cannot move {} to {}: {e}",
                old_dir.display(),
                new_dir.display()
            ))
            .into());
        }
    };
    let (cache, old, new) = (state.jobs.clone(), from.clone(), to.clone());
    let written = state
        .store
        .call(move |c| {
            let outcome = jobs::rename(c, &old, &new)?;
            if outcome == WriteOutcome::Done
                && let Some((_, Entry::Ready(record))) = cache.find(&old)
            {
                cache.remove(&old);
                cache.put(Arc::new(JobRecord {
                    name: new.clone(),
                    config: record.config.clone(),
                    xml: record.xml.clone(),
                }));
            }
            Ok(outcome)
        })
        .await;
    let done = matches!(written, Ok(WriteOutcome::Done));
    if moved
        && !done
        && let Err(e) = tokio::fs::rename(&new_dir, &old_dir).await
    {
        tracing::error!(job = ?from, error = %e, "cannot move a job's directory back after a failed rename");
    }
    outcome(written?, &to)?;
    tracing::info!(from = ?from, to = ?to, "job renamed");
    state
        .audit
        .record(by, Action::JobRename, &to, json!({ "from": from }));
    Ok(to)
}

/// Sets the number `job`'s next build gets; see [`jobs::set_next_build_number`].
pub async fn set_next_build_number(
    state: &AppState,
    job: &str,
    next: u64,
    by: &Actor,
) -> Result<(), JobError> {
    let job = stored_name(state, job)?;
    let key = job.clone();
    match state
        .store
        .call(move |c| jobs::set_next_build_number(c, &key, next))
        .await?
    {
        Ok(()) => {
            state.audit.record(
                by,
                Action::JobNextBuildNumber,
                &job,
                json!({ "next": next }),
            );
            Ok(())
        }
        Err(lowest) => Err(JobError::NumberTooLow { job, lowest }),
    }
}

/// How long deleting a job waits for its aborted builds to end before removing their logs.
pub const DELETE_ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes a job: its queued builds are cancelled, its running builds aborted (waiting at
/// most [`DELETE_ABORT_WAIT`]), and its build records and logs removed. Its build numbers
/// are never given out again.
pub async fn delete(state: &AppState, name: &str, by: &Actor) -> Result<(), JobError> {
    let stored = stored_name(state, name)?;
    let (cache, key) = (state.jobs.clone(), stored.clone());
    let deleted = state
        .store
        .call(move |c| {
            let deleted = jobs::delete(c, &key)?;
            cache.remove(&key);
            Ok(deleted)
        })
        .await?;
    if !deleted {
        return Err(JobError::not_found(name));
    }
    state
        .audit
        .record(by, Action::JobDelete, &stored, Value::Null);
    crate::builds::forget_job(state, &stored, by, DELETE_ABORT_WAIT).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
