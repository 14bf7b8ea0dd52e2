//! [`AuditLog`]: recording never waits and never fails the action. An entry goes into a
//! bounded queue; one task takes what is queued, up to a batch, writes it in one store
//! transaction (which also prunes), and takes the next. A full queue drops the entry and
//! counts it; the count is written as an `audit.dropped` entry with the next batch. A
//! batch the store refuses is logged and given up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::entry::{Action, Actor, NewEntry};
use crate::store::Store;

/// How long entries are kept when not told (`--audit-retention`).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
/// How many entries are kept at most when not told (`--audit-max-entries`): with entries
/// of at most about 6 KiB, the table stays under 600 MiB, and a few tens of MiB as
/// entries usually are.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Entries waiting for the writer at most; more are dropped and counted. Bounds the memory
/// a burst (thousands of agents reconnecting) takes, about 6 KiB an entry at worst.
pub const QUEUE: usize = 4096;
/// Most entries written in one transaction.
pub const BATCH: usize = 256;
/// Least time between two warnings about failed writes or dropped entries.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How long and how many entries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_entries: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: DEFAULT_MAX_AGE,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// The handle services record through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<NewEntry>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Entries the full queue turned away since the writer last wrote their count.
    dropped: AtomicU64,
    /// Asks the writer to write what is queued and stop.
    closing: CancellationToken,
}

/// The writer task; [`Writer::finish`] waits for it after [`AuditLog::close`].
pub struct Writer(tokio::task::JoinHandle<()>);

impl AuditLog {
    /// A log writing into `store`, keeping what `retention` says, and its writer task
    /// (started on the current runtime).
    pub fn start(store: Store, retention: Retention) -> (AuditLog, Writer) {
        let (queue, entries) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            closing: CancellationToken::new(),
        });
        let writer = tokio::spawn(run(store, entries, retention, shared.clone()));
        (AuditLog { queue, shared }, Writer(writer))
    }

    /// Records `by` doing `action` on `target` now. Never waits: with the queue full the
    /// entry is dropped and counted.
    pub fn record(&self, by: &Actor, action: Action, target: &str, details: Value) {
        let entry = NewEntry::new(crate::builds::now_ms(), by, action, target, details);
        if self.queue.try_send(entry).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the writer to write what is queued and stop; later entries are dropped.
    pub fn close(&self) {
        self.shared.closing.cancel();
    }
}

impl Writer {
    /// Waits (at most `within`) for the writer to write what was queued and stop.
    pub async fn finish(self, within: Duration) {
        if tokio::time::timeout(within, self.0).await.is_err() {
            tracing::warn!("the audit log's last entries were not written in time");
        }
    }
}

async fn run(
    store: Store,
    mut entries: mpsc::Receiver<NewEntry>,
    retention: Retention,
    shared: Arc<Shared>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut warned: Option<Instant> = None;
    loop {
        let last = tokio::select! {
            biased;
            n = entries.recv_many(&mut batch, BATCH) => n == 0,
            () = shared.closing.cancelled() => {
                entries.close();
                true
            }
        };
        if last {
            // What was queued before the close, a batch at a time.
            while let Ok(entry) = entries.try_recv() {
                batch.push(entry);
                if batch.len() >= BATCH {
                    write(&store, &mut batch, retention, &shared, &mut warned).await;
                }
            }
            write(&store, &mut batch, retention, &shared, &mut warned).await;
            return;
        }
        write(&store, &mut batch, retention, &shared, &mut warned).await;
    }
}

/// Writes `batch` (and the count of entries dropped since the last write) in one
/// transaction that also prunes; a failure is logged and the batch given up.
async fn write(
    store: &Store,
    batch: &mut Vec<NewEntry>,
    retention: Retention,
    shared: &Shared,
    warned: &mut Option<Instant>,
) {
    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        batch.push(NewEntry::new(
            crate::builds::now_ms(),
            &Actor::system(),
            Action::AuditDropped,
            "audit-log",
            json!({ "count": dropped, "why": "the audit log's queue was full" }),
        ));
    }
    if batch.is_empty() {
        return;
    }
    let entries = std::mem::take(batch);
    let count = entries.len();
    let max_age = i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
    let keep_after_ms = crate::builds::now_ms().saturating_sub(max_age);
    let max_entries = retention.max_entries;
    let written = store
        .call(move |c| crate::store::audit::append(c, &entries, keep_after_ms, max_entries))
        .await;
    if let Err(e) = written {
        let due = warned.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            *warned = Some(Instant::now());
            tracing::warn!(entries = count, error = ?e.to_string(), "cannot write to the audit log; these entries are lost (said at most once a minute)");
        }
    }
    batch.reserve(BATCH);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{Filter, page};

    async fn stored(store: &Store) -> Vec<crate::store::audit::AuditRow> {
        store
            .call(|c| page(c, &Filter::default(), 0, 10_000))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn entries_are_written_in_order_and_pruned_as_new_ones_come() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let retention = Retention {
            max_age: DEFAULT_MAX_AGE,
            max_entries: 3,
        };
        let (log, writer) = AuditLog::start(store.clone(), retention);
        let alice = Actor::new("alice", Some("127.0.0.1".parse().unwrap()));
        for i in 0..5 {
            log.record(&alice, Action::JobCreate, &format!("j{i}"), Value::Null);
        }
        log.close();
        writer.finish(Duration::from_secs(30)).await;
        let rows = stored(&store).await;
        let targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["j2", "j3", "j4"]);
        assert_eq!(rows[0].remote.as_deref(), Some("127.0.0.1"));
        assert_eq!(rows[0].action, "job.create");
    }

    #[tokio::test]
    async fn a_full_queue_drops_entries_counts_them_and_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        // The writer waits behind a store call that holds the connection, so the queue
        // fills.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = tokio::sync::oneshot::channel();
        let holder = store.clone();
        let holder = tokio::spawn(async move {
            holder
                .call(move |_| {
                    let _ = held.send(());
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        is_held.await.unwrap();
        let (log, writer) = AuditLog::start(store.clone(), Retention::default());
        let by = Actor::system();
        for _ in 0..QUEUE + BATCH + 10 {
            log.record(&by, Action::AgentConnect, "n", Value::Null);
        }
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        log.close();
        writer.finish(Duration::from_secs(30)).await;
        let rows = stored(&store).await;
        let dropped: u64 = rows
            .iter()
            .filter(|r| r.action == "audit.dropped")
            .map(|r| {
                serde_json::from_str::<Value>(&r.details).unwrap()["count"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        let kept = rows.iter().filter(|r| r.action == "agent.connect").count() as u64;
        assert!(dropped > 0, "nothing was dropped");
        assert_eq!(kept + dropped, (QUEUE + BATCH + 10) as u64);
    }

    #[tokio::test]
    async fn a_batch_the_store_refuses_is_given_up_and_the_next_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                Ok(c.execute_batch(
                    "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.target = 'lost'
                     BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                )?)
            })
            .await
            .unwrap();
        let (log, writer) = AuditLog::start(store.clone(), Retention::default());
        log.record(&Actor::system(), Action::JobCreate, "lost", Value::Null);
        // Once the writer has taken it, it is a batch of its own.
        let deadline = Instant::now() + Duration::from_secs(30);
        while log.queue.capacity() < QUEUE {
            assert!(Instant::now() < deadline, "the writer never took the entry");
            tokio::task::yield_now().await;
        }
        log.record(&Actor::system(), Action::JobCreate, "kept", Value::Null);
        log.close();
        writer.finish(Duration::from_secs(30)).await;
        let targets: Vec<String> = stored(&store).await.into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["kept"]);
    }
}
