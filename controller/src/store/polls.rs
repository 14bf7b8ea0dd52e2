//! What SCM polling remembers between polls and restarts: the branch heads each job's polls
//! have already started a build for, and the minute each cron trigger last fired.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// Most commits remembered per job: a poll compares against these and every commit the
/// job's builds checked out.
pub const MAX_SEEN: usize = 256;

/// The commits of `job` already built or already started by a poll.
pub fn known_commits(
    conn: &Connection,
    job: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut known = std::collections::HashSet::new();
    let mut stmt = conn.prepare(
        "SELECT DISTINCT scm_commit FROM builds WHERE job = ?1 AND scm_commit IS NOT NULL",
    )?;
    for commit in stmt.query_map([job], |r| r.get::<_, String>(0))? {
        known.insert(commit?);
    }
    known.extend(seen(conn, job)?);
    Ok(known)
}

fn seen(conn: &Connection, job: &str) -> Result<Vec<String>, StoreError> {
    let text: Option<String> = conn
        .query_row("SELECT seen FROM scm_polls WHERE job = ?1", [job], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text
        .map(|t| {
            t.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// Remembers that a poll of `job` started a build for `commits`.
pub fn mark_seen(conn: &Connection, job: &str, commits: &[String]) -> Result<(), StoreError> {
    let mut all = seen(conn, job)?;
    all.extend(commits.iter().cloned());
    let skip = all.len().saturating_sub(MAX_SEEN);
    let text = all[skip..].join(" ");
    conn.execute(
        "INSERT INTO scm_polls (job, seen) VALUES (?1, ?2)
         ON CONFLICT (job) DO UPDATE SET seen = excluded.seen",
        params![job, text],
    )?;
    Ok(())
}

/// Records that trigger `kind` of `job` fires in `minute` (minutes since the epoch); false
/// when it already fired in that minute or a later one.
pub fn claim_minute(
    conn: &Connection,
    job: &str,
    kind: &str,
    minute: i64,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "INSERT INTO trigger_fires (job, kind, minute) VALUES (?1, ?2, ?3)
         ON CONFLICT (job, kind) DO UPDATE SET minute = excluded.minute
         WHERE excluded.minute > trigger_fires.minute",
        params![job, kind, minute],
    )?;
    Ok(changed > 0)
}

/// Forgets a deleted job's polls and fires.
pub fn forget_job(conn: &Connection, job: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM scm_polls WHERE job = ?1", [job])?;
    conn.execute("DELETE FROM trigger_fires WHERE job = ?1", [job])?;
    Ok(())
}
