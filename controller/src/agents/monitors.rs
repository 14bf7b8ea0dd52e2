//! Per-node monitors: while an agent's channel is up, [`watch`] samples its round-trip
//! time (a channel PING), its clock offset and the free space in its work dir with the size
//! of that file system (an `InfoV2` call; `Info` for an agent older than it), and
//! [`record`]s the latest sample in the registry's live entry, where `list-nodes`,
//! `node-info` and the node's status read it.
//!
//! The free disk decides whether the node takes builds (`disk_space`): [`record`] announces
//! a change of that state as a registry change, which wakes the scheduler and
//! `wait-node-*`. A node below its threshold is sampled every [`LOW_SPACE_INTERVAL`] rather
//! than every [`MONITOR_INTERVAL`], so it is back online soon after space is freed. Samples
//! also come from elsewhere, stored the same way: `node-info` takes one, and a build's
//! runner takes one when a step fails (the step may have failed for want of space).
//!
//! The watcher runs inside the agent session (`mux::run` joins it with the channel), so it
//! ends when the channel does; nothing is spawned.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steward_channel::call::{self, CallError};
use steward_channel::{Channel, StreamError};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{AgentInfo, Request, Response};
use tokio::time::Instant;

use super::disk_space::{self, DiskSample, LowSpace};
use crate::state::AppState;

/// Time between samples. Monitors feed a status display, not an alarm (Jenkins samples its
/// node monitors hourly), and `node-info` measures afresh on demand. Each sample is a ping
/// and a call on every connected agent: once a minute, they were more than half of what an
/// idle fleet of 10,000 agents cost the controller's CPU (docs/benchmarks.md, fleet).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(300);
/// Time between samples while a node is below its disk-space threshold: the first sample
/// that shows the space back brings the node online, so this bounds how long it stays
/// offline once someone frees space. Only nodes low on space are sampled this often.
pub const LOW_SPACE_INTERVAL: Duration = Duration::from_secs(15);
/// How long one `Info` call may take before the sample goes without it; a busy agent must
/// not hold the watcher past its next turn.
pub const INFO_TIMEOUT: Duration = Duration::from_secs(30);

/// The latest measurements of one node; a part that could not be measured is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitors {
    /// Round trip of a channel PING.
    pub rtt: Option<Duration>,
    /// Agent clock minus controller clock, in milliseconds, at the midpoint of the call.
    pub clock_offset_ms: Option<i64>,
    /// The work dir's free space (kept from the last sample that had it).
    pub disk: Option<DiskSample>,
    pub sampled_at: SystemTime,
}

impl Monitors {
    /// A sample from a ping's round trip and the agent's facts, asked between `before_ms`
    /// and `after_ms` (the controller's clock).
    pub fn from_facts(rtt: Option<Duration>, facts: &Facts, before_ms: i64, after_ms: i64) -> Self {
        let now = SystemTime::now();
        Monitors {
            rtt,
            clock_offset_ms: Some(clock_offset_ms(&facts.info, before_ms, after_ms)),
            disk: Some(DiskSample {
                path: facts.info.work_dir.clone(),
                free_bytes: facts.info.work_dir_free_bytes,
                total_bytes: facts.work_dir_total_bytes,
                sampled_at: now,
            }),
            sampled_at: now,
        }
    }

    /// Bytes free in the work dir, when measured.
    pub fn free_disk_bytes(&self) -> Option<u64> {
        self.disk.as_ref().map(|d| d.free_bytes)
    }
}

/// What an agent says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub info: AgentInfo,
    /// The size of the work dir's file system; `None` from an agent older than `InfoV2`.
    pub work_dir_total_bytes: Option<u64>,
}

