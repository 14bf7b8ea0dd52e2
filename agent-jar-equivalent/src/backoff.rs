//! The retry schedule between connection attempts (compat §3.3): 0, 1, 3, 7, 10, 10, …
//! seconds (`next = min(10, 2·prev + 1)`), plus a little random jitter so that a thousand
//! agents cut off by one controller restart do not all come back in the same second.
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
