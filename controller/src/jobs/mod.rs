//! Job operations on top of the store: what the CLI commands (and later the REST API and
//! web UI) call. A job is its name and its freestyle configuration
//! ([`steward_protocol::job_xml`]); builds and the queue build on these.

use steward_protocol::job_xml::{JobConfig, JobNameError, validate_job_name};
use steward_protocol::xml::MAX_XML_BYTES;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::jobs::{self, JobRecord, WriteOutcome};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("No such job '{0}'")]
    NotFound(String),
    #[error("Job '{0}' already exists")]
    Exists(String),
    #[error("{0}")]
    BadName(#[from] JobNameError),
    #[error("Job configuration is {0} bytes once written, over the limit of {MAX_XML_BYTES}")]
    TooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks what will be stored: the name, and that the written XML can be read back.
fn check_storable(name: &str, config: &JobConfig) -> Result<(), JobError> {
    validate_job_name(name)?;
    let written = config.to_xml().len();
    if written > MAX_XML_BYTES {
        return Err(JobError::TooLarge(written));
    }
    Ok(())
}

fn outcome(outcome: WriteOutcome, name: &str) -> Result<(), JobError> {
    match outcome {
        WriteOutcome::Done => Ok(()),
        WriteOutcome::NotFound => Err(JobError::NotFound(name.to_owned())),
        WriteOutcome::NameTaken => Err(JobError::Exists(name.to_owned())),
    }
}

pub async fn create(state: &AppState, name: &str, config: JobConfig) -> Result<(), JobError> {
    check_storable(name, &config)?;
    let key = name.to_owned();
    let written = state
        .store
        .call(move |c| jobs::insert(c, &key, &config))
        .await?;
    outcome(written, name)
}

pub async fn get(state: &AppState, name: &str) -> Result<JobRecord, JobError> {
    let key = name.to_owned();
    state
        .store
        .call(move |c| jobs::get(c, &key))
        .await?
        .ok_or_else(|| JobError::NotFound(name.to_owned()))
}

pub async fn names(state: &AppState) -> Result<Vec<String>, JobError> {
    Ok(state.store.call(|c| jobs::names(c)).await?)
}

pub async fn update(state: &AppState, name: &str, config: JobConfig) -> Result<(), JobError> {
    check_storable(name, &config)?;
    let key = name.to_owned();
    let written = state
        .store
        .call(move |c| jobs::update(c, &key, &config))
        .await?;
    // Its queued builds may now go elsewhere, or wait for other reasons.
    state.builds.reschedule();
    outcome(written, name)
}

/// Enables or disables a job (`<disabled>`); a disabled job is not built, and disabling
/// one cancels its waiting builds, as Jenkins does.
pub async fn set_disabled(state: &AppState, name: &str, disabled: bool) -> Result<(), JobError> {
    let key = name.to_owned();
    let written = state
        .store
        .call(move |c| jobs::modify(c, &key, |config| config.disabled = disabled))
        .await?;
    outcome(written, name)?;
    if disabled {
        crate::builds::cancel_queued_of(state, name).await?;
    }
    state.builds.reschedule();
    Ok(())
}

pub async fn copy(state: &AppState, from: &str, to: &str) -> Result<(), JobError> {
    validate_job_name(to)?;
    let (source, target) = (from.to_owned(), to.to_owned());
    let written = state
        .store
        .call(move |c| jobs::copy(c, &source, &target))
        .await?;
    match written {
        WriteOutcome::NotFound => Err(JobError::NotFound(from.to_owned())),
        other => outcome(other, to),
    }
}

/// How long deleting a job waits for its aborted builds to end before removing their logs.
pub const DELETE_ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes a job: its queued builds are cancelled, its running builds aborted (waiting at
/// most [`DELETE_ABORT_WAIT`]), and its build records and logs removed. Its build numbers
/// are never given out again.
pub async fn delete(state: &AppState, name: &str, by: &str) -> Result<(), JobError> {
    let key = name.to_owned();
    if !state.store.call(move |c| jobs::delete(c, &key)).await? {
        return Err(JobError::NotFound(name.to_owned()));
    }
    crate::builds::forget_job(state, name, by, DELETE_ABORT_WAIT).await?;
    Ok(())
}
