//! The clients attached to one terminal, and what they share: every client gets the same
//! output, read-write clients' keystrokes are merged, the terminal's size is the smallest of
//! the read-write clients' windows, and only the oldest read-write client answers the
//! program's questions to its terminal ([`super::replies`]).
//!
//! A client's output waits in a queue of its own, counted in bytes; one that falls
//! [`MAX_CLIENT_LAG`] behind is dropped with a message, so no client ever slows the
//! terminal or the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use steward_protocol::terminals::Size;
use tokio::sync::mpsc;

use super::screen::Screen;

/// How far behind a client may fall before it is dropped.
pub const MAX_CLIENT_LAG: usize = 4 * 1024 * 1024;

/// What a client's connection is told.
#[derive(Debug)]
pub enum ToClient {
    /// Terminal output (the screen first, on attach).
    Output(Bytes),
    /// A line from the controller, shown apart from the output.
    Message(String),
    /// The client is disconnected, and why.
    Closed(String),
}

/// One attached client, as others see it (`^Ecw`, `list-terminals`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub id: u64,
    pub user: String,
    pub address: String,
    pub read_only: bool,
    pub since_ms: i64,
    pub size: Option<Size>,
}

struct Slot {
    info: ClientInfo,
    out: mpsc::UnboundedSender<ToClient>,
    lag: Arc<AtomicUsize>,
}

/// The receiving end of a client's queue.
pub struct ClientQueue {
    rx: mpsc::UnboundedReceiver<ToClient>,
    lag: Arc<AtomicUsize>,
    /// Taken off the queue by [`ClientQueue::try_next_output`] and not used.
    held: Option<ToClient>,
}

impl ClientQueue {
    /// The next thing to send; output taken off the queue no longer counts as lag.
    pub async fn next(&mut self) -> Option<ToClient> {
        let next = match self.held.take() {
            Some(next) => next,
            None => self.rx.recv().await?,
        };
        if let ToClient::Output(data) = &next {
            self.lag.fetch_sub(data.len(), Ordering::Relaxed);
        }
        Some(next)
    }

    /// Output already queued, if the next item is output of at most `room` bytes.
    pub fn try_next_output(&mut self, room: usize) -> Option<Bytes> {
        let next = match self.held.take() {
            Some(next) => next,
            None => self.rx.try_recv().ok()?,
        };
        match next {
            ToClient::Output(data) if data.len() <= room => {
                self.lag.fetch_sub(data.len(), Ordering::Relaxed);
                Some(data)
            }
            other => {
                self.held = Some(other);
                None
            }
        }
    }
}

/// The clients and the size they make.
pub struct Hub {
    slots: Vec<Slot>,
    /// The terminal's size now.
    size: Size,
}

impl Hub {
    pub fn new(size: Size) -> Hub {
        Hub {
            slots: Vec::new(),
            size,
        }
    }

    pub fn size(&self) -> Size {
        self.size
    }

    pub fn set_size(&mut self, size: Size) {
        self.size = size;
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        self.slots.iter().map(|s| s.info.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds a client, its queue starting with `first` (the screen as it is).
    pub fn attach(&mut self, info: ClientInfo, first: Vec<Bytes>) -> ClientQueue {
        let (out, rx) = mpsc::unbounded_channel();
        let lag = Arc::new(AtomicUsize::new(0));
        for data in first {
            lag.fetch_add(data.len(), Ordering::Relaxed);
            let _ = out.send(ToClient::Output(data));
        }
        self.slots.push(Slot {
            info,
            out,
            lag: lag.clone(),
        });
        ClientQueue {
            rx,
            lag,
            held: None,
        }
    }

    pub fn detach(&mut self, id: u64) -> bool {
        let before = self.slots.len();
        self.slots.retain(|s| s.info.id != id);
        self.slots.len() != before
    }

    pub fn set_client_size(&mut self, id: u64, size: Size) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.info.id == id) {
            slot.info.size = Some(size.clamped());
        }
    }

    /// The size the read-write clients' windows make: the smallest width and height among
    /// those that said theirs. `None` when none did (the size stays as it is).
    pub fn wanted_size(&self) -> Option<Size> {
        let sizes = self
            .slots
            .iter()
            .filter(|s| !s.info.read_only)
            .filter_map(|s| s.info.size);
        sizes.reduce(|a, b| Size {
            cols: a.cols.min(b.cols),
            rows: a.rows.min(b.rows),
        })
    }

