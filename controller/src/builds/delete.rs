//! Deleting ended builds: by number (`delete-builds`, `POST /job/NAME/N/doDelete`), and by
//! the job's build discarder each time one of its builds ends ("Discard old builds"),
//! which passes over builds kept forever (`keep-build`).
//!
//! The records go first, in one transaction, then the builds' directories (their
//! consoles). A running build is never deleted: asked for by number, the whole request is
//! refused; the discarder passes over it, as Jenkins' does. Build numbers are not reused.
//!
//! Deleting is how an operator makes room on a full disk, so it must work there: when the
//! database has no room for its journal, the controller's reserved space is given up to it
//! ([`crate::disk`]); and when even that is spent, the builds' directories go first, which
//! frees their space, and the records after.

use std::path::PathBuf;

use steward_protocol::job_xml::BuildDiscarder;

use super::now_ms;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, RangeDeletion};

/// Milliseconds in a day, for `daysToKeep`.
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("{}; nothing was deleted", running_message(job, numbers))]
    Running { job: String, numbers: Vec<u64> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `Build #5 of job 'j' is still running: wait for it to end or stop it`, or the same of
/// several.
fn running_message(job: &str, numbers: &[u64]) -> String {
    let listed: Vec<String> = numbers.iter().map(|n| format!("#{n}")).collect();
    let (noun, verb, them) = match numbers.len() {
        1 => ("Build", "is", "it"),
        _ => ("Builds", "are", "them"),
    };
    format!(
        "{noun} {} of job '{job}' {verb} still running: wait for {them} to end or stop {them}",
        listed.join(", ")
    )
}

/// Deletes the builds of `job` numbered within `ranges` (inclusive); returns the numbers
/// deleted, oldest first (none is an answer too: the ranges may hold no build).
pub async fn delete_ranges(
    state: &AppState,
    job: &str,
    ranges: Vec<(u64, u64)>,
    by: &crate::audit::Actor,
) -> Result<Vec<u64>, DeleteError> {
    let deleted = delete_ranges_unrecorded(state, job, ranges).await?;
    if !deleted.is_empty() {
        state.audit.record(
            by,
            crate::audit::Action::BuildDelete,
            job,
            serde_json::json!({ "numbers": deleted }),
        );
    }
    Ok(deleted)
}

async fn delete_ranges_unrecorded(
    state: &AppState,
    job: &str,
    ranges: Vec<(u64, u64)>,
) -> Result<Vec<u64>, DeleteError> {
    let attempt = || {
        let (key, ranges) = (job.to_owned(), ranges.clone());
        state
            .store
            .call(move |c| records::delete_in_ranges(c, &key, &ranges))
    };
    let outcome = match attempt().await {
        Err(e) if e.is_disk_full() => {
            state.disk.out_of_space("deleting builds", &e);
            match attempt().await {
                Err(e) if e.is_disk_full() => {
                    // No room even so: the consoles go first, then the records.
                    let (key, r) = (job.to_owned(), ranges.clone());
                    let found = state
                        .store
                        .call(move |c| records::find_in_ranges(c, &key, &r))
                        .await?;
                    if let RangeDeletion::Deleted(numbers) = &found {
                        tracing::warn!(
                            job = ?job,
                            ?numbers,
                            "no room on the disk for the database: removing the builds' consoles before their records"
                        );
                        remove_dirs(state, job, numbers).await;
                    }
                    attempt().await?
                }
                other => other?,
            }
        }
        other => other?,
    };
    match outcome {
        RangeDeletion::Running(numbers) => Err(DeleteError::Running {
            job: job.to_owned(),
            numbers,
        }),
        RangeDeletion::Deleted(numbers) => {
            remove_dirs(state, job, &numbers).await;
            made_room(state).await;
            Ok(numbers)
        }
    }
}

/// After a deletion: if the disk was full, it may have room again.
async fn made_room(state: &AppState) {
    if state.disk.is_full() {
        let disk = state.disk.clone();
        let _ = tokio::task::spawn_blocking(move || disk.recheck()).await;
    }
}

/// Marks build `number` of `job` to be kept forever (or not): the discarder passes over
/// it. `false` when there is no such build.
pub async fn keep_forever(
    state: &AppState,
    job: &str,
    number: u64,
    keep: bool,
    by: &crate::audit::Actor,
) -> Result<bool, StoreError> {
    let key = job.to_owned();
    let found = state
        .store
        .call(move |c| records::set_keep_log(c, &key, number, keep))
        .await?;
    if found {
        state.audit.record(
            by,
            crate::audit::Action::BuildKeep,
            &format!("{job}#{number}"),
            serde_json::json!({ "keep": keep }),
        );
    }
    Ok(found)
}

/// Applies the job's build discarder, if it has one; called when one of its builds ends.
/// Failures are logged: the build that ended is not affected by them.
pub async fn discard_old(state: &AppState, job: &str) {
    let record = match crate::jobs::get(state, job).await {
        Ok(record) => record,
        // Deleted meanwhile: its builds went with it.
        Err(_) => return,
    };
    let Some(discarder) = record.config.build_discarder() else {
        return;
    };
    match discard(state, job, discarder).await {
        Ok(numbers) if numbers.is_empty() => {}
        Ok(numbers) => tracing::info!(job = ?job, ?numbers, "old builds discarded"),
        Err(e) => tracing::error!(job = ?job, error = ?e.to_string(), "cannot discard old builds"),
    }
}

async fn discard(
    state: &AppState,
    job: &str,
    discarder: BuildDiscarder,
) -> Result<Vec<u64>, StoreError> {
    let started_before = discarder
        .days_to_keep
        .map(|days| now_ms().saturating_sub(i64::from(days).saturating_mul(DAY_MS)));
    let attempt = || {
        let key = job.to_owned();
        state
            .store
            .call(move |c| records::discard(c, &key, discarder.num_to_keep, started_before))
    };
    let numbers = match attempt().await {
        Err(e) if e.is_disk_full() => {
            state.disk.out_of_space("discarding old builds", &e);
            attempt().await?
        }
        other => other?,
    };
    remove_dirs(state, job, &numbers).await;
    made_room(state).await;
    Ok(numbers)
}

/// Removes the directories of builds whose records are gone. One that cannot be removed
/// is logged and left: nothing reads it any more, and its number is never reused.
async fn remove_dirs(state: &AppState, job: &str, numbers: &[u64]) {
    let dirs: Vec<PathBuf> = numbers
        .iter()
        .map(|&n| state.builds.build_dir(job, n))
        .collect();
    let removed = tokio::task::spawn_blocking(move || {
        for dir in dirs {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(dir = ?dir, error = ?e.to_string(), "cannot remove a deleted build's directory")
                }
            }
        }
    })
    .await;
    if let Err(e) = removed {
        tracing::error!(job = ?job, error = ?e.to_string(), "removing deleted builds' directories failed");
    }
}
