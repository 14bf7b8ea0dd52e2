//! Small-call round trips: a `Stat` call (a new stream each time: OPEN, EOF, response, EOF)
//! and a channel PING, sampled one after another, on an idle channel or beside a [`Load`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use steward_channel::{Channel, call};
use steward_protocol::services::{Request, Response};
use tokio_util::sync::CancellationToken;

use crate::bulk;

/// Calls made before sampling, so connection and allocator warm-up are not counted.
const WARM_UP: usize = 50;
/// How long a load may take to move its first bytes.
const LOAD_START_DEADLINE: Duration = Duration::from_secs(10);

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least p% of samples at or below it.
        let rank =
            |p: f64| ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Summary {
            n: ms.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "n": self.n, "p50_ms": self.p50, "p99_ms": self.p99, "max_ms": self.max, "mean_ms": self.mean })
    }
}

/// Which small call to sample.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    Stat,
    Ping,
}

pub async fn sample(
    channel: &Channel,
    probe: Probe,
    small_file: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let request = Request::Stat {
        path: small_file.to_owned(),
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..WARM_UP + n {
        let started = Instant::now();
        match probe {
            Probe::Stat => match call::call(channel, &request).await? {
                Response::Stat(_) => {}
                other => bail!("Stat {small_file} answered {other:?}"),
            },
            Probe::Ping => {
                channel.ping().await?;
            }
        }
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}

/// Bulk `ReadFile`s of one file, one after another on their own streams, until stopped.
pub struct Load {
    stop: CancellationToken,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    measuring_since: Instant,
    bytes_at_start: u64,
}

impl Load {
    /// Starts reading `path` over and over; returns once the first bytes arrived.
    pub async fn start(channel: &Channel, path: &str) -> anyhow::Result<Load> {
        let stop = CancellationToken::new();
        let bytes = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (channel, path, stop, bytes) = (
                channel.clone(),
                path.to_owned(),
                stop.clone(),
                bytes.clone(),
            );
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return anyhow::Ok(()),
                        read = bulk::read_file(&channel, &path, 0, Some(&bytes)) => { read?; }
                    }
                }
            }
        });
        let deadline = Instant::now() + LOAD_START_DEADLINE;
        while bytes.load(Ordering::Relaxed) == 0 {
            if task.is_finished() || Instant::now() > deadline {
                stop.cancel();
                return match task.await? {
                    Err(e) => Err(e.context("the background ReadFile failed")),
                    Ok(()) => {
                        bail!("the background ReadFile moved nothing in {LOAD_START_DEADLINE:?}")
                    }
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let bytes_at_start = bytes.load(Ordering::Relaxed);
        Ok(Load {
            stop,
            bytes,
            task,
            measuring_since: Instant::now(),
            bytes_at_start,
        })
    }

    /// Stops the load; returns the bytes it moved since it started and for how long.
    pub async fn stop(self) -> anyhow::Result<(u64, f64)> {
        let moved = self.bytes.load(Ordering::Relaxed) - self.bytes_at_start;
        let secs = self.measuring_since.elapsed().as_secs_f64();
        self.stop.cancel();
        self.task.await??;
        Ok((moved, secs))
    }
}
