//! The embedded database (SQLite) under the home directory: nodes (and their SSH host keys),
//! users with their API token hashes and SSH public keys, jobs and their build-number
//! counters, the build queue and build records, the audit log.
//!
//! SQLite calls block, so async code reaches the connection through [`Store::call`], which
//! runs the closure on tokio's blocking pool. The schema is versioned with
//! `PRAGMA user_version`; [`MIGRATIONS`] brings any older file up to date. Writes are
//! durable before they are acknowledged (WAL with `synchronous=FULL`).

pub mod audit;
pub mod breakpoints;
pub mod builds;
pub mod credentials;
pub mod host_keys;
pub mod jobs;
pub mod name_keys;
pub mod nodes;
pub mod polls;
pub mod scm;
pub mod ssh_keys;
pub mod terminals;
pub mod users;
pub mod views;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// How long a statement waits for a lock held by another connection (e.g. an operator's
/// `sqlite3` shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema steps, applied in order; entry N brings `user_version` from N to N+1.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE nodes (
        name TEXT PRIMARY KEY NOT NULL,
        config_xml TEXT NOT NULL,
        offline_message TEXT,
        offline_by TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        full_name TEXT NOT NULL,
        is_admin INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );",
    // Jobs. `build_numbers` is separate so a job's counter outlives the job (jobs.rs).
    "CREATE TABLE jobs (
        name TEXT PRIMARY KEY NOT NULL,
        config_xml TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE build_numbers (
        job TEXT PRIMARY KEY NOT NULL,
        next_number INTEGER NOT NULL
    );",
    // The build queue and build records (builds.rs).
    "CREATE TABLE queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        params TEXT NOT NULL,
        cause_user TEXT NOT NULL,
        queued_at_ms INTEGER NOT NULL
    );
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        number INTEGER NOT NULL,
        params TEXT NOT NULL,
        cause_user TEXT NOT NULL,
        node TEXT NOT NULL,
        executor INTEGER NOT NULL,
        config_xml TEXT NOT NULL,
        queued_at_ms INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        finished_at_ms INTEGER,
        result TEXT,
        step_index INTEGER NOT NULL,
        step_log_start INTEGER,
        UNIQUE (job, number)
    );
    CREATE INDEX builds_running ON builds (id) WHERE result IS NULL;",
    // How each build's current step ended and who aborted it (builds.rs, `end_step`).
    "ALTER TABLE builds ADD COLUMN step_code INTEGER;
    ALTER TABLE builds ADD COLUMN step_log_end INTEGER;
    ALTER TABLE builds ADD COLUMN step_note TEXT;
    ALTER TABLE builds ADD COLUMN aborted_by TEXT;",
    // What started a build (the CLI or the REST API, builds.rs `CauseKind`) and, for the
    // REST API's `queueId`, the queue item it came from. Rows from before were all queued
    // by the CLI; their queue item is not known.
    "ALTER TABLE queue ADD COLUMN cause TEXT NOT NULL DEFAULT 'cli';
    ALTER TABLE builds ADD COLUMN cause TEXT NOT NULL DEFAULT 'cli';
    ALTER TABLE builds ADD COLUMN queue_id INTEGER;",
    // The workspace a build runs in, under the agent's `workspace/`: the job's name, or
    // `JOB@2`, `JOB@3`… for a build that ran while another of its job held that one on the
    // same node. Rows from before ran in the job's name.
    "ALTER TABLE builds ADD COLUMN workspace TEXT;",
    // "Keep this build forever" (`keep-build`): the build discarder passes over it.
    "ALTER TABLE builds ADD COLUMN keep_log INTEGER NOT NULL DEFAULT 0;",
    // Why the controller ended a build the way it did, when the steps did not say (its
    // console could not be written), and the console's closing text not written yet, with
    // the console length it follows (builds.rs `ConsoleTail`).
    "ALTER TABLE builds ADD COLUMN end_reason TEXT;
    ALTER TABLE builds ADD COLUMN console_tail TEXT;
    ALTER TABLE builds ADD COLUMN console_tail_at INTEGER;",
    // Each name's look-alike key (name_keys.rs), set by `Store::open`; not unique, so names
    // stored before that look alike stay.
    "ALTER TABLE jobs ADD COLUMN name_key TEXT;
    ALTER TABLE nodes ADD COLUMN name_key TEXT;
    CREATE INDEX jobs_name_key ON jobs (name_key);
    CREATE INDEX nodes_name_key ON nodes (name_key);",
    // Users' SSH public keys (ssh_keys.rs), and each node's SSH host key as its agent last
    // reported it, with the one before when it changed (host_keys.rs).
    "CREATE TABLE ssh_keys (
        fingerprint TEXT PRIMARY KEY NOT NULL,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        public_key TEXT NOT NULL,
        comment TEXT NOT NULL,
        added_ms INTEGER NOT NULL
    );
    CREATE INDEX ssh_keys_user ON ssh_keys (user);
    ALTER TABLE nodes ADD COLUMN ssh_host_key TEXT;
    ALTER TABLE nodes ADD COLUMN ssh_host_key_previous TEXT;
    ALTER TABLE nodes ADD COLUMN ssh_host_key_changed_ms INTEGER;",
    // Breakpoints (breakpoints.rs): one asked for a queued build (`build -breakpoint`),
    // and each build's breakpoint while it holds and once it ended, so a restarted
    // controller holds it on, or knows not to hold it again.
    "CREATE TABLE breakpoint_requests (
        queue_id INTEGER PRIMARY KEY NOT NULL,
        when_ TEXT NOT NULL
    );
    CREATE TABLE breakpoints (
        build_id INTEGER PRIMARY KEY NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
        reason TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        max_expires_ms INTEGER NOT NULL,
        connect_by_ms INTEGER,
        resume_on_logout INTEGER NOT NULL,
        ever_connected INTEGER NOT NULL,
        ended TEXT
    );",
    // The token of the `breakpoint wait` that started a breakpoint: the same wait asked
    // again (after its agent reconnected) joins it, or learns how it ended.
    "ALTER TABLE breakpoints ADD COLUMN wait_token TEXT;",
    // Terminals (terminals.rs): their settings, secrets apart, and each one's recordings.
    "CREATE TABLE terminals (
        name TEXT PRIMARY KEY NOT NULL,
        node TEXT NOT NULL,
        driver TEXT NOT NULL,
        ondemand INTEGER NOT NULL,
        enabled INTEGER NOT NULL,
        params TEXT NOT NULL,
        secrets TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE terminal_recordings (
        id TEXT PRIMARY KEY NOT NULL,
        terminal TEXT NOT NULL,
        run TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        output_bytes INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL
    );
    CREATE INDEX terminal_recordings_terminal ON terminal_recordings (terminal, started_ms);",
    // A shell step ended with its `unstableReturn`: the build ends UNSTABLE (builds.rs).
    "ALTER TABLE builds ADD COLUMN unstable INTEGER NOT NULL DEFAULT 0;",
    // What a build's Git checkout checked out, and its change log (scm.rs).
    "ALTER TABLE builds ADD COLUMN scm_commit TEXT;
    ALTER TABLE builds ADD COLUMN scm_json TEXT;",
    // What polling and cron triggers remember (polls.rs).
    "CREATE TABLE scm_polls (job TEXT PRIMARY KEY, seen TEXT NOT NULL);
    CREATE TABLE trigger_fires (
        job TEXT NOT NULL,
        kind TEXT NOT NULL,
        minute INTEGER NOT NULL,
        PRIMARY KEY (job, kind)
    );",
    // Credentials, sealed (credentials.rs).
    "CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        class TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );",
    // A build's test counts, from its JUnit reports (builds.rs).
    "ALTER TABLE builds ADD COLUMN test_total INTEGER;
    ALTER TABLE builds ADD COLUMN test_failed INTEGER;
    ALTER TABLE builds ADD COLUMN test_skipped INTEGER;",
    // Users with passwords, several named tokens each, and the permissions granted to users
    // and to `authenticated` and `anonymous` (users.rs). What `is_admin` and the fixed rule
    // for other users gave becomes grants.
    "ALTER TABLE users ADD COLUMN email TEXT;
    ALTER TABLE users ADD COLUMN password_hash TEXT;
    ALTER TABLE api_tokens ADD COLUMN uuid TEXT;
    ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
    UPDATE api_tokens SET uuid = lower(substr(hex(randomblob(4)), 1) || '-' || hex(randomblob(2))
        || '-4' || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2)
        || '-' || hex(randomblob(6)));
    CREATE UNIQUE INDEX api_tokens_uuid ON api_tokens (uuid);
    CREATE TABLE grants (
        principal TEXT NOT NULL,
        permission TEXT NOT NULL,
        PRIMARY KEY (principal, permission)
    );
    INSERT INTO grants SELECT name, 'hudson.model.Hudson.Administer' FROM users WHERE is_admin = 1;
    INSERT INTO grants VALUES ('authenticated', 'hudson.model.Hudson.Read'),
        ('authenticated', 'hudson.model.Item.Read');",
    // The audit log (audit.rs): pruned by time and by id, listed by id, filtered by user.
    "CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        remote TEXT,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_log_time ON audit_log (time_ms);
    CREATE INDEX audit_log_user ON audit_log (user, id);",
    // A build's description and display name (`set-build-description`,
    // `set-build-display-name`), and the views (views.rs): each one's XML by name.
    "ALTER TABLE builds ADD COLUMN description TEXT;
    ALTER TABLE builds ADD COLUMN display_name TEXT;
    CREATE TABLE views (
        name TEXT PRIMARY KEY NOT NULL,
        config_xml TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "database file was written by a newer Steward (schema {found}, this build knows {known})"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("database task failed: {0}")]
    Task(String),
    #[error("{0}")]
    Persist(String),
}

