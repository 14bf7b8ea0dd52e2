//! The user's interrupts (SIGINT, SIGTERM), seen as values the session can act on.
//!
//! A running command is interrupted explicitly: the session sends `INTERRUPT` to a
//! controller that honours it, waits briefly for the command's end, and the client exits
//! with 128 + the signal's number, as a process killed by it would. A lost connection is
//! then never mistaken for an interrupt. Before a session has started there is nothing to
//! interrupt, and the client exits at once.

use std::future::Future;

use tokio::sync::watch;

/// A signal that asks the client to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Int,
    /// `kill`, a service manager stopping a job.
    Term,
}

impl Signal {
    /// The signal's name, as the controller logs it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// The exit code of a process this signal ended: 128 + its number.
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
        }
    }
}

/// Interrupts so far: how many, and the last.
type Seen = (u32, Option<Signal>);

/// Where interrupts arrive; cheap to clone, and every clone sees every interrupt.
#[derive(Debug, Clone)]
pub struct Interrupts {
    rx: watch::Receiver<Seen>,
    /// How many interrupts this handle has seen.
    seen: u32,
}

/// Delivers interrupts to an [`Interrupts`] (the signal handlers, or a test).
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<Seen>,
}

impl Trigger {
    pub fn fire(&self, signal: Signal) {
        self.tx
            .send_modify(|(count, last)| (*count, *last) = (*count + 1, Some(signal)));
    }
}

impl Interrupts {
    /// A pair for tests and embedders: interrupts arrive when the trigger fires.
    pub fn channel() -> (Trigger, Interrupts) {
        let (tx, rx) = watch::channel((0, None));
        (Trigger { tx }, Interrupts { rx, seen: 0 })
    }

    /// Interrupts that never come, for callers without a user to interrupt them.
    pub fn none() -> Interrupts {
        Interrupts::channel().1
    }

    /// The process's SIGINT and SIGTERM, from now on (they no longer end the process by
    /// themselves). Must be called inside a tokio runtime.
    pub fn process() -> std::io::Result<Interrupts> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (trigger, interrupts) = Interrupts::channel();
        // Lives as long as the runtime; the process exits when the command ends.
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    Some(()) = int.recv() => Signal::Int,
                    Some(()) = term.recv() => Signal::Term,
                    else => return,
                };
                trigger.fire(signal);
            }
        });
        Ok(interrupts)
    }

    /// Waits for the next interrupt after those already seen by this handle.
    pub async fn next(&mut self) -> Signal {
        self.next_counted().await.0
    }

    /// [`Interrupts::next`], with how many came since those seen: two signals in quick
    /// succession may arrive as one change, and still mean "now".
    pub async fn next_counted(&mut self) -> (Signal, u32) {
        loop {
            if self.rx.changed().await.is_err() {
                // Nobody can interrupt any more.
                return std::future::pending().await;
            }
            let (count, last) = *self.rx.borrow_and_update();
            if let Some(signal) = last
                && count > self.seen
            {
                let new = count - self.seen;
                self.seen = count;
                return (signal, new);
            }
        }
    }

    /// Runs `work` unless an interrupt comes first, which is returned instead.
    pub async fn or_interrupt<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Signal> {
        tokio::select! {
            done = work => Ok(done),
            signal = self.next() => Err(signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn exit_codes_are_a_shells() {
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 143);
    }

    #[tokio::test]
    async fn every_clone_sees_each_interrupt_once() {
        let (trigger, mut a) = Interrupts::channel();
        let mut b = a.clone();
        trigger.fire(Signal::Int);
        assert_eq!(a.next().await, Signal::Int);
        assert_eq!(b.next().await, Signal::Int);
        // Seen already: nothing more until the next one.
        assert!(a.next().now_or_never().is_none());
        trigger.fire(Signal::Term);
        assert_eq!(a.next().await, Signal::Term);
    }

    #[tokio::test]
    async fn signals_that_arrive_together_are_counted() {
        let (trigger, mut interrupts) = Interrupts::channel();
        trigger.fire(Signal::Int);
        trigger.fire(Signal::Int);
        assert_eq!(interrupts.next_counted().await, (Signal::Int, 2));
        trigger.fire(Signal::Term);
        assert_eq!(interrupts.next_counted().await, (Signal::Term, 1));
    }

    #[tokio::test]
    async fn or_interrupt_returns_the_signal_when_it_comes_first() {
        let (trigger, mut interrupts) = Interrupts::channel();
        trigger.fire(Signal::Term);
        let got = interrupts.or_interrupt(std::future::pending::<()>()).await;
        assert_eq!(got, Err(Signal::Term));
        assert_eq!(interrupts.or_interrupt(async { 7 }).await, Ok(7));
    }
}