/// Asks the agent for its [`Facts`]: `InfoV2`, or `Info` when the agent refuses `InfoV2`
/// as a request it does not know. `older` remembers that refusal for the connection's
/// next calls (a caller that asks once passes `&mut false`).
pub async fn ask(channel: &Channel, older: &mut bool) -> Result<Facts, CallError> {
    if !*older {
        match call::call(channel, &Request::InfoV2).await {
            Ok(Response::InfoV2 {
                info,
                work_dir_total_bytes,
            }) => {
                return Ok(Facts {
                    info,
                    work_dir_total_bytes: Some(work_dir_total_bytes),
                });
            }
            Ok(other) => return Err(unexpected(&other)),
            Err(CallError::Stream(StreamError::Reset {
                code: ResetCode::Refused,
                reason,
            })) => {
                tracing::debug!(?reason, "the agent does not know InfoV2: asking Info");
                *older = true;
            }
            Err(e) => return Err(e),
        }
    }
    match call::call(channel, &Request::Info).await? {
        Response::Info(info) => Ok(Facts {
            info,
            work_dir_total_bytes: None,
        }),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(answer: &Response) -> CallError {
    let mut text = format!("{answer:?}");
    text.truncate(200);
    CallError::BadResponse(format!("unexpected answer {text}"))
}

/// Samples the node behind `channel` now and then every [`MONITOR_INTERVAL`] (every
/// [`LOW_SPACE_INTERVAL`] while it is low on disk space) until the channel closes,
/// recording each sample under `connection_id`.
pub async fn watch(channel: Channel, state: AppState, node: String, connection_id: u64) {
    let Some(wake) = state.agents.monitor_wake(&node, connection_id) else {
        return;
    };
    let sampling = async {
        let mut older = false;
        loop {
            let monitors = sample(&channel, &mut older).await;
            tracing::debug!(node = ?node, connection_id, ?monitors, "node monitors");
            let low = record(&state, &node, connection_id, monitors)
                .await
                .is_some();
            let interval = if low {
                LOW_SPACE_INTERVAL
            } else {
                MONITOR_INTERVAL
            };
            let mut next = Instant::now() + interval;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => break,
                    // A sample taken elsewhere, or a new threshold: a node now low on space
                    // is looked at again soon.
                    () = wake.notified() => {
                        if low_space(&state, &node).await.is_some() {
                            next = next.min(Instant::now() + LOW_SPACE_INTERVAL);
                        }
                    }
                }
            }
        }
    };
    tokio::select! {
        () = sampling => {}
        () = channel.closed() => {}
    }
}

/// Takes one sample: a ping, then the agent's facts (see [`ask`] for `older`).
pub async fn sample(channel: &Channel, older: &mut bool) -> Monitors {
    let rtt = channel.ping().await.ok();
    let before = now_ms();
    let facts = tokio::time::timeout(INFO_TIMEOUT, ask(channel, older)).await;
    let after = now_ms();
    match facts {
        Ok(Ok(facts)) => Monitors::from_facts(rtt, &facts, before, after),
        _ => Monitors {
            rtt,
            clock_offset_ms: None,
            disk: None,
            sampled_at: SystemTime::now(),
        },
    }
}

/// Stores a sample of `node`'s connection `connection_id`; whether the node is now low on
/// disk space. When that changes, the change is announced (the scheduler starts or stops
/// giving the node builds) and logged.
pub async fn record(
    state: &AppState,
    node: &str,
    connection_id: u64,
    sample: Monitors,
) -> Option<LowSpace> {
    let nodes = crate::nodes::list(state).await.ok();
    let (previous, current) = state.agents.set_monitors(node, connection_id, sample)?;
    let nodes = nodes?;
    let config = &nodes.iter().find(|r| r.config.name == node)?.config;
    let low = |m: Option<&Monitors>| {
        m.and_then(|m| m.disk.as_ref())
            .and_then(|d| disk_space::low(config, d))
    };
    let was = low(previous.as_ref());
    let now = low(Some(&current));
    if was.is_some() != now.is_some() {
        match &now {
            Some(low) => {
                tracing::warn!(node = ?node, reason = ?low.reason(), "node offline: low disk space")
            }
            None => {
                tracing::info!(node = ?node, free = ?current.free_disk_bytes(), "disk space is back: node online")
            }
        }
        state.agents.notify_changed();
        state.agents.wake_monitor(node);
    }
    now
}

/// Whether `node`'s latest sample is below its threshold now.
pub async fn low_space(state: &AppState, node: &str) -> Option<LowSpace> {
    let disk = state.agents.live(node)?.monitors?.disk?;
    let nodes = crate::nodes::list(state).await.ok()?;
    let record = nodes.iter().find(|r| r.config.name == node)?;
    disk_space::low(&record.config, &disk)
}

/// The agent's clock minus ours, taking our clock at the midpoint of the call (the agent
/// read its clock somewhere in between; the midpoint halves the error).
pub fn clock_offset_ms(info: &AgentInfo, before_ms: i64, after_ms: i64) -> i64 {
    let midpoint = before_ms + (after_ms - before_ms) / 2;
    info.clock_ms.saturating_sub(midpoint)
}

