//! Why a CLI session stopped its command before the command finished.
//!
//! The session records the cause before it drops the command, so what the command leaves
//! behind (a `build -s`'s build, its queue item) can act on it: only a user's interrupt
//! aborts; a lost connection from a client that reports interrupts itself, or a controller
//! shutting down, leaves the build running.

use std::sync::{Arc, Mutex};

/// What stopped a command early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The user interrupted the client: our cli's `INTERRUPT` frame, or, for a client that
    /// cannot send one (jenkins-cli.jar), its connection closing. The text says how.
    Interrupted(String),
    /// The connection to a client that reports interrupts itself was lost (a proxy, the
    /// network, a stalled client). The text says how.
    ClientLost(String),
    /// The controller is shutting down.
    Shutdown,
}

/// Where the session leaves the [`Stop`] for the command it drops; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StopCause(Arc<Mutex<Option<Stop>>>);

impl StopCause {
    /// Records why the command is being stopped; the first cause stays.
    pub fn set(&self, stop: Stop) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(stop);
    }

    /// Why the command was stopped, if it was.
    pub fn get(&self) -> Option<Stop> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
