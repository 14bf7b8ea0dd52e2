//! Simulated agents: each runs the agent's own attempt (`GET login`, the `/wsagents/`
//! upgrade with the real headers) and session (HELLO, the mux channel, keepalive, the
//! services), and reconnects with the agent's own backoff schedule, in one task. All of
//! them share one runtime, one HTTP client and one TLS configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use steward_agent::connect::{self, AttemptError, Endpoint, Transport};
use steward_agent::retry::Retry;
use steward_agent::services;
use steward_agent::session::{self, SessionEnd, SessionParams};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest run the per-second attempt counts cover.
const MAX_SECONDS: usize = 3600;

/// What the fleet did, counted as it happens.
pub struct Stats {
    started: Instant,
    /// Connection attempts begun in each second since `started`.
    attempts_per_second: Vec<AtomicU64>,
    pub attempts: AtomicU64,
    /// Refused with "already connected" (the controller still held an old connection).
    pub already_connected: AtomicU64,
    /// Other refusals and failures (the controller was down, a timeout, …).
    pub failed: AtomicU64,
    /// Sessions that got the controller's hello and later ended.
    pub sessions_ended: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            started: Instant::now(),
            attempts_per_second: (0..MAX_SECONDS).map(|_| AtomicU64::new(0)).collect(),
            attempts: AtomicU64::new(0),
            already_connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sessions_ended: AtomicU64::new(0),
        }
    }

    fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let second = self.started.elapsed().as_secs() as usize;
        if let Some(slot) = self.attempts_per_second.get(second) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Seconds since the fleet started.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Attempts begun in each whole second within `[from, to)` seconds.
    pub fn attempts_by_second(&self, from: f64, to: f64) -> Vec<u64> {
        let (from, to) = (from.floor() as usize, (to.ceil() as usize).min(MAX_SECONDS));
        (from..to)
            .map(|s| self.attempts_per_second[s].load(Ordering::Relaxed))
            .collect()
    }

    /// The largest number of attempts begun in one second, within `[from, to)` seconds.
    pub fn peak_attempts_per_second(&self, from: f64, to: f64) -> u64 {
        let (from, to) = (from.floor() as usize, (to.ceil() as usize).min(MAX_SECONDS));
        (from..to)
            .map(|s| self.attempts_per_second[s].load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

pub struct Fleet {
    pub stats: Arc<Stats>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Starts one task per endpoint, all at once.
    pub fn start(
        endpoints: Vec<Endpoint>,
        transport: Transport,
        work_dir: &std::path::Path,
    ) -> Fleet {
        let stats = Arc::new(Stats::new());
        let shutdown = CancellationToken::new();
        let services = services::Context::new(work_dir.to_path_buf());
        let transport = Arc::new(transport);
        let mut tasks = JoinSet::new();
        for endpoint in endpoints {
            let (stats, shutdown, services, transport) = (
                stats.clone(),
                shutdown.clone(),
                services.clone(),
                transport.clone(),
            );
            tasks.spawn(
                async move { agent(&endpoint, &transport, &services, &stats, &shutdown).await },
            );
        }
        Fleet {
            stats,
            shutdown,
            tasks,
        }
    }

    /// Closes every connection (1001, as a stopping agent does) and waits for the tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The agent's connect loop (`steward_agent::reconnect`), counting what happens.
async fn agent(
    endpoint: &Endpoint,
    transport: &Transport,
    services: &services::Context,
    stats: &Stats,
    shutdown: &CancellationToken,
) {
    let mut cookie: Option<String> = None;
    let mut retry = Retry::new(None);
    loop {
        stats.attempt();
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return,
            attempt = connect::attempt(endpoint, transport, cookie.as_deref()) => attempt,
        };
        match attempt {
            Err(AttemptError::Refused { body, .. }) if body.contains("already connected") => {
                stats.already_connected.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok((ws, answer)) => {
                if answer.cookie.is_some() {
                    cookie = answer.cookie;
                }
                let params = SessionParams {
                    node_name: endpoint.node_name.clone(),
                    channel_version: answer.channel_version,
                    idle_timeout: session::DEFAULT_IDLE_TIMEOUT,
                    services: services.clone(),
                };
                let outcome = session::run_session(ws, &params, shutdown).await;
                if outcome.end == SessionEnd::Shutdown {
                    return;
                }
                if outcome.established {
                    stats.sessions_ended.fetch_add(1, Ordering::Relaxed);
                    retry.reset();
                    continue;
                }
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if retry.wait(shutdown).await.is_err() {
            return;
        }
    }
}
