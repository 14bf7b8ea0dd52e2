//! Per-node monitors: while an agent's channel is up, [`watch`] samples its round-trip
//! time (a channel PING), its clock offset and the free disk in its work dir (an `Info`
//! call), and stores the latest sample in the registry's live entry, where `list-nodes` and
//! `node-info` read it.
//!
//! The watcher runs inside the agent session (`mux::run` joins it with the channel), so it
//! ends when the channel does; nothing is spawned.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steward_channel::{Channel, call};
use steward_protocol::services::{AgentInfo, Request, Response};

use super::registry::AgentRegistry;

/// Time between samples. Monitors feed a status display, not an alarm (Jenkins samples its
/// node monitors hourly), and `node-info` measures afresh on demand. Each sample is a ping
/// and a call on every connected agent: once a minute, they were more than half of what an
/// idle fleet of 10,000 agents cost the controller's CPU (docs/benchmarks.md, fleet).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(300);
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
    /// Bytes free for the agent in its work dir.
    pub free_disk_bytes: Option<u64>,
    pub sampled_at: SystemTime,
}

/// Samples the node behind `channel` now and every [`MONITOR_INTERVAL`] until the channel
/// closes, storing each sample under `connection_id`.
pub async fn watch(
    channel: Channel,
    registry: Arc<AgentRegistry>,
    node: String,
    connection_id: u64,
) {
    let sampling = async {
        let mut ticks = tokio::time::interval(MONITOR_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick is immediate: the first sample is taken right after connect.
            ticks.tick().await;
            let monitors = sample(&channel).await;
            tracing::debug!(node = %node, connection_id, ?monitors, "node monitors");
            registry.set_monitors(&node, connection_id, monitors);
        }
    };
    tokio::select! {
        () = sampling => {}
        () = channel.closed() => {}
    }
}

/// Takes one sample: a ping, then an `Info` call.
pub async fn sample(channel: &Channel) -> Monitors {
    let rtt = channel.ping().await.ok();
    let before = now_ms();
    let info = match tokio::time::timeout(INFO_TIMEOUT, call::call(channel, &Request::Info)).await {
        Ok(Ok(Response::Info(info))) => Some(info),
        _ => None,
    };
    let after = now_ms();
    Monitors {
        rtt,
        clock_offset_ms: info.as_ref().map(|i| clock_offset_ms(i, before, after)),
        free_disk_bytes: info.map(|i| i.work_dir_free_bytes),
        sampled_at: SystemTime::now(),
    }
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
    use bytes::Bytes;
    use futures_util::Stream;
    use steward_channel::{Incoming, Side};
    use steward_protocol::channel::{GoAway, GoAwayCode};
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    use crate::agents::registry::AgentKind;

    type Rx = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

    /// An in-memory connection of a few messages each way.
    fn pipe() -> (PollSender<Bytes>, Rx) {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let rx = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        (PollSender::new(tx), Box::pin(rx))
    }

    /// Answers every `Info` with a clock an hour ahead.
    async fn serve_info(mut incoming: Incoming) {
        while let Some(mut accepted) = incoming.accept().await {
            let info = info(now_ms() + 3_600_000);
            let _ = call::reply(&mut accepted.stream, &Response::Info(info)).await;
            // Read the caller's EOF before dropping the stream: a drop before it resets the
            // stream, and the RESET (a control frame) could overtake the answer.
            while let Some(Ok(_)) = accepted.stream.recv().await {}
        }
    }

    #[tokio::test]
    async fn watcher_stores_a_sample_and_ends_with_the_channel() {
        let (c_tx, a_rx) = pipe();
        let (a_tx, c_rx) = pipe();
        let (controller, _incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
        let (agent, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
        let registry = Arc::new(AgentRegistry::default());
        let kind = AgentKind::Steward { channel_version: 1 };
        let registration = registry
            .register("n1", None, kind, "127.0.0.1:1".parse().unwrap())
            .unwrap();
        let watcher = watch(
            controller,
            registry.clone(),
            "n1".into(),
            registration.connection_id,
        );
        let checks = async {
            let sampled = async {
                loop {
                    if let Some(m) = registry.live("n1").and_then(|l| l.monitors) {
                        return m;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            let m = tokio::time::timeout(Duration::from_secs(10), sampled)
                .await
                .expect("a sample");
            assert!(m.rtt.is_some());
            let offset = m.clock_offset_ms.expect("an offset");
            assert!((3_590_000..=3_610_000).contains(&offset), "{offset}");
            assert_eq!(m.free_disk_bytes, Some(5));
            agent
                .close(GoAway {
                    code: GoAwayCode::Shutdown,
                    reason: "test over".into(),
                })
                .await;
        };
        let all = async {
            tokio::join!(
                watcher,
                checks,
                c_driver,
                a_driver,
                serve_info(agent_incoming)
            )
        };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("the watcher ends with the channel");
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
