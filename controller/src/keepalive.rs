//! WebSocket keepalive (compat §9), shared by every server-side session: a ping every
//! interval and a close when the peer has been silent longer than the idle timeout.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// What a session must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    SendPing,
    IdleTimeout,
}

/// Timers for one session. Call [`Keepalive::seen`] whenever anything arrives from the peer.
pub struct Keepalive {
    ping: Option<Interval>,
    idle_timeout: Option<Duration>,
    last_seen: Instant,
}

impl Keepalive {
    /// The first ping goes out after half an interval (Jenkins: 15 s of 30), then every
    /// interval. `None` disables either timer.
    pub fn new(ping_interval: Option<Duration>, idle_timeout: Option<Duration>) -> Self {
        let ping = ping_interval.filter(|d| !d.is_zero()).map(|every| {
            let mut interval = tokio::time::interval_at(Instant::now() + every / 2, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Keepalive {
            ping,
            idle_timeout: idle_timeout.filter(|d| !d.is_zero()),
            last_seen: Instant::now(),
        }
    }

    /// Records that the peer sent something.
    pub fn seen(&mut self) {
        self.last_seen = Instant::now();
    }

    /// How long the peer has been silent.
    pub fn silent_for(&self) -> Duration {
        self.last_seen.elapsed()
    }

    /// Waits for the next thing to do. Cancel-safe, for use in `select!`.
    pub async fn tick(&mut self) -> Tick {
        let idle_deadline = self.idle_timeout.map(|t| self.last_seen + t);
        tokio::select! {
            _ = async {
                match &mut self.ping {
                    Some(i) => { i.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => Tick::SendPing,
            _ = async {
                match idle_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => Tick::IdleTimeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_then_times_out_unless_seen() {
        let mut k = Keepalive::new(Some(Duration::from_secs(30)), Some(Duration::from_secs(50)));
        let start = Instant::now();
        assert_eq!(k.tick().await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert_eq!(k.tick().await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(45));
        k.seen();
        assert_eq!(k.tick().await, Tick::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(75));
        // Silent since 45 s: the idle timeout fires at 95 s, before the next ping at 105 s.
        assert_eq!(k.tick().await, Tick::IdleTimeout);
        assert_eq!(start.elapsed(), Duration::from_secs(95));
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_timers_never_fire() {
        let mut k = Keepalive::new(None, Some(Duration::from_secs(5)));
        assert_eq!(k.tick().await, Tick::IdleTimeout);
        let mut k = Keepalive::new(Some(Duration::ZERO), None);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), k.tick())
                .await
                .is_err()
        );
    }
}
