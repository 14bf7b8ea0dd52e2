//! Waiting between failed attempts: the [`crate::backoff`] schedule with random jitter (a
//! minute while the controller has no such node), the `Waiting N seconds before retry`
//! line, `-noReconnectAfter`, and shutdown.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::ExitReason;
use crate::backoff::Backoff;
use crate::duration::format_duration;

/// Which schedule a wait follows.
#[derive(Debug, Clone, Copy)]
enum Pace {
    Usual,
    UnknownNode,
}

/// Paces the retries of one run of failures; [`Retry::reset`] after a success.
#[derive(Debug)]
pub struct Retry {
    backoff: Backoff,
    /// When the current run of failures started.
    since: Instant,
    /// `-noReconnectAfter`.
    give_up_after: Option<Duration>,
}

impl Retry {
    pub fn new(give_up_after: Option<Duration>) -> Self {
        Self {
            backoff: Backoff::new(),
            since: Instant::now(),
            give_up_after,
        }
    }

    /// Starts over after a connection that was established.
    pub fn reset(&mut self) {
        self.backoff.reset();
        self.since = Instant::now();
    }

    /// Called after a failed attempt: waits the next delay, or says why to stop (shutdown,
    /// or `-noReconnectAfter` expired). The wait never runs past the give-up deadline, so
    /// one last attempt happens right at it.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> Result<(), ExitReason> {
        self.wait_with(shutdown, Pace::Usual).await
    }

    /// [`Retry::wait`] after the controller said it has no such node: one try a minute.
    pub async fn wait_for_node(&mut self, shutdown: &CancellationToken) -> Result<(), ExitReason> {
        self.wait_with(shutdown, Pace::UnknownNode).await
    }

    async fn wait_with(
        &mut self,
        shutdown: &CancellationToken,
        pace: Pace,
    ) -> Result<(), ExitReason> {
        let mut cap = Duration::MAX;
        if let Some(limit) = self.give_up_after {
            let elapsed = self.since.elapsed();
            if elapsed >= limit {
                info!("Bailing out after {}", format_duration(limit));
                return Err(ExitReason::BailedOut(limit));
            }
            cap = limit - elapsed;
        }
        let draw = rand::random::<f64>();
        let delay = match pace {
            Pace::Usual => self.backoff.next_delay(draw),
            Pace::UnknownNode => self.backoff.next_unknown_node_delay(draw),
        };
        let wait = delay.wait.min(cap);
        // Printed as the schedule says, unless the give-up deadline comes sooner.
        let secs = if wait < delay.wait {
            wait.as_secs_f64().ceil() as u64
        } else {
            delay.base_secs
        };
        info!("Waiting {secs} seconds before retry");
        tokio::select! {
            () = shutdown.cancelled() => Err(ExitReason::Shutdown),
            () = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_follow_the_schedule() {
        let mut retry = Retry::new(None);
        let shutdown = CancellationToken::new();
        let mut marks = Vec::new();
        let start = Instant::now();
        for _ in 0..6 {
            retry.wait(&shutdown).await.unwrap();
            marks.push(start.elapsed());
        }
        let expected_bases = [0, 1, 4, 11, 21, 31];
        for (mark, base) in marks.iter().zip(expected_bases) {
            let base = Duration::from_secs(base);
            // Jitter adds at most 20 % of each delay, never more than 1 s each.
            assert!(
                *mark >= base && *mark <= base + Duration::from_secs(4),
                "{marks:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_node_waits_a_minute_but_not_past_the_deadline() {
        let shutdown = CancellationToken::new();
        let mut retry = Retry::new(None);
        let start = Instant::now();
        retry.wait_for_node(&shutdown).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() <= Duration::from_secs(61),
            "{:?}",
            start.elapsed()
        );

        let mut bounded = Retry::new(Some(Duration::from_secs(2)));
        let start = Instant::now();
        bounded.wait_for_node(&shutdown).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(
            bounded.wait_for_node(&shutdown).await,
            Err(ExitReason::BailedOut(Duration::from_secs(2)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bails_out_at_the_deadline() {
        let mut retry = Retry::new(Some(Duration::from_secs(10)));
        let shutdown = CancellationToken::new();
        let start = Instant::now();
        let stop = loop {
            if let Err(stop) = retry.wait(&shutdown).await {
                break stop;
            }
        };
        assert_eq!(stop, ExitReason::BailedOut(Duration::from_secs(10)));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_restarts_the_give_up_clock() {
        let mut retry = Retry::new(Some(Duration::from_secs(5)));
        let shutdown = CancellationToken::new();
        tokio::time::sleep(Duration::from_secs(60)).await;
        retry.reset();
        assert_eq!(retry.wait(&shutdown).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_the_wait() {
        let mut retry = Retry::new(None);
        let shutdown = CancellationToken::new();
        retry.wait(&shutdown).await.unwrap(); // 0 s
        shutdown.cancel();
        assert_eq!(retry.wait(&shutdown).await, Err(ExitReason::Shutdown));
    }
}
