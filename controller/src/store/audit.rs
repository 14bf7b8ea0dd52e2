//! The audit log's table (`crate::audit`): entries appended in batches, pruned by age and
//! count in the same transaction, and read a page at a time in the order they were written.

use rusqlite::{Connection, params};

use super::StoreError;
use crate::audit::entry::NewEntry;

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub time_ms: i64,
    pub user: String,
    pub action: String,
    pub target: String,
    pub remote: Option<String>,
    /// A JSON object.
    pub details: String,
}

/// Which entries a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only entries at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only this user's entries.
    pub user: Option<String>,
}

/// Appends `entries` in one transaction, then removes the entries older than
/// `keep_after_ms` and all but the newest `max_entries`.
pub fn append(
    conn: &mut Connection,
    entries: &[NewEntry],
    keep_after_ms: i64,
    max_entries: u64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_log (time_ms, user, action, target, remote, details)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in entries {
            insert.execute(params![
                e.time_ms, e.user, e.action, e.target, e.remote, e.details
            ])?;
        }
    }
    prune(&tx, keep_after_ms, max_entries)?;
    tx.commit()?;
    Ok(())
}

/// Removes entries older than `keep_after_ms`, and all but the newest `max_entries`. Ids
/// only grow (AUTOINCREMENT), so the newest N are those above the largest id less N: both
/// deletions walk an index over what they remove, never the whole table.
fn prune(conn: &Connection, keep_after_ms: i64, max_entries: u64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM audit_log WHERE time_ms < ?1")?
        .execute([keep_after_ms])?;
    let max = i64::try_from(max_entries).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM audit_log WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM audit_log) - ?1",
    )?
    .execute([max])?;
    Ok(())
}

/// Up to `limit` entries after id `after_id` that `filter` keeps, oldest first.
pub fn page(
    conn: &Connection,
    filter: &Filter,
    after_id: i64,
    limit: usize,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, time_ms, user, action, target, remote, details FROM audit_log
         WHERE id > ?1 AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR user = ?3)
         ORDER BY id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            after_id,
            filter.since_ms,
            filter.user,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                time_ms: r.get(1)?,
                user: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                remote: r.get(5)?,
                details: r.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor};
    use crate::store::Store;

    fn entry(time_ms: i64, user: &str) -> NewEntry {
        NewEntry::new(
            time_ms,
            &Actor::new(user, None),
            Action::JobCreate,
            "j",
            serde_json::Value::Null,
        )
    }

    #[tokio::test]
    async fn entries_are_pruned_by_age_and_by_count_and_read_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let all = |filter: Filter| {
            let store = store.clone();
            async move {
                store
                    .call(move |c| page(c, &filter, 0, 1000))
                    .await
                    .unwrap()
            }
        };
        store
            .call(|c| {
                append(
                    c,
                    &[entry(100, "a"), entry(200, "b"), entry(300, "a")],
                    0,
                    10,
                )
            })
            .await
            .unwrap();
        assert_eq!(all(Filter::default()).await.len(), 3);
        // Age: what is older than the cut goes with the next batch.
        store
            .call(|c| append(c, &[entry(400, "b")], 150, 10))
            .await
            .unwrap();
        let times: Vec<i64> = all(Filter::default())
            .await
            .iter()
            .map(|r| r.time_ms)
            .collect();
        assert_eq!(times, [200, 300, 400]);
        // Count: the newest N stay.
        store
            .call(|c| append(c, &[entry(500, "a"), entry(600, "a")], 0, 2))
            .await
            .unwrap();
        let times: Vec<i64> = all(Filter::default())
            .await
            .iter()
            .map(|r| r.time_ms)
            .collect();
        assert_eq!(times, [500, 600]);
        store
            .call(|c| append(c, &[entry(700, "b")], 0, 10))
            .await
            .unwrap();
        let filtered = all(Filter {
            since_ms: Some(550),
            user: Some("a".into()),
        })
        .await;
        assert_eq!(filtered.len(), 1);
        assert_eq!((filtered[0].time_ms, filtered[0].user.as_str()), (600, "a"));
        let first = store
            .call(|c| page(c, &Filter::default(), 0, 2))
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let last_id = first[1].id;
        let rest = store
            .call(move |c| page(c, &Filter::default(), last_id, 2))
            .await
            .unwrap();
        assert_eq!(rest.iter().map(|r| r.time_ms).collect::<Vec<_>>(), [700]);
    }
}
