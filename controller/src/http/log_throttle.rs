//! A log line per event, at most once an interval: the first at once, later ones carrying
//! the count of events since the line before. A flood of failures (accept errors,
//! refused connections) stays readable and costs little to log.

use std::time::{Duration, Instant};

/// At most one line a second for each kind of repeated event.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Counts events and says when a line is due.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last_line: Option<Instant>,
    pending: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(LOG_INTERVAL)
    }
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last_line: None,
            pending: 0,
        }
    }

    /// Counts one event at `now`. When a line is due, returns the events it reports (this
    /// one and those counted since the last line).
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        let due = self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        due.then(|| {
            self.last_line = Some(now);
            std::mem::take(&mut self.pending)
        })
    }

    /// Takes the events counted since the last line, for a closing line.
    pub fn take(&mut self) -> u64 {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_an_interval_carrying_the_count() {
        let mut throttle = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(throttle.note(at(0)), Some(1));
        for ms in 1..100 {
            assert_eq!(throttle.note(at(ms)), None);
        }
        assert_eq!(throttle.note(at(999)), None);
        assert_eq!(throttle.note(at(1000)), Some(101));
        assert_eq!(throttle.note(at(1500)), None);
        assert_eq!(throttle.take(), 1);
        assert_eq!(throttle.take(), 0);
        assert_eq!(throttle.note(at(5000)), Some(1));
    }
}
