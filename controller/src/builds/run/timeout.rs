//! The build timeout (`BuildTimeoutWrapper`): the deadline a step's tail waits beside, and
//! what happens when it passes.

use std::time::Duration;

use tokio::time::Instant;

use super::Runner;
use crate::builds::now_ms;

/// Who a build timeout (`BuildTimeoutWrapper`) aborts a build as: recorded like a user's
/// abort, so a restarted controller still knows why the build stopped and how it ends.
pub const TIMEOUT_ABORTED: &str = "build-timeout:abort";
/// The same, for a timeout that fails the build (`FailOperation`).
pub const TIMEOUT_FAILED: &str = "build-timeout:fail";

pub(super) async fn sleep_until_deadline(deadline: Instant) {
    tokio::time::sleep_until(deadline).await
}

impl Runner<'_> {
    /// When the build timeout expires now: the build's start plus the limit (absolute), or
    /// the last output plus the limit (no activity).
    pub(super) fn timeout_deadline(&self) -> Instant {
        use steward_protocol::job_xml::publishers::TimeoutStrategy;
        let Some(timeout) = self.timeout else {
            return Instant::now() + Duration::from_secs(365 * 24 * 3600);
        };
        match timeout.strategy {
            TimeoutStrategy::Absolute { minutes } => {
                let limit_ms = (minutes as i64).saturating_mul(60_000);
                let left = self.build.row.started_at_ms + limit_ms - now_ms();
                Instant::now() + Duration::from_millis(left.max(0) as u64)
            }
            TimeoutStrategy::NoActivity { seconds } => {
                self.last_activity + Duration::from_secs(seconds)
            }
        }
    }

    /// The build timeout expired: says so as the plugin does, and aborts the build (the
    /// step is then killed as on any abort).
    pub(super) fn time_out(&self) {
        let Some(timeout) = self.timeout else { return };
        let how = if timeout.fail { "failed" } else { "aborted" };
        self.build.note(format!(
            "Build timed out (after {} minutes). Marking the build as {how}.\n",
            timeout.strategy.minutes()
        ));
        self.build.abort(if timeout.fail {
            TIMEOUT_FAILED
        } else {
            TIMEOUT_ABORTED
        });
    }
}
