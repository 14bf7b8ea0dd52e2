//! Quiet-down: no new build starts (queued builds wait, with the reason) while running
//! builds finish, so the controller can be restarted or upgraded without cutting a build.
//! `quiet-down`/`cancel-quiet-down` and `POST /quietDown`/`/cancelQuietDown`, as in
//! Jenkins. It lasts until cancelled or until the controller stops: a restarted controller
//! starts builds again.

use std::time::Duration;

use super::Builds;

/// Longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// Why builds are not starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietDown {
    /// Who asked for it.
    pub by: String,
    /// What they said, if anything (at most [`MAX_REASON_CHARS`]).
    pub reason: Option<String>,
}

impl QuietDown {
    pub fn new(by: &str, reason: Option<&str>) -> QuietDown {
        let reason = reason
            .map(|r| r.trim().chars().take(MAX_REASON_CHARS).collect::<String>())
            .filter(|r| !r.is_empty());
        QuietDown {
            by: by.to_owned(),
            reason,
        }
    }

    /// The wait reason of every queued build meanwhile.
    pub fn wait_reason(&self) -> String {
        match &self.reason {
            Some(reason) => format!("Steward is about to shut down: {reason}"),
            None => "Steward is about to shut down".to_owned(),
        }
    }
}

/// A wait's timeout in milliseconds (`-timeout`, `?timeout=`): `Some(None)` for no limit (0 or less, as Jenkins reads
/// it), `None` when it is not a whole number.
pub fn parse_timeout(ms: &str) -> Option<Option<Duration>> {
    let ms = ms.trim().parse::<i64>().ok()?;
    Some(
        u64::try_from(ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
    )
}

/// How waiting for the running builds ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Quieted {
    /// No build runs.
    Idle,
    /// The timeout passed first; this many builds still run.
    TimedOut(usize),
    /// Quiet-down was cancelled meanwhile.
    Cancelled,
}

/// `quiet-down` (or `/quietDown`) by `by`, recorded in the audit log.
pub fn quiet_down_by(state: &crate::state::AppState, quiet: QuietDown, by: &crate::audit::Actor) {
    let reason = quiet.reason.clone();
    state.builds.quiet_down(quiet);
    state.audit.record(
        by,
        crate::audit::Action::QuietDown,
        "",
        serde_json::json!({ "reason": reason }),
    );
}

/// `cancel-quiet-down` (or `/cancelQuietDown`) by `by`, recorded when it was quieting down.
pub fn cancel_quiet_down_by(state: &crate::state::AppState, by: &crate::audit::Actor) -> bool {
    let was = state.builds.cancel_quiet_down(&by.user);
    if was {
        state.audit.record(
            by,
            crate::audit::Action::QuietDownCancel,
            "",
            serde_json::Value::Null,
        );
    }
    was
}

impl Builds {
    /// Starts quieting down (or replaces the reason); queued builds get its reason.
    pub fn quiet_down(&self, quiet: QuietDown) {
        tracing::info!(by = ?quiet.by, reason = ?quiet.reason, "quieting down: no new build starts");
        self.quiet.send_replace(Some(quiet));
        self.reschedule();
    }

    /// Lets builds start again; whether it was quieting down.
    pub fn cancel_quiet_down(&self, by: &str) -> bool {
        let was = self.quiet.send_replace(None).is_some();
        if was {
            tracing::info!(by = ?by, "quiet-down cancelled: builds start again");
        }
        self.reschedule();
        was
    }

    pub fn quieting_down(&self) -> Option<QuietDown> {
        self.quiet.borrow().clone()
    }

    /// Waits until no build runs, the quiet-down is cancelled, or `timeout` (if any) passes.
    pub async fn wait_until_quiet(&self, timeout: Option<Duration>) -> Quieted {
        let wait = async {
            let mut quiet = self.quiet.subscribe();
            // A scheduler pass under way may be starting builds it chose before the
            // quiet-down: let it finish, so they are counted below.
            drop(self.scheduling.lock().await);
            loop {
                if quiet.borrow_and_update().is_none() {
                    return Quieted::Cancelled;
                }
                let running = self.running();
                let Some(build) = running.first() else {
                    return Quieted::Idle;
                };
                let mut progress = build.progress();
                tokio::select! {
                    _ = progress.wait_for(|p| p.result.is_some()) => {}
                    _ = quiet.changed() => {}
                }
            }
        };
        match timeout {
            None => wait.await,
            Some(timeout) => match tokio::time::timeout(timeout, wait).await {
                Ok(quieted) => quieted,
                Err(_) => Quieted::TimedOut(self.running().len()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_trimmed_bounded_and_shown_in_the_wait() {
        assert_eq!(
            QuietDown::new("admin", None).wait_reason(),
            "Steward is about to shut down"
        );
        assert_eq!(QuietDown::new("admin", Some("  ")).reason, None);
        let q = QuietDown::new("admin", Some(" upgrade to 2.1 "));
        assert_eq!(
            q.wait_reason(),
            "Steward is about to shut down: upgrade to 2.1"
        );
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        let q = QuietDown::new("admin", Some(&long));
        assert_eq!(q.reason.unwrap().chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn timeouts_read_as_jenkins_reads_them() {
        assert_eq!(parse_timeout("250"), Some(Some(Duration::from_millis(250))));
        assert_eq!(parse_timeout("0"), Some(None));
        assert_eq!(parse_timeout("-5"), Some(None));
        assert_eq!(parse_timeout("soon"), None);
        assert_eq!(parse_timeout("99999999999999999999"), None);
    }

    #[tokio::test]
    async fn waiting_ends_at_once_when_idle_or_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let builds = Builds::new(dir.path().to_owned(), Duration::from_secs(1));
        assert_eq!(builds.wait_until_quiet(None).await, Quieted::Cancelled);
        builds.quiet_down(QuietDown::new("admin", None));
        assert_eq!(builds.wait_until_quiet(None).await, Quieted::Idle);
        assert!(builds.cancel_quiet_down("admin"));
        assert!(!builds.cancel_quiet_down("admin"));
        assert_eq!(builds.quieting_down(), None);
    }
}
