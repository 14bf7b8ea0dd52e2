//! Live agent connections, one per node at most, and why each offline node went offline.
//!
//! A connection is registered after its handshake passed and removed when its
//! [`Registration`] is dropped, so a node goes offline the moment its session ends however
//! it ends. Every change bumps a counter that `wait-node-*` and other watchers follow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use steward_protocol::channel::GoAway;
use steward_protocol::handshake;
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, mpsc, watch};

use super::monitors::Monitors;

/// Why a node held by a Java agent.jar is offline: the connection is held, but that agent
/// cannot run anything.
pub const JAVA_AGENT_STATUS: &str = "connected with a Java agent.jar, which cannot run builds; \
                                     use the agent binary from /jnlpJars/agent";

/// What kind of program is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// Our agent, speaking the Steward channel at this version.
    Steward { channel_version: u16 },
    /// A Java agent.jar: handshake done, connection held, no work possible.
    JavaRemoting,
}

/// A live connection as others see it.
#[derive(Debug, Clone)]
pub struct LiveAgent {
    pub connection_id: u64,
    pub kind: AgentKind,
    pub remote: SocketAddr,
    pub since: SystemTime,
    /// The agent's software version, once its hello arrived.
    pub agent_version: Option<String>,
    /// The latest monitor sample (round trip, clock offset, free disk), once one was taken.
    pub monitors: Option<Monitors>,
}

struct Entry {
    live: LiveAgent,
    cookie: String,
    control: mpsc::Sender<GoAway>,
    /// The multiplexed channel, once the hello exchange agreed on it.
    channel: Option<steward_channel::Channel>,
    /// Wakes the connection's monitor watcher when its node's disk state may have changed
    /// from outside (a sample taken elsewhere, a new threshold).
    monitor_wake: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Entry>,
    /// Why each node not connected now went offline (absent: never connected since start).
    offline_reasons: HashMap<String, String>,
}

/// Why a connection cannot be registered.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    AlreadyConnected,
}

/// The set of live connections; shared by the HTTP handlers and sessions.
pub struct AgentRegistry {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    changes: watch::Sender<u64>,
}

impl Default for AgentRegistry {
    fn default() -> Self {
        AgentRegistry {
            inner: Mutex::default(),
            next_id: AtomicU64::new(1),
            changes: watch::Sender::new(0),
        }
    }
}

/// Capacity of a session's control queue; one GOAWAY is all a session ever needs.
const CONTROL_QUEUE: usize = 1;

impl AgentRegistry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Registry updates are single statements; a panic elsewhere cannot leave it half
        // written, so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that changes whenever any node connects, disconnects or changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Announces a change made elsewhere (e.g. a node marked temporarily offline).
    pub fn notify_changed(&self) {
        self.bump();
    }

    /// Whether a new connection for `node` with `cookie` would be refused as a duplicate.
    pub fn would_refuse(&self, node: &str, cookie: Option<&str>) -> bool {
        let inner = self.lock();
        match inner.live.get(node) {
            None => false,
            Some(entry) => !cookie_matches(&entry.cookie, cookie),
        }
    }

    /// Registers a connection. When `node` is live and `cookie` matches its cookie, the old
    /// connection is told to go away and this one takes its place.
    pub fn register(
        self: &Arc<Self>,
        node: &str,
        cookie: Option<&str>,
        kind: AgentKind,
        remote: SocketAddr,
    ) -> Result<Registration, RegisterError> {
        let connection_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let cookie = match cookie {
            Some(c) if handshake::is_well_formed_cookie(c) => c.to_owned(),
            _ => hex::encode(rand::random::<[u8; 32]>()),
        };
        let live = LiveAgent {
            connection_id,
            kind,
            remote,
            since: SystemTime::now(),
            agent_version: None,
            monitors: None,
        };
        {
            let mut inner = self.lock();
            if let Some(old) = inner.live.get(node) {
                if !cookie_matches(&old.cookie, Some(&cookie)) {
                    return Err(RegisterError::AlreadyConnected);
                }
                let _ = old.control.try_send(GoAway {
                    code: steward_protocol::channel::GoAwayCode::Replaced,
                    reason: "a new connection with this connection's cookie took over".into(),
                });
            }
            inner.live.insert(
                node.to_owned(),
                Entry {
                    live,
                    cookie: cookie.clone(),
                    control,
                    channel: None,
                    monitor_wake: Arc::default(),
                },
            );
            inner.offline_reasons.remove(node);
        }
        self.bump();
        Ok(Registration {
            registry: self.clone(),
            node: node.to_owned(),
            connection_id,
            cookie,
            control: control_rx,
            end_reason: None,
        })
    }

    /// The live connection of `node`, if any.
    pub fn live(&self, node: &str) -> Option<LiveAgent> {
        self.lock().live.get(node).map(|e| e.live.clone())
    }

    /// Why `node` is offline, if it went offline since start.
    pub fn offline_reason(&self, node: &str) -> Option<String> {
        self.lock().offline_reasons.get(node).cloned()
    }

    /// Tells the live connection of `node` to go away; `false` when none is live.
    pub fn disconnect(&self, node: &str, goaway: GoAway) -> bool {
        let inner = self.lock();
        match inner.live.get(node) {
            Some(entry) => {
                let _ = entry.control.try_send(goaway);
                true
            }
            None => false,
        }
    }

    /// Forgets everything about a node (after delete or rename).
    pub fn forget(&self, node: &str) {
        self.lock().offline_reasons.remove(node);
    }

    /// Records the agent version from its hello.
    pub fn set_agent_version(&self, node: &str, connection_id: u64, version: String) {
        if let Some(e) = self
            .lock()
            .live
            .get_mut(node)
            .filter(|e| e.live.connection_id == connection_id)
        {
            e.live.agent_version = Some(version);
        }
        self.bump();
    }

    /// Publishes the channel of a live connection.
    pub fn set_channel(&self, node: &str, connection_id: u64, channel: steward_channel::Channel) {
        if let Some(e) = self
            .lock()
            .live
            .get_mut(node)
            .filter(|e| e.live.connection_id == connection_id)
        {
            e.channel = Some(channel);
        }
        self.bump();
    }

    /// Records the latest monitor sample of a live connection; the sample it replaces and
    /// the one stored (`None` when the connection is gone). A sample without disk figures
    /// (the agent did not answer) keeps the last ones: the disk state follows what was seen.
    ///
    /// Not announced as a change: most samples alter no node's state, and watchers would
    /// wake every interval for nothing. The caller announces a change of the disk state
    /// (`monitors::record`).
    pub fn set_monitors(
        &self,
        node: &str,
        connection_id: u64,
        mut monitors: Monitors,
    ) -> Option<(Option<Monitors>, Monitors)> {
        let mut inner = self.lock();
        let entry = inner
            .live
            .get_mut(node)
            .filter(|e| e.live.connection_id == connection_id)?;
        if monitors.disk.is_none() {
            monitors.disk = entry.live.monitors.as_ref().and_then(|m| m.disk.clone());
        }
        let previous = entry.live.monitors.replace(monitors.clone());
        Some((previous, monitors))
    }

    /// What wakes the monitor watcher of a live connection.
    pub fn monitor_wake(&self, node: &str, connection_id: u64) -> Option<Arc<Notify>> {
        self.lock()
            .live
            .get(node)
            .filter(|e| e.live.connection_id == connection_id)
            .map(|e| e.monitor_wake.clone())
    }

    /// Tells `node`'s monitor watcher, if it is connected, to look at its disk state again.
    pub fn wake_monitor(&self, node: &str) {
        if let Some(e) = self.lock().live.get(node) {
            e.monitor_wake.notify_one();
        }
    }

    /// The channel to `node`'s agent, when it is connected and speaks the channel.
    pub fn channel(&self, node: &str) -> Option<steward_channel::Channel> {
        self.lock().live.get(node).and_then(|e| e.channel.clone())
    }

    /// The channel to `node`'s agent with the id of its connection, to store what was
    /// measured over it ([`AgentRegistry::set_monitors`]).
    pub fn connection(&self, node: &str) -> Option<(u64, steward_channel::Channel)> {
        let inner = self.lock();
        let entry = inner.live.get(node)?;
        Some((entry.live.connection_id, entry.channel.clone()?))
    }

    /// Number of live connections.
    pub fn connected_count(&self) -> usize {
        self.lock().live.len()
    }

    /// Tells every live connection to go away (controller shutdown).
    pub fn disconnect_all(&self, goaway: GoAway) {
        for entry in self.lock().live.values() {
            let _ = entry.control.try_send(goaway.clone());
        }
    }
}

