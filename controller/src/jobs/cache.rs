//! Every job, parsed, in memory: read at start-up, then changed only by the writes of
//! [`super`], inside the store call that makes each write (so the cache and the database
//! change in the same order). Readers never touch the store and never parse: a job's
//! configuration is parsed once, when it is written (or at start-up), not on each request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use steward_protocol::names;

use crate::store::StoreError;
use crate::store::jobs::JobRecord;

/// One job as kept.
#[derive(Debug, Clone)]
pub enum Entry {
    Ready(Arc<JobRecord>),
    /// Stored XML this version cannot read, with why: the job can still be deleted or
    /// replaced.
    Corrupt(String),
}

impl Entry {
    pub fn record(&self) -> Result<Arc<JobRecord>, StoreError> {
        match self {
            Entry::Ready(record) => Ok(record.clone()),
            Entry::Corrupt(why) => Err(StoreError::Corrupt(why.clone())),
        }
    }
}

/// The jobs by stored name; see the module documentation.
#[derive(Debug, Default)]
pub struct JobCache {
    jobs: Mutex<BTreeMap<String, Entry>>,
}

impl JobCache {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // Every change is one map operation: a panic elsewhere cannot leave it half done.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job `name` names, with its stored name: the job stored under `name` exactly,
    /// else under `name` in NFC. New names are stored in NFC, so any spelling finds them;
    /// a job stored before names were normalized is found under its own spelling.
    pub fn find(&self, name: &str) -> Option<(String, Entry)> {
        let jobs = self.lock();
        let canonical = names::canonical(name);
        [name, canonical.as_ref()]
            .into_iter()
            .find_map(|n| jobs.get_key_value(n))
            .map(|(n, e)| (n.clone(), e.clone()))
    }

    /// Whether `record` is still what the cache holds for its name.
    pub fn is_current(&self, record: &Arc<JobRecord>) -> bool {
        matches!(self.lock().get(&record.name), Some(Entry::Ready(r)) if Arc::ptr_eq(r, record))
    }

    /// Every job, by name.
    pub fn all(&self) -> Vec<Entry> {
        self.lock().values().cloned().collect()
    }

    /// Every job with its name, by name.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        self.lock()
            .iter()
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect()
    }

    /// Every job name, by name.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Called, inside the store call, after a job was written.
    pub fn put(&self, record: Arc<JobRecord>) {
        self.lock()
            .insert(record.name.clone(), Entry::Ready(record));
    }

    /// Called, inside the store call, after a job was deleted.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Replaces what the cache holds for `name` (a job read again from the store), inside
    /// the store call that read it.
    pub fn fill_one(&self, name: String, entry: Entry) {
        self.lock().insert(name, entry);
    }

    /// Fills the cache at start-up, before anything reads or writes jobs; and, on a reload,
    /// inside the store call that read the rows.
    pub fn fill(&self, entries: impl IntoIterator<Item = (String, Entry)>) {
        let mut jobs = self.lock();
        jobs.clear();
        jobs.extend(entries);
    }
}
