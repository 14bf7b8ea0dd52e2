//! Job rows (the job's freestyle XML) and the build-number counters.
//!
//! Build numbers are never reused: the counter of a job name lives in its own table and
//! outlives the job, so a job deleted and created again under the same name goes on from
//! where it stopped, and a build number in a log or a link always means one build.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::xml::stored_without_nul;

use super::{StoreError, now_unix};

/// A stored job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub config: JobConfig,
}

/// Outcome of writes that can collide with another job's name or miss their job.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    NotFound,
    NameTaken,
}

fn row_to_record(name: String, xml: String) -> Result<JobRecord, StoreError> {
    let config = JobConfig::from_stored_xml(&stored_without_nul(&xml))
        .map_err(|e| StoreError::Corrupt(format!("job '{name}' XML: {e}")))?;
    Ok(JobRecord { name, config })
}

/// Inserts a new job; `NameTaken` when the name exists.
pub fn insert(
    conn: &Connection,
    name: &str,
    config: &JobConfig,
) -> Result<WriteOutcome, StoreError> {
    let inserted = conn.execute(
        "INSERT INTO jobs (name, config_xml, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![name, config.to_xml(), now_unix()],
    )?;
    Ok(if inserted == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NameTaken
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<JobRecord>, StoreError> {
    conn.query_row(
        "SELECT name, config_xml FROM jobs WHERE name = ?1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .map(|(n, x)| row_to_record(n, x))
    .transpose()
}

/// All jobs, by name.
pub fn list(conn: &Connection) -> Result<Vec<JobRecord>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, config_xml FROM jobs ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.map(|row| {
        let (n, x) = row?;
        row_to_record(n, x)
    })
    .collect()
}

/// All job names, by name, without parsing their XML.
pub fn names(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM jobs ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces a job's configuration.
pub fn update(
    conn: &Connection,
    name: &str,
    config: &JobConfig,
) -> Result<WriteOutcome, StoreError> {
    let changed = conn.execute(
        "UPDATE jobs SET config_xml = ?1, updated_at = ?2 WHERE name = ?3",
        params![config.to_xml(), now_unix(), name],
    )?;
    Ok(if changed == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NotFound
    })
}

/// Reads, changes and writes back one job in a transaction, so concurrent changes to
/// different fields (an `enable-job` and an `update-job`) cannot undo each other.
pub fn modify(
    conn: &mut Connection,
    name: &str,
    change: impl FnOnce(&mut JobConfig),
) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction()?;
    let Some(mut record) = get(&tx, name)? else {
        return Ok(WriteOutcome::NotFound);
    };
    change(&mut record.config);
    let outcome = update(&tx, name, &record.config)?;
    tx.commit()?;
    Ok(outcome)
}

/// Copies `from`'s configuration to a new job `to`.
pub fn copy(conn: &mut Connection, from: &str, to: &str) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction()?;
    let xml: Option<String> = tx
        .query_row("SELECT config_xml FROM jobs WHERE name = ?1", [from], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(xml) = xml else {
        return Ok(WriteOutcome::NotFound);
    };
    let inserted = tx.execute(
        "INSERT INTO jobs (name, config_xml, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![to, xml, now_unix()],
    )?;
    tx.commit()?;
    Ok(if inserted == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NameTaken
    })
}

/// Deletes a job; `false` when it did not exist. Its build-number counter stays.
pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM jobs WHERE name = ?1", [name])? == 1)
}

/// Takes the next build number of `job` (1 for a name never built).
pub fn take_build_number(conn: &Connection, job: &str) -> Result<u64, StoreError> {
    let number: i64 = conn.query_row(
        "INSERT INTO build_numbers (job, next_number) VALUES (?1, 2)
         ON CONFLICT(job) DO UPDATE SET next_number = next_number + 1
         RETURNING next_number - 1",
        [job],
        |r| r.get(0),
    )?;
    u64::try_from(number)
        .map_err(|_| StoreError::Corrupt(format!("build number {number} of job '{job}'")))
}

/// The number the next build of `job` will get, without taking it.
pub fn next_build_number(conn: &Connection, job: &str) -> Result<u64, StoreError> {
    let next: Option<i64> = conn
        .query_row(
            "SELECT next_number FROM build_numbers WHERE job = ?1",
            [job],
            |r| r.get(0),
        )
        .optional()?;
    Ok(next.and_then(|n| u64::try_from(n).ok()).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn job(description: &str) -> JobConfig {
        JobConfig::from_xml(&format!(
            "<project><description>{description}</description><builders>\
             <hudson.tasks.Shell><command>true</command></hudson.tasks.Shell></builders></project>"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn job_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                assert_eq!(insert(c, "a", &job("first"))?, WriteOutcome::Done);
                assert_eq!(insert(c, "a", &job("again"))?, WriteOutcome::NameTaken);
                assert_eq!(get(c, "a")?.unwrap().config, job("first"));
                assert_eq!(update(c, "a", &job("second"))?, WriteOutcome::Done);
                assert_eq!(update(c, "zz", &job("x"))?, WriteOutcome::NotFound);
                assert_eq!(get(c, "a")?.unwrap().config.description, "second");
                assert_eq!(modify(c, "a", |j| j.disabled = true)?, WriteOutcome::Done);
                assert!(get(c, "a")?.unwrap().config.disabled);
                assert_eq!(modify(c, "zz", |_| ())?, WriteOutcome::NotFound);
                assert_eq!(copy(c, "a", "b")?, WriteOutcome::Done);
                assert_eq!(copy(c, "a", "b")?, WriteOutcome::NameTaken);
                assert_eq!(copy(c, "zz", "c")?, WriteOutcome::NotFound);
                assert_eq!(get(c, "b")?.unwrap().config, get(c, "a")?.unwrap().config);
                assert_eq!(names(c)?, ["a", "b"]);
                assert_eq!(
                    list(c)?.into_iter().map(|r| r.name).collect::<Vec<_>>(),
                    ["a", "b"]
                );
                assert!(delete(c, "b")?);
                assert!(!delete(c, "b")?);
                assert!(get(c, "b")?.is_none());
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn build_numbers_are_never_reused_across_deletes_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store
            .call(|c| {
                assert_eq!(next_build_number(c, "a")?, 1);
                insert(c, "a", &job("x"))?;
                assert_eq!(take_build_number(c, "a")?, 1);
                assert_eq!(take_build_number(c, "a")?, 2);
                assert_eq!(take_build_number(c, "other")?, 1);
                assert!(delete(c, "a")?);
                insert(c, "a", &job("x"))?;
                assert_eq!(next_build_number(c, "a")?, 3);
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let number = store.call(|c| take_build_number(c, "a")).await.unwrap();
        assert_eq!(number, 3);
    }
}