fn cookie_matches(live: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(live.as_bytes().ct_eq(p.as_bytes())))
}

/// A registered connection; dropping it takes the node offline (unless another connection
/// already took over).
pub struct Registration {
    registry: Arc<AgentRegistry>,
    pub node: String,
    pub connection_id: u64,
    /// The cookie to send back in the 101 answer.
    pub cookie: String,
    /// Receives a GOAWAY when the connection must end.
    pub control: mpsc::Receiver<GoAway>,
    end_reason: Option<String>,
}

impl Registration {
    /// Records why the connection ended, shown while the node stays offline.
    pub fn set_end_reason(&mut self, reason: impl Into<String>) {
        self.end_reason = Some(reason.into());
    }

    pub fn registry(&self) -> &Arc<AgentRegistry> {
        &self.registry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = {
            let mut inner = self.registry.lock();
            let ours = inner
                .live
                .get(&self.node)
                .is_some_and(|e| e.live.connection_id == self.connection_id);
            if ours {
                inner.live.remove(&self.node);
                let reason = self
                    .end_reason
                    .take()
                    .unwrap_or_else(|| "connection closed".into());
                inner.offline_reasons.insert(self.node.clone(), reason);
            }
            ours
        };
        if removed {
            self.registry.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn duplicate_is_refused_and_cookie_takes_over() {
        let reg = Arc::new(AgentRegistry::default());
        let mut first = reg
            .register("a", None, AgentKind::JavaRemoting, addr())
            .unwrap();
        assert!(reg.would_refuse("a", None));
        assert_eq!(
            reg.register("a", None, AgentKind::JavaRemoting, addr())
                .err(),
            Some(RegisterError::AlreadyConnected)
        );
        let wrong = "0".repeat(64);
        assert!(
            reg.register("a", Some(&wrong), AgentKind::JavaRemoting, addr())
                .is_err()
        );
        let cookie = first.cookie.clone();
        let second = reg
            .register("a", Some(&cookie), AgentKind::JavaRemoting, addr())
            .unwrap();
        assert_eq!(second.cookie, cookie);
        assert!(
            first.control.try_recv().is_ok(),
            "old connection is told to go away"
        );
        drop(first);
        assert_eq!(
            reg.live("a").map(|l| l.connection_id),
            Some(second.connection_id),
            "old drop keeps new entry"
        );
        drop(second);
        assert!(reg.live("a").is_none());
        assert_eq!(
            reg.offline_reason("a").as_deref(),
            Some("connection closed")
        );
    }

    #[test]
    fn changes_are_announced() {
        let reg = Arc::new(AgentRegistry::default());
        let rx = reg.subscribe();
        let r = reg
            .register("a", None, AgentKind::JavaRemoting, addr())
            .unwrap();
        assert!(rx.has_changed().unwrap());
        drop(r);
        assert_eq!(reg.connected_count(), 0);
    }
}
