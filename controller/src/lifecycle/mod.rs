//! The controller's life as administrators see it: its session id (new at each start, so a
//! script can tell that a restart happened), and the ends they ask for with `restart`,
//! `safe-restart`, `shutdown` and `safe-shutdown`.
//!
//! Asking for an end records what comes after the server stops ([`Exit`]) and cancels the
//! controller's shutdown token: the server stops accepting, lets connections finish their
//! request, tells agents to go away, and `start`'s caller is back. The `controller` binary
//! then exits, or for a restart runs itself again in place ([`reexec`]). Running builds are
//! not touched: their steps are durable on the agents, and the next start resumes them,
//! as after any restart. The safe forms quiet down first and end the controller only once
//! no build runs; cancelling the quiet-down cancels them.

pub mod reexec;

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::builds::quiet::{QuietDown, Quieted};
use crate::state::AppState;

/// Longest wait for the CLI session that asked for an end to deliver its answer and close:
/// the session's own close drain is 5 s; past this the controller goes anyway.
pub const ANSWER_GRACE: Duration = Duration::from_secs(10);

/// What the controller does once its server has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Runs its binary again, in place, with the same arguments and environment.
    Restart,
    /// Exits.
    Shutdown,
}

impl Exit {
    fn verb(self) -> &'static str {
        match self {
            Exit::Restart => "restarting",
            Exit::Shutdown => "shutting down",
        }
    }
}

/// The controller's session and the end asked for; one per controller.
#[derive(Debug)]
pub struct Lifecycle {
    session_id: String,
    exit: Mutex<Option<Exit>>,
    shutdown: CancellationToken,
}

impl Lifecycle {
    /// A new session, whose end is `shutdown` (the controller's token).
    pub fn new(shutdown: CancellationToken) -> Lifecycle {
        Lifecycle {
            session_id: crate::store::users::new_uuid(),
            exit: Mutex::new(None),
            shutdown,
        }
    }

    /// This start's id (`session-id`): a random UUID, another after each restart.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The end asked for, if any (none after SIGTERM: the binary exits).
    pub fn requested(&self) -> Option<Exit> {
        *self.exit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the controller now; the first end asked for is the one carried out.
    pub fn end(&self, exit: Exit, by: &str) {
        let chosen = *self
            .exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(exit);
        tracing::info!(by = ?by, "{} as asked", chosen.verb());
        self.shutdown.cancel();
    }
}

/// Ends the controller once `answered` is cancelled (the CLI session that asked has sent
/// its answer and closed), at most [`ANSWER_GRACE`] later. With `safe`, it first quiets
/// down (with `message` as the queue's reason) and waits until no build runs; a quiet-down
/// cancelled meanwhile cancels the end. Returns at once; the waiting is a task of the
/// controller's.
pub fn end_after(
    state: &AppState,
    exit: Exit,
    safe: bool,
    by: &str,
    message: Option<&str>,
    answered: CancellationToken,
) {
    if safe {
        state.builds.quiet_down(QuietDown::new(by, message));
    }
    let (state, by) = (state.clone(), by.to_owned());
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let shutdown = state.shutdown.clone();
        let wait = async {
            if safe {
                tracing::info!(by = ?by, "{} once no build runs", exit.verb());
                if state.builds.wait_until_quiet(None).await != Quieted::Idle {
                    tracing::info!(by = ?by, "quiet-down cancelled: not {}", exit.verb());
                    return;
                }
            }
            let _ = tokio::time::timeout(ANSWER_GRACE, answered.cancelled()).await;
            state.lifecycle.end(exit, &by);
        };
        tokio::select! {
            () = wait => {}
            // Stopping for another reason meanwhile.
            () = shutdown.cancelled() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_has_its_own_id_and_the_first_end_asked_wins() {
        let token = CancellationToken::new();
        let a = Lifecycle::new(token.clone());
        let b = Lifecycle::new(CancellationToken::new());
        assert_ne!(a.session_id(), b.session_id());
        assert_eq!(a.session_id().len(), 36);
        assert_eq!(a.requested(), None);
        a.end(Exit::Restart, "admin");
        a.end(Exit::Shutdown, "admin");
        assert_eq!(a.requested(), Some(Exit::Restart));
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn a_safe_end_quiets_down_and_waits_for_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::for_tests(dir.path());
        // Idle: it ends once the answer is out.
        let answered = CancellationToken::new();
        end_after(
            &state,
            Exit::Restart,
            true,
            "admin",
            Some("upgrade"),
            answered.clone(),
        );
        assert_eq!(
            state
                .builds
                .quieting_down()
                .and_then(|q| q.reason)
                .as_deref(),
            Some("upgrade")
        );
        tokio::task::yield_now().await;
        assert!(!state.shutdown.is_cancelled(), "ended before the answer");
        answered.cancel();
        tokio::time::timeout(Duration::from_secs(30), state.shutdown.cancelled())
            .await
            .expect("the controller ended");
        assert_eq!(state.lifecycle.requested(), Some(Exit::Restart));
    }
}
