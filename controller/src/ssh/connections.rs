//! The SSH connections the controller forwards, while they last: who opened each, from
//! where, to which node or build, and, once the agent's SSH server accepted a key, as whom.
//!
//! A build's breakpoint counts its clients here; aborting a build, or ending its
//! breakpoint, closes its connections ([`SshConnections::close_build`]), which ends their
//! sessions on the agent and kills what they started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most forwarded connections at once, in all: each holds an HTTP connection and a channel
/// stream (at most a window of bytes each way).
pub const MAX_CONNECTIONS: usize = 4096;
/// Most connections into one build at once.
pub const MAX_PER_BUILD: usize = 64;

/// A forwarded connection as lists and consoles show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub id: u64,
    pub node: String,
    /// The build's id, for a connection into a build.
    pub build: Option<u64>,
    /// The Steward user the controller authenticated.
    pub user: String,
    /// The client's address as the controller saw it.
    pub address: String,
    pub since_ms: i64,
    /// Set once the agent's SSH server accepted a key.
    pub login: Option<Login>,
}

impl ConnectionInfo {
    /// The client's IP address (`address` is `IP:PORT`).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.address
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| self.address.parse())
            .ok()
    }
}

/// Who an SSH server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub ssh_user: String,
    pub key_fingerprint: String,
    /// The Steward user whose key it was; `None` for a key from the agent's
    /// `.authorized_keys`.
    pub key_owner: Option<String>,
}

struct Entry {
    info: ConnectionInfo,
    stop: CancellationToken,
}

/// Why a connection could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("the controller forwards {MAX_CONNECTIONS} SSH connections already; try again later")]
    Total,
    #[error("this build has {MAX_PER_BUILD} SSH connections already")]
    Build,
}

/// Every forwarded connection; one per controller.
pub struct SshConnections {
    next_id: AtomicU64,
    inner: Mutex<HashMap<u64, Entry>>,
    /// Bumped on every change (open, login, close), for breakpoints counting clients.
    changes: watch::Sender<u64>,
}

impl Default for SshConnections {
    fn default() -> Self {
        SshConnections {
            next_id: AtomicU64::new(1),
            inner: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl SshConnections {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a connection; it is forgotten when the guard drops.
    pub fn open(
        self: &Arc<Self>,
        node: &str,
        build: Option<u64>,
        user: &str,
        address: &str,
        since_ms: i64,
    ) -> Result<ConnectionGuard, Full> {
        let mut inner = self.lock();
        if inner.len() >= MAX_CONNECTIONS {
            return Err(Full::Total);
        }
        if let Some(build) = build
            && inner
                .values()
                .filter(|e| e.info.build == Some(build))
                .count()
                >= MAX_PER_BUILD
        {
            return Err(Full::Build);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = CancellationToken::new();
        inner.insert(
            id,
            Entry {
                info: ConnectionInfo {
                    id,
                    node: node.to_owned(),
                    build,
                    user: user.to_owned(),
                    address: address.to_owned(),
                    since_ms,
                    login: None,
                },
                stop: stop.clone(),
            },
        );
        drop(inner);
        self.changed();
        Ok(ConnectionGuard {
            id,
            stop,
            registry: self.clone(),
        })
    }

    /// Notes who the SSH server accepted on connection `id`; the connection as it is now,
    /// or `None` when it has ended (or the agent named a connection it was not given).
    pub fn logged_in(&self, id: u64, node: &str, login: Login) -> Option<ConnectionInfo> {
        let mut inner = self.lock();
        let entry = inner.get_mut(&id).filter(|e| e.info.node == node)?;
        entry.info.login = Some(login);
        let info = entry.info.clone();
        drop(inner);
        self.changed();
        Some(info)
    }

    pub fn get(&self, id: u64) -> Option<ConnectionInfo> {
        self.lock().get(&id).map(|e| e.info.clone())
    }

    /// The connections into build `build` (its id), oldest first.
    pub fn of_build(&self, build: u64) -> Vec<ConnectionInfo> {
        let mut list: Vec<_> = self
            .lock()
            .values()
            .filter(|e| e.info.build == Some(build))
            .map(|e| e.info.clone())
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// Closes every connection into build `build`.
    pub fn close_build(&self, build: u64) {
        for entry in self.lock().values() {
            if entry.info.build == Some(build) {
                entry.stop.cancel();
            }
        }
    }

    /// How many connections are forwarded now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes to the list (opened, logged in, closed).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// A registered connection; dropping it forgets the connection.
pub struct ConnectionGuard {
    id: u64,
    stop: CancellationToken,
    registry: Arc<SshConnections>,
}

impl ConnectionGuard {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Cancelled when the controller closes the connection (its build's breakpoint ended,
    /// or the build was aborted).
    pub fn stopped(&self) -> &CancellationToken {
        &self.stop
    }

    /// The connection as it is now (with its login, once there is one).
    pub fn info(&self) -> Option<ConnectionInfo> {
        self.registry.get(self.id)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            ssh_user: "web-7".into(),
            key_fingerprint: "SHA256:x".into(),
            key_owner: Some("alice".into()),
        }
    }

    #[test]
    fn connections_are_listed_logged_in_closed_and_forgotten() {
        let registry = Arc::new(SshConnections::default());
        let mut changes = registry.subscribe();
        let a = registry
            .open("n1", Some(7), "alice", "1.2.3.4:5", 10)
            .unwrap();
        let b = registry.open("n1", None, "bob", "1.2.3.4:6", 11).unwrap();
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        assert_ne!(a.id(), b.id());
        assert_eq!(registry.of_build(7).len(), 1);
        assert!(registry.of_build(8).is_empty());
        // The agent of another node cannot claim a login on it.
        assert_eq!(registry.logged_in(a.id(), "n2", login()), None);
        let info = registry.logged_in(a.id(), "n1", login()).unwrap();
        assert_eq!(info.login, Some(login()));
        assert!(changes.has_changed().unwrap());
        registry.close_build(7);
        assert!(a.stopped().is_cancelled());
        assert!(!b.stopped().is_cancelled());
        drop(a);
        assert!(registry.of_build(7).is_empty());
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.logged_in(1, "n1", login()), None);
    }

    #[test]
    fn connections_are_capped_per_build() {
        let registry = Arc::new(SshConnections::default());
        let held: Vec<_> = (0..MAX_PER_BUILD)
            .map(|_| registry.open("n", Some(1), "u", "a", 0).unwrap())
            .collect();
        assert_eq!(
            registry.open("n", Some(1), "u", "a", 0).err(),
            Some(Full::Build)
        );
        assert!(registry.open("n", Some(2), "u", "a", 0).is_ok());
        drop(held);
        assert!(registry.open("n", Some(1), "u", "a", 0).is_ok());
    }
}
