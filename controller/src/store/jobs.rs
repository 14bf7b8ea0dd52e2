//! Job rows (the job's freestyle XML, read and written as text: parsing it is the caller's
//! work, after the store call, so it never holds the connection) and the build-number
//! counters.
//!
//! Build numbers are never reused: the counter of a job name lives in its own table and
//! outlives the job, so a job deleted and created again under the same name goes on from
//! where it stopped, and a build number in a log or a link always means one build.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::xml::stored_without_nul;

use super::name_keys::{self, Named};
use super::{StoreError, now_unix};

/// A job: its name, its configuration, and the XML the configuration is stored as.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub config: JobConfig,
    /// `config` as written ([`JobConfig::to_xml`]): what `get-job` prints and a build's
    /// snapshot holds.
    pub xml: String,
}

impl JobRecord {
    pub fn new(name: String, config: JobConfig) -> JobRecord {
        let xml = config.to_xml();
        JobRecord { name, config, xml }
    }

    /// Reads a stored row. Parsing is work for the CPU, not the database: callers do it
    /// after the store call that fetched the row, not inside it.
    pub fn parse(name: String, xml: &str) -> Result<JobRecord, StoreError> {
        let config = JobConfig::from_stored_xml(&stored_without_nul(xml))
            .map_err(|e| StoreError::Corrupt(format!("job '{name}' XML: {e}")))?;
        Ok(JobRecord::new(name, config))
    }
}

/// Outcome of writes that can collide with another job's name or miss their job.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    NotFound,
    NameTaken,
    /// Another job's name differs from this one only by case or compatibility form: that
    /// job's name.
    LooksLike(String),
}

/// Inserts a new job stored as `xml`; `NameTaken` when the name exists, `LooksLike` when
/// another name differs from it only by case or compatibility form.
///
/// The checks and the insert are one step for the controller, whose writes all go through
/// one [`super::Store::call`] at a time.
pub fn insert(conn: &Connection, name: &str, xml: &str) -> Result<WriteOutcome, StoreError> {
    if exists(conn, name)? {
        return Ok(WriteOutcome::NameTaken);
    }
    if let Some(existing) = name_keys::lookalike(conn, Named::Jobs, name, None)? {
        return Ok(WriteOutcome::LooksLike(existing));
    }
    conn.execute(
        "INSERT INTO jobs (name, config_xml, created_at, updated_at, name_key)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![
            name,
            xml,
            now_unix(),
            steward_protocol::names::lookalike_key(name)
        ],
    )?;
    Ok(WriteOutcome::Done)
}

fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM jobs WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// The stored XML of job `name`, unparsed.
pub fn get_xml(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT config_xml FROM jobs WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Every job's name and stored XML, unparsed, by name.
pub fn rows(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT name, config_xml FROM jobs ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// All job names, by name.
pub fn names(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM jobs ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces a job's stored XML.
pub fn update(conn: &Connection, name: &str, xml: &str) -> Result<WriteOutcome, StoreError> {
    let changed = conn.execute(
        "UPDATE jobs SET config_xml = ?1, updated_at = ?2 WHERE name = ?3",
        params![xml, now_unix(), name],
    )?;
    Ok(if changed == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NotFound
    })
}

/// Deletes a job; `false` when it did not exist. Its build-number counter stays.
pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM jobs WHERE name = ?1", [name])? == 1)
}

/// Renames job `from` to `to`, with what is kept under its name (its builds, queued items,
/// build counter, polled commits and timer fires), in one transaction. The counter under
/// `to` is the larger of the two, so a number a deleted job of that name gave out is not
/// given out again.
pub fn rename(conn: &mut Connection, from: &str, to: &str) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction()?;
    if exists(&tx, to)? {
        return Ok(WriteOutcome::NameTaken);
    }
    if let Some(existing) = name_keys::lookalike(&tx, Named::Jobs, to, Some(from))? {
        return Ok(WriteOutcome::LooksLike(existing));
    }
    let renamed = tx.execute(
        "UPDATE jobs SET name = ?2, name_key = ?3, updated_at = ?4 WHERE name = ?1",
        params![
            from,
            to,
            steward_protocol::names::lookalike_key(to),
            now_unix()
        ],
    )?;
    if renamed == 0 {
        return Ok(WriteOutcome::NotFound);
    }
    for table in ["builds", "queue", "scm_polls", "trigger_fires"] {
        tx.execute(
            &format!("UPDATE {table} SET job = ?2 WHERE job = ?1"),
            params![from, to],
        )?;
    }
    let next = next_build_number(&tx, from)?.max(next_build_number(&tx, to)?);
    tx.execute(
        "DELETE FROM build_numbers WHERE job = ?1 OR job = ?2",
        params![from, to],
    )?;
    tx.execute(
        "INSERT INTO build_numbers (job, next_number) VALUES (?1, ?2)",
        params![to, i64::try_from(next).unwrap_or(i64::MAX)],
    )?;
    tx.commit()?;
    Ok(WriteOutcome::Done)
}