/// The controller's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::Stream;
    use steward_channel::{Incoming, Side};
    use steward_protocol::channel::{GoAway, GoAwayCode};
    use steward_protocol::node_xml::NodeConfig;
    use steward_protocol::services::decode_request;
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    use crate::agents::registry::{AgentKind, Registration};

    type Rx = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

    /// An in-memory connection of a few messages each way.
    fn pipe() -> (PollSender<Bytes>, Rx) {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let rx = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        (PollSender::new(tx), Box::pin(rx))
    }

    /// A pretend agent: what it says, and the requests it was sent.
    #[derive(Clone)]
    struct FakeAgent {
        /// Whether it knows `InfoV2` (an older agent refuses it).
        knows_v2: bool,
        free: u64,
        total: u64,
        asked: Arc<Mutex<Vec<Request>>>,
    }

    impl FakeAgent {
        fn new(knows_v2: bool, free: u64, total: u64) -> Self {
            FakeAgent {
                knows_v2,
                free,
                total,
                asked: Arc::default(),
            }
        }

        fn asked(&self) -> Vec<Request> {
            self.asked.lock().unwrap().clone()
        }

        /// Answers `Info` and `InfoV2` with a clock an hour ahead, as an agent of its age.
        async fn serve(self, mut incoming: Incoming) {
            while let Some(accepted) = incoming.accept().await {
                let request = decode_request(&accepted.header).unwrap();
                self.asked.lock().unwrap().push(request.clone());
                let mut info = info(now_ms() + 3_600_000);
                info.work_dir_free_bytes = self.free;
                let answer = match request {
                    Request::InfoV2 if self.knows_v2 => Response::InfoV2 {
                        info,
                        work_dir_total_bytes: self.total,
                    },
                    Request::Info => Response::Info(info),
                    _ => {
                        accepted
                            .stream
                            .reset(ResetCode::Refused, "unknown request #16");
                        continue;
                    }
                };
                let mut stream = accepted.stream;
                let _ = call::reply(&mut stream, &answer).await;
                // Read the caller's EOF before dropping the stream: a drop before it resets
                // the stream, and the RESET (a control frame) could overtake the answer.
                while let Some(Ok(_)) = stream.recv().await {}
            }
        }
    }

    /// A controller state with node `n1` and a connection for it, the node list cached.
    async fn state_with_n1(dir: &std::path::Path) -> (AppState, Registration) {
        let state = AppState::for_tests(dir);
        crate::nodes::create(
            &state,
            NodeConfig::inbound("n1"),
            &crate::audit::Actor::system(),
        )
        .await
        .unwrap();
        crate::nodes::list(&state).await.unwrap();
        let kind = AgentKind::Steward { channel_version: 1 };
        let registration = state
            .agents
            .register("n1", None, kind, "127.0.0.1:1".parse().unwrap())
            .unwrap();
        (state, registration)
    }

    /// Runs `checks` against a watcher of `n1` whose agent is `agent`; the watcher must end
    /// when the checks close the channel.
    async fn with_watcher<F: std::future::Future<Output = ()>>(
        state: &AppState,
        registration: &Registration,
        agent: FakeAgent,
        checks: impl FnOnce(Channel) -> F,
    ) {
        let (c_tx, a_rx) = pipe();
        let (a_tx, c_rx) = pipe();
        let (controller, _incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
        let (agent_side, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
        let watcher = watch(
            controller,
            state.clone(),
            "n1".into(),
            registration.connection_id,
        );
        let checked = async {
            checks(agent_side.clone()).await;
            agent_side
                .close(GoAway {
                    code: GoAwayCode::Shutdown,
                    reason: "test over".into(),
                })
                .await;
        };
        let all = async {
            tokio::join!(
                watcher,
                checked,
                c_driver,
                a_driver,
                agent.serve(agent_incoming)
            )
        };
        tokio::time::timeout(Duration::from_secs(1000), all)
            .await
            .expect("the watcher ends with the channel");
    }

    async fn first_sample(state: &AppState) -> Monitors {
        loop {
            if let Some(m) = state.agents.live("n1").and_then(|l| l.monitors) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn watcher_stores_a_sample_and_ends_with_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let (state, registration) = state_with_n1(dir.path()).await;
        let agent = FakeAgent::new(true, 5 << 30, 500 << 30);
        with_watcher(&state, &registration, agent.clone(), |_| async {
            let m = tokio::time::timeout(Duration::from_secs(10), first_sample(&state))
                .await
                .expect("a sample");
            assert!(m.rtt.is_some());
            let offset = m.clock_offset_ms.expect("an offset");
            assert!((3_590_000..=3_610_000).contains(&offset), "{offset}");
            let disk = m.disk.expect("disk figures");
            assert_eq!(
                (disk.path.as_str(), disk.free_bytes, disk.total_bytes),
                ("/w", 5 << 30, Some(500 << 30))
            );
        })
        .await;
        assert_eq!(agent.asked(), [Request::InfoV2]);
    }

    #[tokio::test]
    async fn an_older_agent_is_asked_info_and_held_to_1_gib() {
        let dir = tempfile::tempdir().unwrap();
        let (state, registration) = state_with_n1(dir.path()).await;
        // 900 MiB free of 20 GiB: fine by 1% of the disk, low by the 1 GiB an older agent,
        // which cannot say how big its disk is, is held to.
        let agent = FakeAgent::new(false, 900 << 20, 20 << 30);
        let shared = &state;
        with_watcher(&state, &registration, agent.clone(), |_| async move {
            let m = tokio::time::timeout(Duration::from_secs(10), first_sample(shared))
                .await
                .expect("a sample");
            assert_eq!(m.disk.as_ref().map(|d| d.total_bytes), Some(None));
            let record = crate::nodes::get(shared, "n1").await.unwrap();
            let status = crate::nodes::status(shared, &record);
            assert!(!status.online);
            assert_eq!(
                status.reason.as_deref(),
                Some("Disk space is too low. Only 900.0 MiB free in /w (threshold 1.0 GiB)")
            );
        })
        .await;
        assert_eq!(agent.asked(), [Request::InfoV2, Request::Info]);
        // `ask` remembers the refusal for the connection.
        let mut older = true;
        let (c_tx, a_rx) = pipe();
        let (a_tx, c_rx) = pipe();
        let (controller, _incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
        let (_agent_side, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
        let again = FakeAgent::new(false, 1, 1);
        tokio::spawn(c_driver);
        tokio::spawn(a_driver);
        tokio::spawn(again.clone().serve(agent_incoming));
        let facts = ask(&controller, &mut older).await.unwrap();
        assert_eq!(facts.work_dir_total_bytes, None);
        assert_eq!(again.asked(), [Request::Info]);
    }

    /// How many samples the watcher takes in `span` of (paused) time for an agent with
    /// `free` bytes free of 1,000 (a threshold of 10 bytes).
    async fn samples_in(span: Duration, free: u64) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let (state, registration) = state_with_n1(dir.path()).await;
        let agent = FakeAgent::new(true, free, 1_000);
        with_watcher(&state, &registration, agent.clone(), |_| async move {
            tokio::time::sleep(span).await;
        })
        .await;
        agent.asked().len()
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_low_on_space_is_sampled_every_low_space_interval() {
        let span = LOW_SPACE_INTERVAL * 2 + LOW_SPACE_INTERVAL / 2;
        assert_eq!(samples_in(span, 5).await, 3, "at 0, 15 and 30 s");
        assert_eq!(samples_in(span, 500).await, 1, "at 0 s only");
        assert_eq!(
            samples_in(MONITOR_INTERVAL + LOW_SPACE_INTERVAL, 500).await,
            2
        );
    }

    fn disk_sample(free_bytes: u64) -> Monitors {
        Monitors {
            rtt: None,
            clock_offset_ms: None,
            disk: Some(DiskSample {
                path: "/w".into(),
                free_bytes,
                total_bytes: Some(1_000),
                sampled_at: SystemTime::now(),
            }),
            sampled_at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn record_announces_changes_of_the_disk_state_only() {
        let dir = tempfile::tempdir().unwrap();
        let (state, registration) = state_with_n1(dir.path()).await;
        let id = registration.connection_id;
        let mut changes = state.agents.subscribe();
        changes.borrow_and_update();
        let record_and_see = |free: u64| {
            let state = state.clone();
            async move { record(&state, "n1", id, disk_sample(free)).await }
        };
        assert_eq!(record_and_see(500).await, None);
        assert!(
            !changes.has_changed().unwrap(),
            "plenty of space is no news"
        );
        let low = record_and_see(5).await.expect("low");
        assert_eq!((low.free_bytes, low.threshold_bytes), (5, 10));
        assert!(changes.has_changed().unwrap(), "going low is announced");
        changes.borrow_and_update();
        assert!(record_and_see(6).await.is_some());
        assert!(!changes.has_changed().unwrap(), "still low is no news");
        // A sample without disk figures keeps the last ones.
        let mut blind = disk_sample(0);
        blind.disk = None;
        assert!(record(&state, "n1", id, blind).await.is_some());
        assert!(!changes.has_changed().unwrap());
        assert_eq!(record_and_see(11).await, None);
        assert!(changes.has_changed().unwrap(), "space back is announced");
        // A sample of a connection that has gone is dropped.
        assert_eq!(record(&state, "n1", id + 1, disk_sample(0)).await, None);
        assert_eq!(
            state
                .agents
                .live("n1")
                .and_then(|l| l.monitors?.free_disk_bytes()),
            Some(11)
        );
    }

    fn info(clock_ms: i64) -> AgentInfo {
        AgentInfo {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpus: 2,
            memory_total_bytes: 0,
            memory_available_bytes: 0,
            work_dir: "/w".into(),
            work_dir_free_bytes: 5,
            agent_version: "0".into(),
            clock_ms,
        }
    }

    #[test]
    fn offset_is_taken_at_the_midpoint() {
        assert_eq!(clock_offset_ms(&info(1_050), 1_000, 1_100), 0);
        assert_eq!(clock_offset_ms(&info(3_050), 1_000, 1_100), 2_000);
        assert_eq!(clock_offset_ms(&info(50), 1_000, 1_100), -1_000);
        assert_eq!(clock_offset_ms(&info(i64::MIN), 1, 1), i64::MIN);
    }
}