    /// The client whose terminal answers the program's questions: the oldest read-write one.
    pub fn answerer(&self) -> Option<u64> {
        self.slots
            .iter()
            .find(|s| !s.info.read_only)
            .map(|s| s.info.id)
    }

    pub fn is_read_only(&self, id: u64) -> Option<bool> {
        self.slots
            .iter()
            .find(|s| s.info.id == id)
            .map(|s| s.info.read_only)
    }

    /// Sends output to every client; those too far behind are dropped. Their ids.
    pub fn output(&mut self, data: &Bytes) -> Vec<u64> {
        let mut dropped = Vec::new();
        self.slots.retain(|slot| {
            let lag = slot.lag.fetch_add(data.len(), Ordering::Relaxed) + data.len();
            if lag > MAX_CLIENT_LAG {
                let _ = slot.out.send(ToClient::Closed(format!(
                    "=== Dropped: this client fell more than {} MiB behind the terminal's output ===",
                    MAX_CLIENT_LAG >> 20
                )));
                dropped.push(slot.info.id);
                return false;
            }
            slot.out.send(ToClient::Output(data.clone())).is_ok()
        });
        dropped
    }

    /// A line for every client.
    pub fn message(&self, text: &str) {
        for slot in &self.slots {
            let _ = slot.out.send(ToClient::Message(text.to_owned()));
        }
    }

    /// A line for one client.
    pub fn tell(&self, id: u64, text: &str) {
        if let Some(slot) = self.slots.iter().find(|s| s.info.id == id) {
            let _ = slot.out.send(ToClient::Message(text.to_owned()));
        }
    }

    /// Disconnects every client with a reason (the terminal was deleted).
    pub fn close_all(&mut self, why: &str) {
        for slot in self.slots.drain(..) {
            let _ = slot.out.send(ToClient::Closed(why.to_owned()));
        }
    }
}

/// Feeds output to the screen and the clients under one lock, so a client attaching sees
/// the screen exactly up to where its queue starts.
pub fn broadcast(hub: &mut Hub, screen: &Screen, data: Bytes) -> Vec<u64> {
    screen.feed(data.clone());
    hub.output(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, read_only: bool, size: Option<Size>) -> ClientInfo {
        ClientInfo {
            id,
            user: "u".into(),
            address: "a".into(),
            read_only,
            since_ms: 0,
            size,
        }
    }

    #[test]
    fn the_size_is_the_smallest_read_write_window() {
        let mut hub = Hub::new(Size { cols: 80, rows: 24 });
        assert_eq!(hub.wanted_size(), None);
        let _a = hub.attach(
            info(
                1,
                false,
                Some(Size {
                    cols: 120,
                    rows: 30,
                }),
            ),
            vec![],
        );
        let _b = hub.attach(
            info(
                2,
                false,
                Some(Size {
                    cols: 100,
                    rows: 40,
                }),
            ),
            vec![],
        );
        let _c = hub.attach(info(3, true, Some(Size { cols: 20, rows: 5 })), vec![]);
        assert_eq!(
            hub.wanted_size(),
            Some(Size {
                cols: 100,
                rows: 30
            })
        );
        assert_eq!(hub.answerer(), Some(1));
        hub.detach(1);
        assert_eq!(
            hub.wanted_size(),
            Some(Size {
                cols: 100,
                rows: 40
            })
        );
        assert_eq!(hub.answerer(), Some(2));
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_dropped_and_the_others_keep_getting_output() {
        let mut hub = Hub::new(Size { cols: 80, rows: 24 });
        let mut reader = hub.attach(info(1, false, None), vec![]);
        let _stalled = hub.attach(info(2, false, None), vec![]);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut dropped = Vec::new();
        for _ in 0..(MAX_CLIENT_LAG / chunk.len() + 2) {
            dropped.extend(hub.output(&chunk));
            // The reader keeps up.
            while reader.try_next_output(usize::MAX).is_some() {}
        }
        assert_eq!(dropped, vec![2]);
        assert_eq!(hub.len(), 1);
    }
}
