//! Reading builds back: a job's builds, one build by number or by one of Jenkins'
//! permalinks (`lastBuild`, `lastSuccessfulBuild`, …), and the duration the next build is
//! expected to take. The CLI (`console`, `list-builds`) and the REST API share these.

use steward_protocol::shown::Shown;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, BuildResult, BuildRow, PERMALINKS};

/// Why no build answers to what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("No such build #{}", Shown(.0))]
    NoSuchNumber(String),
    #[error("Permalink {} produced no build", Shown(.0))]
    EmptyPermalink(String),
    #[error("Not sure what you meant by \"{}\": use a build number or one of {list}", Shown(.0), list = permalink_names())]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn permalink_names() -> String {
    PERMALINKS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A job's build numbers, newest first, at most `limit`, each with whether it still runs.
pub async fn numbers(
    state: &AppState,
    job: &str,
    limit: u32,
) -> Result<Vec<(u64, bool)>, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::numbers(c, &key, limit))
        .await
}

/// A job's builds, newest first: the running ones and the records, at most `limit`.
pub async fn history(state: &AppState, job: &str, limit: u32) -> Result<Vec<BuildRow>, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::of_job(c, &key, limit))
        .await
}

pub async fn get(state: &AppState, job: &str, number: u64) -> Result<Option<BuildRow>, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| records::get(c, &key, number))
        .await
}

/// The build of `job` that `which` names: a build number, or a permalink such as
/// `lastSuccessfulBuild`.
pub async fn find(state: &AppState, job: &str, which: &str) -> Result<BuildRow, FindError> {
    if !which.is_empty() && which.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is a number no build has.
        let number: u64 = which
            .parse()
            .map_err(|_| FindError::NoSuchNumber(which.to_owned()))?;
        return get(state, job, number)
            .await?
            .ok_or_else(|| FindError::NoSuchNumber(number.to_string()));
    }
    let (key, name) = (job.to_owned(), which.to_owned());
    match state
        .store
        .call(move |c| records::permalink(c, &key, &name))
        .await?
    {
        Ok(Some(build)) => Ok(build),
        Ok(None) => Err(FindError::EmptyPermalink(which.to_owned())),
        Err(()) => Err(FindError::Unknown(which.to_owned())),
    }
}

/// Most builds a job's summary lists (Jenkins' `builds` shows the newest 100).
pub const SUMMARY_BUILDS: u32 = 100;

/// What a job's page shows of its builds.
pub struct JobSummary {
    /// The newest builds' numbers, newest first, at most [`SUMMARY_BUILDS`], each with
    /// whether it still runs.
    pub newest: Vec<(u64, bool)>,
    /// The oldest build on record.
    pub first: Option<BuildRow>,
    /// Each of [`PERMALINKS`] with the build it names.
    pub permalinks: Vec<(&'static str, Option<BuildRow>)>,
    /// The number the next build will get.
    pub next_number: u64,
}

impl JobSummary {
    pub fn permalink(&self, name: &str) -> Option<&BuildRow> {
        self.permalinks
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, b)| b.as_ref())
    }
}

/// A job's builds as its page shows them, read in one go.
pub async fn summary(state: &AppState, job: &str) -> Result<JobSummary, StoreError> {
    let key = job.to_owned();
    state
        .store
        .call(move |c| {
            let mut permalinks = Vec::with_capacity(PERMALINKS.len());
            for (name, _) in PERMALINKS {
                let found = records::permalink(c, &key, name)?.unwrap_or_default();
                permalinks.push((*name, found));
            }
            Ok(JobSummary {
                newest: records::numbers(c, &key, SUMMARY_BUILDS)?,
                first: records::oldest(c, &key)?,
                permalinks,
                next_number: crate::store::jobs::next_build_number(c, &key)?,
            })
        })
        .await
}

/// [`estimated_duration`] of `job`'s next build, read from the store.
pub async fn estimate(state: &AppState, job: &str) -> Result<i64, StoreError> {
    let key = job.to_owned();
    let (newest, last_successful) = state
        .store
        .call(move |c| {
            Ok((
                records::of_job(c, &key, 6)?,
                records::permalink(c, &key, "lastSuccessfulBuild")?.unwrap_or_default(),
            ))
        })
        .await?;
    Ok(estimated_duration(&newest, last_successful.as_ref()))
}

/// How long the next build of a job should take, in milliseconds, from its newest builds
/// (newest first, as [`history`] gives them) and its last successful build, as Jenkins
/// estimates it: the mean duration of the last successful build and the next successful or
/// unstable ones among the newest six, topped up to three with failed ones; -1 when there
/// is none.
pub fn estimated_duration(newest: &[BuildRow], last_successful: Option<&BuildRow>) -> i64 {
    let mut picked: Vec<&BuildRow> = last_successful.into_iter().collect();
    let mut fallback = Vec::new();
    for build in newest.iter().take(6) {
        if picked.len() >= 3 {
            break;
        }
        if Some(build.number) == last_successful.map(|b| b.number) {
            continue;
        }
        match build.result {
            Some(BuildResult::Success | BuildResult::Unstable) => picked.push(build),
            Some(BuildResult::Failure) => fallback.push(build),
            _ => {}
        }
    }
    for build in fallback {
        if picked.len() >= 3 {
            break;
        }
        picked.push(build);
    }
    let durations: Vec<i64> = picked.iter().filter_map(|b| duration_ms(b)).collect();
    if durations.is_empty() {
        return -1;
    }
    durations.iter().sum::<i64>() / durations.len() as i64
}

/// How long a build took; `None` while it runs.
pub fn duration_ms(build: &BuildRow) -> Option<i64> {
    build
        .finished_at_ms
        .map(|end| (end - build.started_at_ms).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::builds::CauseKind;

    fn build(number: u64, result: Option<BuildResult>, duration: i64) -> BuildRow {
        BuildRow {
            id: number,
            job: "j".into(),
            number,
            params: vec![],
            cause: CauseKind::Cli,
            cause_user: "u".into(),
            queue_id: None,
            node: "n".into(),
            executor: 0,
            workspace: "j".into(),
            config_xml: String::new(),
            queued_at_ms: 0,
            started_at_ms: 1_000,
            finished_at_ms: result.map(|_| 1_000 + duration),
            result,
            step_index: 0,
            step_log_start: None,
            step_end: None,
            aborted_by: None,
            keep_log: false,
            end_reason: None,
            unstable: false,
            description: None,
            display_name: None,
        }
    }

    #[test]
    fn the_estimate_prefers_successful_builds_and_ignores_running_and_aborted_ones() {
        use BuildResult::*;
        let newest = [
            build(7, None, 0),
            build(6, Some(Aborted), 1),
            build(5, Some(Failure), 500),
            build(4, Some(Success), 100),
            build(3, Some(Unstable), 200),
            build(2, Some(Success), 300),
        ];
        assert_eq!(estimated_duration(&newest, Some(&newest[3])), 200);
        // Fewer than three successful ones: failed ones fill in.
        let few = [build(3, Some(Failure), 50), build(2, Some(Success), 150)];
        assert_eq!(estimated_duration(&few, Some(&few[1])), 100);
        assert_eq!(estimated_duration(&[build(1, None, 0)], None), -1);
        assert_eq!(estimated_duration(&[], None), -1);
    }
}