impl StoreError {
    /// Whether the database could not be written for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// A handle on the database; cheap to clone.
///
/// Two connections: [`Store::call`]'s, which every write and most reads take in turn, and
/// [`Store::read`]'s, a read-only one for authentication. WAL lets it read while the other
/// writes, so no call, however long, makes a request wait to learn who sent it.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        for named in [name_keys::Named::Jobs, name_keys::Named::Nodes] {
            name_keys::refresh(&mut conn, named)?;
        }
        let reader = Connection::open(path)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        reader.pragma_update(None, "query_only", "ON")?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_locked(self.conn.clone(), f).await
    }

    /// Runs `f` with the read-only connection on the blocking pool. For short lookups that
    /// must not wait for [`Store::call`]'s connection: authentication.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_locked(self.reader.clone(), move |c| f(c)).await
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        self.call(|conn| {
            let result: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if result == "ok" {
                Ok(())
            } else {
                Err(StoreError::Corrupt(result))
            }
        })
        .await
    }
}

async fn run_locked<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A panic while holding the lock poisons it; the connection itself is still
        // consistent (SQLite rolls back the open transaction), so keep using it.
        let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::NewerSchema {
            found: version,
            known,
        });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Seconds since the Unix epoch, for `created_at`/`updated_at` columns.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        store.integrity_check().await.unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .call(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn reads_go_on_while_another_call_holds_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = tokio::sync::oneshot::channel();
        let holder = store.clone();
        let holder = tokio::spawn(async move {
            holder
                .call(move |c| {
                    // A write in progress, as a slow request would leave it.
                    c.execute_batch("BEGIN IMMEDIATE; CREATE TABLE t (x INTEGER);")?;
                    let _ = held.send(());
                    let _ = released.recv();
                    c.execute_batch("COMMIT;")?;
                    Ok(())
                })
                .await
        });
        is_held.await.unwrap();
        // A deadline for a loaded machine, not a measure of speed.
        let read = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))?));
        let users = tokio::time::timeout(std::time::Duration::from_secs(30), read)
            .await
            .expect("the read waited for the other connection")
            .unwrap();
        assert_eq!(users, 0);
        let write = store
            .read(|c| Ok(c.execute("DELETE FROM users", [])?))
            .await;
        assert!(write.is_err(), "the read connection wrote");
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }
}
