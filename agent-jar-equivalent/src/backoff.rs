//! The retry schedule between connection attempts (compat §3.3): 0, 1, 3, 7, 10, 10, …
//! seconds (`next = min(10, 2·prev + 1)`), plus a little random jitter so that a thousand
//! agents cut off by one controller restart do not all come back in the same second. While
//! the controller does not know the agent's node (deleted, or not created yet), one try a
//! minute ([`Backoff::next_unknown_node_delay`]).
//!
//! Pure: the caller passes the random draw in, so the schedule is tested exactly.
//! [`crate::retry`] does the waiting.

use std::time::Duration;

/// Longest base delay: Jenkins' agent never waits more than 10 s between attempts.
pub const MAX_DELAY_SECS: u64 = 10;
/// Jitter is at most this fraction of the base delay: enough to spread reconnects, small
/// enough that the printed `Waiting N seconds` stays true to within a second.
pub const MAX_JITTER_FRACTION: f64 = 0.2;
/// Jitter never exceeds this, whatever the base delay.
pub const MAX_JITTER: Duration = Duration::from_secs(1);

/// The delay while the controller answers that it has no such node: asking every 10 s
/// would not make the node exist sooner, and a fleet whose nodes were deleted should not
/// keep knocking. One try a minute still finds a node created again within a minute.
pub const UNKNOWN_NODE_DELAY_SECS: u64 = 60;

/// One wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// The schedule's delay in whole seconds, as printed in `Waiting N seconds before retry`.
    pub base_secs: u64,
    /// What to actually sleep: the base delay plus jitter.
    pub wait: Duration,
}

/// Where the schedule stands; starts over with [`Backoff::reset`].
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    previous: Option<u64>,
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay before the next retry. `unit_jitter` is a uniform draw from `[0, 1)`;
    /// values outside are clamped.
    pub fn next_delay(&mut self, unit_jitter: f64) -> Delay {
        let base_secs = next_base_secs(self.previous);
        self.previous = Some(base_secs);
        let base = Duration::from_secs(base_secs);
        Delay {
            base_secs,
            wait: base + jitter(base, unit_jitter),
        }
    }

    /// The delay before the next retry when the controller has just said it has no such
    /// node: [`UNKNOWN_NODE_DELAY_SECS`], with the same jitter. The usual schedule goes on
    /// from its longest step if a later attempt fails for another reason.
    pub fn next_unknown_node_delay(&mut self, unit_jitter: f64) -> Delay {
        self.previous = Some(MAX_DELAY_SECS);
        let base = Duration::from_secs(UNKNOWN_NODE_DELAY_SECS);
        Delay {
            base_secs: UNKNOWN_NODE_DELAY_SECS,
            wait: base + jitter(base, unit_jitter),
        }
    }

    /// Starts the schedule over, after a connection that was established.
    pub fn reset(&mut self) {
        self.previous = None;
    }
}

/// `0` first, then `min(10, 2·prev + 1)`.
pub fn next_base_secs(previous: Option<u64>) -> u64 {
    match previous {
        None => 0,
        Some(prev) => prev.saturating_mul(2).saturating_add(1).min(MAX_DELAY_SECS),
    }
}

/// Up to 20 % of `base`, at most one second, scaled by `unit_jitter` in `[0, 1)`.
pub fn jitter(base: Duration, unit_jitter: f64) -> Duration {
    let unit = if unit_jitter.is_finite() {
        unit_jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base.mul_f64(MAX_JITTER_FRACTION)
        .min(MAX_JITTER)
        .mul_f64(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_0_1_3_7_then_10() {
        let mut backoff = Backoff::new();
        let bases: Vec<u64> = (0..7).map(|_| backoff.next_delay(0.0).base_secs).collect();
        assert_eq!(bases, [0, 1, 3, 7, 10, 10, 10]);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay(0.5);
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0).base_secs, 0);
        assert_eq!(backoff.next_delay(0.0).base_secs, 1);
    }

    #[test]
    fn an_unknown_node_is_tried_once_a_minute_then_the_schedule_resumes() {
        let mut backoff = Backoff::new();
        backoff.next_delay(0.0);
        let slow = backoff.next_unknown_node_delay(0.5);
        assert_eq!(slow.base_secs, 60);
        assert_eq!(slow.wait, Duration::from_millis(60_500));
        assert_eq!(backoff.next_unknown_node_delay(0.0).base_secs, 60);
        // The node exists again but the attempt failed otherwise: the usual longest step.
        assert_eq!(backoff.next_delay(0.0).base_secs, 10);
        // Connected: everything starts over.
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0).base_secs, 0);
    }

    #[test]
    fn jitter_is_bounded() {
        assert_eq!(jitter(Duration::ZERO, 0.99), Duration::ZERO);
        assert_eq!(
            jitter(Duration::from_secs(1), 0.5),
            Duration::from_millis(100)
        );
        assert_eq!(
            jitter(Duration::from_secs(3), 1.0),
            Duration::from_millis(600)
        );
        // 20 % of 10 s is 2 s, capped at 1 s.
        assert_eq!(jitter(Duration::from_secs(10), 1.0), MAX_JITTER);
        assert_eq!(
            jitter(Duration::from_secs(10), 0.25),
            Duration::from_millis(250)
        );
        // Out-of-range draws are clamped rather than trusted.
        assert_eq!(jitter(Duration::from_secs(10), 7.0), MAX_JITTER);
        assert_eq!(jitter(Duration::from_secs(10), -1.0), Duration::ZERO);
        assert_eq!(jitter(Duration::from_secs(10), f64::NAN), Duration::ZERO);
    }

    #[test]
    fn wait_is_base_plus_jitter() {
        let mut backoff = Backoff::new();
        assert_eq!(
            backoff.next_delay(0.5),
            Delay {
                base_secs: 0,
                wait: Duration::ZERO
            }
        );
        assert_eq!(
            backoff.next_delay(0.5),
            Delay {
                base_secs: 1,
                wait: Duration::from_millis(1100)
            }
        );
    }
}
