//! Concurrent transfers: N `ReadFile` streams of the same file at once on one channel.
//!
//! Fairness is judged while all of them run: from the start until the first one finishes,
//! each stream's share of the bytes moved should be at least half of 1/N. (Rates over each
//! stream's whole life cannot show starvation: the last to finish always gets exactly the
//! average.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use steward_channel::Channel;
use tokio::task::JoinSet;

use crate::bulk;

pub struct StreamResult {
    /// Bytes this stream had received when the first stream finished.
    pub bytes_while_all_ran: u64,
    /// Seconds until this stream finished.
    pub secs: f64,
    pub bytes: u64,
}

pub struct Outcome {
    pub streams: Vec<StreamResult>,
    /// Seconds until the first stream finished.
    pub all_ran_secs: f64,
    /// Seconds until the last stream finished.
    pub total_secs: f64,
    pub total_bytes: u64,
}

impl Outcome {
    /// Each stream's rate while all ran, and the fair share (their mean), in bytes/s.
    pub fn shares(&self) -> (Vec<f64>, f64) {
        let rates: Vec<f64> = self
            .streams
            .iter()
            .map(|s| s.bytes_while_all_ran as f64 / self.all_ran_secs)
            .collect();
        let fair = rates.iter().sum::<f64>() / rates.len() as f64;
        (rates, fair)
    }
}

pub async fn run(channel: &Channel, path: &str, count: usize) -> anyhow::Result<Outcome> {
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let first_done: Arc<OnceLock<(f64, Vec<u64>)>> = Arc::default();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..count {
        let (channel, path, progress, first_done) = (
            channel.clone(),
            path.to_owned(),
            progress.clone(),
            first_done.clone(),
        );
        set.spawn(async move {
            let transfer = bulk::read_file(&channel, &path, 0, Some(&progress[i])).await?;
            first_done.get_or_init(|| {
                let snapshot = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
                (started.elapsed().as_secs_f64(), snapshot)
            });
            anyhow::Ok((i, transfer.bytes, started.elapsed().as_secs_f64()))
        });
    }
    let mut finished = vec![(0u64, 0f64); count];
    while let Some(joined) = set.join_next().await {
        let (i, bytes, secs) = joined??;
        finished[i] = (bytes, secs);
    }
    let total_secs = started.elapsed().as_secs_f64();
    let (all_ran_secs, snapshot) = first_done.get().cloned().expect("a stream finished");
    let streams: Vec<StreamResult> = finished
        .iter()
        .zip(snapshot)
        .map(|(&(bytes, secs), while_all)| StreamResult {
            bytes_while_all_ran: while_all,
            secs,
            bytes,
        })
        .collect();
    let total_bytes = streams.iter().map(|s| s.bytes).sum();
    Ok(Outcome {
        streams,
        all_ran_secs,
        total_secs,
        total_bytes,
    })
}
