//! `reload-job` and `reload-configuration`'s part for jobs: the store is where a job's
//! configuration lives (there are no `config.xml` files to edit), and [`super::cache`]
//! holds every job parsed. Reloading reads the rows again from `steward.db`, parses and
//! checks them as a start-up does, and replaces what the cache holds, so a change made to
//! the database by another program (an operator's `sqlite3`, a row restored from a backup)
//! takes effect without a restart; a row that no longer parses is reported and kept as
//! unreadable, as at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache::Entry;
use super::{JobError, off_runtime};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::jobs::{self, JobRecord};

/// Times a reload reads the rows again when a write came between its read and its
/// swap, before it gives up (every write is a few milliseconds; this is never reached but
/// under a storm of writes).
const MAX_TRIES: usize = 8;

/// What reloading one job found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// Read and in effect; each line a warning about it (elements builds run without).
    Ready(Vec<String>),
    /// Its row no longer parses: kept as unreadable (builds of it refused), with why.
    Unreadable(String),
}

fn parse(name: &str, xml: &str) -> Entry {
    match JobRecord::parse(name.to_owned(), xml) {
        Ok(record) => Entry::Ready(Arc::new(record)),
        Err(e) => Entry::Corrupt(e.to_string()),
    }
}

/// What to tell about a job read back.
fn outcome(state: &AppState, entry: &Entry) -> Reloaded {
    match entry {
        Entry::Corrupt(why) => Reloaded::Unreadable(why.clone()),
        Entry::Ready(record) => {
            let mut warnings: Vec<String> = record
                .config
                .ignored()
                .iter()
                .map(|i| i.warning())
                .collect();
            if let Err(e) = crate::triggers::timer::check_zones(&record.config) {
                warnings.push(format!("WARNING: {e}"));
            }
            if state.config.strict_jobs && !record.config.ignored().is_empty() {
                warnings.push(
                    "WARNING: this controller refuses such jobs (--strict-jobs); the stored job \
                     is loaded as it is"
                        .to_owned(),
                );
            }
            Reloaded::Ready(warnings)
        }
    }
}

/// Reads job `name` (as stored, or in NFC, or a row the cache does not know yet) again
/// from the store. A job whose row is gone is dropped from the cache: `NotFound`.
pub async fn reload(state: &AppState, name: &str) -> Result<Reloaded, JobError> {
    let stored = match state.jobs.find(name) {
        Some((stored, _)) => stored,
        None => steward_protocol::names::canonical(name).into_owned(),
    };
    for _ in 0..MAX_TRIES {
        let key = stored.clone();
        let Some(xml) = state.store.call(move |c| jobs::get_xml(c, &key)).await? else {
            let (cache, key) = (state.jobs.clone(), stored.clone());
            // Dropped in a store call, so no write of it is interleaved.
            state
                .store
                .call(move |c| {
                    if jobs::get_xml(c, &key)?.is_none() {
                        cache.remove(&key);
                    }
                    Ok(())
                })
                .await?;
            state.builds.reschedule();
            return Err(JobError::not_found(name));
        };
        let entry = {
            let (name, xml) = (stored.clone(), xml.clone());
            off_runtime(move || parse(&name, &xml)).await?
        };
        let (cache, key, put) = (state.jobs.clone(), stored.clone(), entry.clone());
        let swapped = state
            .store
            .call(move |c| {
                // Kept only if the row is still what was parsed.
                if jobs::get_xml(c, &key)?.as_deref() != Some(xml.as_str()) {
                    return Ok(false);
                }
                cache.fill_one(key, put);
                Ok(true)
            })
            .await?;
        if swapped {
            tracing::info!(job = ?stored, "job reloaded from the store");
            state.builds.reschedule();
            return Ok(outcome(state, &entry));
        }
    }
    Err(StoreError::Task(format!(
        "job '{stored}' kept changing while it was reloaded"
    ))
    .into())
}

/// Reads every job again from the store: new rows appear, rows gone disappear, every
/// configuration is parsed anew. The outcome of each job, by name.
pub async fn reload_all(state: &AppState) -> Result<BTreeMap<String, Reloaded>, JobError> {
    for _ in 0..MAX_TRIES {
        let rows = state.store.call(|c| jobs::rows(c)).await?;
        let parsed = {
            let rows = rows.clone();
            off_runtime(move || {
                rows.iter()
                    .map(|(name, xml)| (name.clone(), parse(name, xml)))
                    .collect::<Vec<_>>()
            })
            .await?
        };
        let (cache, entries) = (state.jobs.clone(), parsed.clone());
        let swapped = state
            .store
            .call(move |c| {
                if jobs::rows(c)? != rows {
                    return Ok(false);
                }
                cache.fill(entries);
                Ok(true)
            })
            .await?;
        if swapped {
            tracing::info!(jobs = parsed.len(), "jobs reloaded from the store");
            state.builds.reschedule();
            return Ok(parsed
                .into_iter()
                .map(|(name, entry)| {
                    let outcome = outcome(state, &entry);
                    (name, outcome)
                })
                .collect());
        }
    }
    Err(StoreError::Task("the jobs kept changing while they were reloaded".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(description: &str) -> String {
        format!(
            "<project><description>{description}</description><builders>\
             <hudson.tasks.Shell><command>true</command></hudson.tasks.Shell></builders></project>"
        )
    }

    #[tokio::test]
    async fn a_row_changed_behind_the_cache_takes_effect_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::for_tests(dir.path());
        let config = steward_protocol::job_xml::JobConfig::from_xml(&job("first")).unwrap();
        super::super::create(
            &state,
            "app",
            config,
            &crate::audit::Actor::new("admin", None),
        )
        .await
        .unwrap();
        // Another program edits the row.
        let edited = job("edited");
        state
            .store
            .call(move |c| jobs::update(c, "app", &edited))
            .await
            .unwrap();
        assert_eq!(
            super::super::get(&state, "app")
                .await
                .unwrap()
                .config
                .description,
            "first"
        );
        assert_eq!(
            reload(&state, "app").await.unwrap(),
            Reloaded::Ready(vec![])
        );
        assert_eq!(
            super::super::get(&state, "app")
                .await
                .unwrap()
                .config
                .description,
            "edited"
        );
        // A row added behind the cache, and one broken.
        let (added, broken) = (job("added"), "<project><builders>".to_owned());
        state
            .store
            .call(move |c| {
                jobs::insert(c, "added", &added)?;
                jobs::update(c, "app", &broken)
            })
            .await
            .unwrap();
        let all = reload_all(&state).await.unwrap();
        assert_eq!(all["added"], Reloaded::Ready(vec![]));
        assert!(matches!(&all["app"], Reloaded::Unreadable(why) if why.contains("job 'app' XML")));
        assert!(super::super::get(&state, "app").await.is_err());
        // A row removed behind the cache.
        state
            .store
            .call(|c| jobs::delete(c, "added"))
            .await
            .unwrap();
        assert!(matches!(
            reload(&state, "added").await,
            Err(JobError::NotFound { .. })
        ));
        assert!(state.jobs.find("added").is_none());
    }
}
