//! Breakpoints in the store: the one `build -breakpoint` asked for a queued build, and each
//! build's breakpoint (while it holds, and how it ended), so that a controller restarted
//! during a breakpoint holds the build on until the same expiry, and one restarted after
//! it does not hold the build a second time.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// A build's breakpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakpointRow {
    pub build_id: u64,
    /// Why it holds: `the build failed`, `breakpoint wait in step 2`…
    pub reason: String,
    pub started_ms: i64,
    /// The job's `duration`: what `.hold` and auto-extension count with.
    pub duration_ms: i64,
    pub expires_ms: i64,
    pub max_expires_ms: i64,
    /// Ends it unless someone connected by then.
    pub connect_by_ms: Option<i64>,
    pub resume_on_logout: bool,
    /// Whether any client has connected (the connect timeout then no longer applies).
    pub ever_connected: bool,
    /// How it ended; `None` while it holds.
    pub ended: Option<String>,
    /// The token of the `breakpoint wait` that started it, if one did.
    pub wait_token: Option<String>,
}

/// Remembers that queue item `queue_id` asked for a breakpoint (`onFailure`, `always` or
/// `never`), replacing what an identical request asked before.
pub fn request(conn: &Connection, queue_id: u64, when: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO breakpoint_requests (queue_id, when_) VALUES (?1, ?2)
         ON CONFLICT (queue_id) DO UPDATE SET when_ = excluded.when_",
        params![queue_id as i64, when],
    )?;
    Ok(())
}

/// What queue item `queue_id` asked for, if anything.
pub fn requested(conn: &Connection, queue_id: u64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT when_ FROM breakpoint_requests WHERE queue_id = ?1",
            [queue_id as i64],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores a build's breakpoint, replacing what was stored for it.
pub fn save(conn: &Connection, row: &BreakpointRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO breakpoints (build_id, reason, started_ms, duration_ms, expires_ms,
                                  max_expires_ms, connect_by_ms, resume_on_logout,
                                  ever_connected, ended, wait_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (build_id) DO UPDATE SET
             reason = excluded.reason, started_ms = excluded.started_ms,
             duration_ms = excluded.duration_ms, expires_ms = excluded.expires_ms,
             max_expires_ms = excluded.max_expires_ms, connect_by_ms = excluded.connect_by_ms,
             resume_on_logout = excluded.resume_on_logout,
             ever_connected = excluded.ever_connected, ended = excluded.ended,
             wait_token = excluded.wait_token",
        params![
            row.build_id as i64,
            row.reason,
            row.started_ms,
            row.duration_ms,
            row.expires_ms,
            row.max_expires_ms,
            row.connect_by_ms,
            row.resume_on_logout,
            row.ever_connected,
            row.ended,
            row.wait_token,
        ],
    )?;
    Ok(())
}

/// A build's breakpoint, if it ever had one.
pub fn get(conn: &Connection, build_id: u64) -> Result<Option<BreakpointRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT reason, started_ms, duration_ms, expires_ms, max_expires_ms, connect_by_ms,
                    resume_on_logout, ever_connected, ended, wait_token
             FROM breakpoints WHERE build_id = ?1",
            [build_id as i64],
            |r| {
                Ok(BreakpointRow {
                    build_id,
                    reason: r.get(0)?,
                    started_ms: r.get(1)?,
                    duration_ms: r.get(2)?,
                    expires_ms: r.get(3)?,
                    max_expires_ms: r.get(4)?,
                    connect_by_ms: r.get(5)?,
                    resume_on_logout: r.get(6)?,
                    ever_connected: r.get(7)?,
                    ended: r.get(8)?,
                    wait_token: r.get(9)?,
                })
            },
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(build_id: u64) -> BreakpointRow {
        BreakpointRow {
            build_id,
            reason: "the build failed".into(),
            started_ms: 1_000,
            duration_ms: 1_800_000,
            expires_ms: 1_801_000,
            max_expires_ms: 21_601_000,
            connect_by_ms: Some(601_000),
            resume_on_logout: false,
            ever_connected: false,
            ended: None,
            wait_token: Some("t".into()),
        }
    }

    #[tokio::test]
    async fn a_breakpoint_reads_back_as_saved_and_updates_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steward.db")).unwrap();
        let build_id = store
            .call(|c| {
                use crate::store::builds::{CauseKind, Start, enqueue, start};
                let queue_id = enqueue(c, "j", &[], CauseKind::Cli, "u", 1)?;
                let start_at = Start {
                    queue_id,
                    node: "n",
                    executor: 0,
                    workspace: "j",
                    config_xml: "<project/>",
                    started_at_ms: 2,
                };
                Ok(start(c, &start_at)?.expect("queued").id)
            })
            .await
            .unwrap();
        let saved = row(build_id);
        let copy = saved.clone();
        store.call(move |c| save(c, &copy)).await.unwrap();
        let read = store.call(move |c| get(c, build_id)).await.unwrap();
        assert_eq!(read, Some(saved.clone()));

        let mut ended = saved;
        ended.expires_ms = 5_000_000;
        ended.ever_connected = true;
        ended.ended = Some("resumed by alice".into());
        let copy = ended.clone();
        store.call(move |c| save(c, &copy)).await.unwrap();
        let read = store.call(move |c| get(c, build_id)).await.unwrap();
        assert_eq!(read, Some(ended));
        assert_eq!(store.call(|c| get(c, 999_999)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_request_is_kept_per_queue_item_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steward.db")).unwrap();
        store.call(|c| request(c, 7, "always")).await.unwrap();
        store.call(|c| request(c, 7, "onFailure")).await.unwrap();
        assert_eq!(
            store.call(|c| requested(c, 7)).await.unwrap().as_deref(),
            Some("onFailure")
        );
        assert_eq!(store.call(|c| requested(c, 8)).await.unwrap(), None);
    }
}