/// Sets the number the next build of `job` gets (Jenkins' `nextbuildnumber/submit`). Jenkins
/// takes any number above the last build's; Steward never gives a number out twice, so it
/// may not go below the number the next build would have got (which is above every
/// number given out, deleted builds' too). That number, as an error, when `next` is lower.
pub fn set_next_build_number(
    conn: &mut Connection,
    job: &str,
    next: u64,
) -> Result<Result<(), u64>, StoreError> {
    let tx = conn.transaction()?;
    let lowest = next_build_number(&tx, job)?;
    if next < lowest {
        return Ok(Err(lowest));
    }
    tx.execute(
        "INSERT INTO build_numbers (job, next_number) VALUES (?1, ?2)
         ON CONFLICT(job) DO UPDATE SET next_number = ?2",
        params![job, i64::try_from(next).unwrap_or(i64::MAX)],
    )?;
    tx.commit()?;
    Ok(Ok(()))
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

    fn job(description: &str) -> String {
        JobConfig::from_xml(&format!(
            "<project><description>{description}</description><builders>\
             <hudson.tasks.Shell><command>true</command></hudson.tasks.Shell></builders></project>"
        ))
        .unwrap()
        .to_xml()
    }

    #[tokio::test]
    async fn job_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                assert_eq!(insert(c, "a", &job("first"))?, WriteOutcome::Done);
                assert_eq!(insert(c, "a", &job("again"))?, WriteOutcome::NameTaken);
                assert_eq!(get_xml(c, "a")?, Some(job("first")));
                assert_eq!(update(c, "a", &job("second"))?, WriteOutcome::Done);
                assert_eq!(update(c, "zz", &job("x"))?, WriteOutcome::NotFound);
                let stored = JobRecord::parse("a".into(), &get_xml(c, "a")?.unwrap())?;
                assert_eq!(stored.config.description, "second");
                assert_eq!(stored.xml, job("second"));
                insert(c, "b", &job("b"))?;
                assert_eq!(names(c)?, ["a", "b"]);
                assert_eq!(
                    rows(c)?.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
                    ["a", "b"]
                );
                assert!(delete(c, "b")?);
                assert!(!delete(c, "b")?);
                assert!(get_xml(c, "b")?.is_none());
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_name_that_only_looks_like_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                assert_eq!(insert(c, "J1", &job("x"))?, WriteOutcome::Done);
                let taken = |existing: &str| WriteOutcome::LooksLike(existing.into());
                assert_eq!(insert(c, "j1", &job("x"))?, taken("J1"));
                assert_eq!(insert(c, "\u{FF2A}1", &job("x"))?, taken("J1"));
                assert_eq!(insert(c, "\u{FB01}", &job("x"))?, WriteOutcome::Done);
                assert_eq!(insert(c, "FI", &job("x"))?, taken("\u{FB01}"));
                // Deleted, its look-alikes are free again.
                assert!(delete(c, "J1")?);
                assert_eq!(insert(c, "j1", &job("x"))?, WriteOutcome::Done);
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rows_from_before_the_key_get_one_and_keep_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store
            .call(|c| {
                // As an older version stored them: no key, and two look-alikes.
                for name in ["Old", "old"] {
                    c.execute(
                        "INSERT INTO jobs (name, config_xml, created_at, updated_at)
                         VALUES (?1, '<project/>', 0, 0)",
                        [name],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        store
            .call(|c| {
                assert_eq!(names(c)?, ["Old", "old"]);
                assert_eq!(
                    insert(c, "OLD", &job("x"))?,
                    WriteOutcome::LooksLike("Old".into())
                );
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
