//! What builds checked out of Git: each build's revision and change log (a
//! [`CheckoutResult`] as JSON beside its commit in the `builds` row), and the revisions
//! the next build's environment and change log start from.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::job_xml::git::CheckoutResult;

use super::StoreError;

/// Records build `id`'s checkout.
pub fn set(conn: &Connection, id: u64, result: &CheckoutResult) -> Result<(), StoreError> {
    let json = serde_json::to_string(result)
        .map_err(|e| StoreError::Corrupt(format!("checkout record: {e}")))?;
    conn.execute(
        "UPDATE builds SET scm_commit = ?2, scm_json = ?3 WHERE id = ?1",
        params![id as i64, result.commit, json],
    )?;
    Ok(())
}

/// Build `id`'s checkout, if it checked out.
pub fn of_build(conn: &Connection, id: u64) -> Result<Option<CheckoutResult>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT scm_json FROM builds WHERE id = ?1",
            [id as i64],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    decode(json)
}

/// Build `number` of `job`'s checkout, if it checked out.
pub fn of_number(
    conn: &Connection,
    job: &str,
    number: u64,
) -> Result<Option<CheckoutResult>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT scm_json FROM builds WHERE job = ?1 AND number = ?2",
            params![job, number as i64],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    decode(json)
}

fn decode(json: Option<String>) -> Result<Option<CheckoutResult>, StoreError> {
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("checkout record: {e}")))
    })
    .transpose()
}

/// The commits the builds of `job` before `number` checked out: the newest build's
/// (`GIT_PREVIOUS_COMMIT`) and the newest successful or unstable one's
/// (`GIT_PREVIOUS_SUCCESSFUL_COMMIT`).
pub fn previous(
    conn: &Connection,
    job: &str,
    number: u64,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let newest = |condition: &str| -> Result<Option<String>, StoreError> {
        let sql = format!(
            "SELECT scm_commit FROM builds WHERE job = ?1 AND number < ?2 \
             AND scm_commit IS NOT NULL {condition} ORDER BY number DESC LIMIT 1"
        );
        Ok(conn
            .query_row(&sql, params![job, number as i64], |r| r.get(0))
            .optional()?)
    };
    Ok((
        newest("")?,
        newest("AND result IN ('SUCCESS', 'UNSTABLE')")?,
    ))
}

/// The builds of `job` numbered within `ranges` (inclusive), in ascending order, each with
/// its checkout if it checked out.
pub fn in_ranges(
    conn: &Connection,
    job: &str,
    ranges: &[(u64, u64)],
) -> Result<Vec<(u64, Option<CheckoutResult>)>, StoreError> {
    let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut found = std::collections::BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT number, scm_json FROM builds WHERE job = ?1 AND number BETWEEN ?2 AND ?3",
    )?;
    for &(from, to) in ranges {
        let rows = stmt.query_map(params![job, bound(from), bound(to)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        for row in rows {
            let (number, json) = row?;
            found.insert(number as u64, json);
        }
    }
    found
        .into_iter()
        .map(|(number, json)| Ok((number, decode(json)?)))
        .collect()
}
