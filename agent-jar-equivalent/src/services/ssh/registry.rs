//! The SSH connections running on this agent, by the controller's connection id: so that
//! `SshNotice` reaches their terminals, and so that all of a connection's sessions can be
//! ended from outside ([`Sessions::close_connection`], [`Sessions::close_all`] at shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use russh::ChannelId;
use russh::server::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long closing waits for a connection's sessions to have ended their processes:
/// the kill grace, and some.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long writing a notice may wait on one connection: a stalled client must not hold up
/// the notice to the others.
pub const NOTICE_WAIT: Duration = Duration::from_secs(2);

/// How a session shows text to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// A pty: the text goes to the screen, with CR LF line ends.
    Pty,
    /// No pty: the text goes to stderr.
    Plain,
}

/// All SSH connections of this agent. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By registration number: the controller's connection id is unique only while its
    /// connection runs.
    connections: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    connection: u64,
    cancel: CancellationToken,
    tasks: TaskTracker,
    handle: Option<Handle>,
    terminals: HashMap<ChannelId, Terminal>,
}

/// One connection's place in the registry; removes it when dropped.
#[derive(Debug)]
pub struct Registration {
    sessions: Sessions,
    key: u64,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection: `cancel` ends it, `tasks` are its sessions' tasks.
    pub fn register(
        &self,
        connection: u64,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Registration {
        let mut inner = self.lock();
        let key = inner.next;
        inner.next += 1;
        inner.connections.insert(
            key,
            Entry {
                connection,
                cancel,
                tasks,
                handle: None,
                terminals: HashMap::new(),
            },
        );
        Registration {
            sessions: self.clone(),
            key,
        }
    }

    /// How many connections are registered.
    pub fn connections(&self) -> usize {
        self.lock().connections.len()
    }

    /// Writes `text` to every terminal of these connections; returns how many were written.
    pub async fn notice(&self, connections: &[u64], text: &str) -> usize {
        let targets: Vec<(Handle, ChannelId, Terminal)> = {
            let inner = self.lock();
            inner
                .connections
                .values()
                .filter(|e| connections.contains(&e.connection))
                .filter_map(|e| e.handle.as_ref().map(|h| (h, &e.terminals)))
                .flat_map(|(h, terminals)| terminals.iter().map(|(id, t)| (h.clone(), *id, *t)))
                .collect()
        };
        let pty_text = Bytes::from(text.replace("\r\n", "\n").replace('\n', "\r\n"));
        let plain_text = Bytes::from(text.to_owned());
        let mut written = 0;
        for (handle, channel, terminal) in targets {
            let sent = match terminal {
                Terminal::Pty => {
                    tokio::time::timeout(NOTICE_WAIT, handle.data(channel, pty_text.clone())).await
                }
                Terminal::Plain => {
                    let stderr = handle.extended_data(channel, 1, plain_text.clone());
                    tokio::time::timeout(NOTICE_WAIT, stderr).await
                }
            };
            if matches!(sent, Ok(Ok(()))) {
                written += 1;
            }
        }
        written
    }

    /// Ends every session of the connection(s) with this id and waits (up to [`CLOSE_WAIT`])
    /// until their processes are gone. Returns how many connections there were.
    pub async fn close_connection(&self, connection: u64) -> usize {
        self.close_where(|e| e.connection == connection).await
    }

    /// Ends every connection, as the agent shuts down.
    pub async fn close_all(&self) -> usize {
        self.close_where(|_| true).await
    }

    async fn close_where(&self, matches: impl Fn(&Entry) -> bool) -> usize {
        let trackers: Vec<TaskTracker> = {
            let inner = self.lock();
            inner
                .connections
                .values()
                .filter(|e| matches(e))
                .map(|e| {
                    e.cancel.cancel();
                    e.tasks.clone()
                })
                .collect()
        };
        for tasks in &trackers {
            tasks.close();
            let _ = tokio::time::timeout(CLOSE_WAIT, tasks.wait()).await;
        }
        trackers.len()
    }
}

impl Registration {
    /// The connection's session handle, once the SSH session runs.
    pub fn set_handle(&self, handle: Handle) {
        if let Some(entry) = self.sessions.lock().connections.get_mut(&self.key) {
            entry.handle = Some(handle);
        }
    }

    /// Records a session channel that shows text; [`TerminalGuard`] forgets it.
    pub fn add_terminal(&self, channel: ChannelId, terminal: Terminal) -> TerminalGuard {
        if let Some(entry) = self.sessions.lock().connections.get_mut(&self.key) {
            entry.terminals.insert(channel, terminal);
        }
        TerminalGuard {
            sessions: self.sessions.clone(),
            key: self.key,
            channel,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.lock().connections.remove(&self.key);
    }
}

/// A terminal's entry in the registry, removed when its session ends.
#[derive(Debug)]
pub struct TerminalGuard {
    sessions: Sessions,
    key: u64,
    channel: ChannelId,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(entry) = self.sessions.lock().connections.get_mut(&self.key) {
            entry.terminals.remove(&self.channel);
        }
    }
}
