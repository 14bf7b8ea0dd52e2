//! Queue items that have left the queue (started or cancelled), remembered for a while so a
//! client that queued a build can still ask what became of its item: python-jenkins'
//! `build_job` returns the queue id and `get_queue_item` is polled until it names the
//! build. Jenkins keeps left items for five minutes; so does Steward, and at most
//! [`MAX_LEFT_ITEMS`] of them, so a burst of builds cannot grow the memory without bound.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::ItemState;
use crate::store::builds::QueuedRow;

/// How long a left item is remembered (Jenkins' `leftItems` cache expires after 5 minutes).
pub const LEFT_ITEM_TTL: Duration = Duration::from_secs(5 * 60);
/// Most left items remembered: a few hundred bytes each, so at most a few hundred KiB.
pub const MAX_LEFT_ITEMS: usize = 1_000;

/// A queue item that has left the queue.
#[derive(Debug, Clone)]
pub struct LeftItem {
    pub row: QueuedRow,
    /// [`ItemState::Started`] or [`ItemState::Cancelled`].
    pub outcome: ItemState,
    left_at: Instant,
}

/// The recently left items, oldest first.
#[derive(Debug, Default)]
pub struct LeftItems {
    items: VecDeque<LeftItem>,
}

impl LeftItems {
    /// Remembers that `row` left the queue at `now`, forgetting what is too old or too many.
    pub fn push(&mut self, row: QueuedRow, outcome: ItemState, now: Instant) {
        self.prune(now);
        if self.items.len() >= MAX_LEFT_ITEMS {
            self.items.pop_front();
        }
        self.items.push_back(LeftItem {
            row,
            outcome,
            left_at: now,
        });
    }

    /// The item with queue id `id`, if it left less than [`LEFT_ITEM_TTL`] before `now`.
    pub fn get(&self, id: u64, now: Instant) -> Option<&LeftItem> {
        self.items
            .iter()
            .rev()
            .find(|i| i.row.id == id)
            .filter(|i| now.saturating_duration_since(i.left_at) < LEFT_ITEM_TTL)
    }

    fn prune(&mut self, now: Instant) {
        while self
            .items
            .front()
            .is_some_and(|i| now.saturating_duration_since(i.left_at) >= LEFT_ITEM_TTL)
        {
            self.items.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::builds::CauseKind;

    fn row(id: u64) -> QueuedRow {
        QueuedRow {
            id,
            job: "j".into(),
            params: vec![],
            cause: CauseKind::User,
            cause_user: "u".into(),
            queued_at_ms: 0,
        }
    }

    #[test]
    fn left_items_are_found_until_they_expire() {
        let start = Instant::now();
        let mut left = LeftItems::default();
        left.push(row(1), ItemState::Started { number: 7 }, start);
        left.push(
            row(2),
            ItemState::Cancelled,
            start + Duration::from_secs(60),
        );
        let soon = start + Duration::from_secs(90);
        assert_eq!(
            left.get(1, soon).map(|i| i.outcome.clone()),
            Some(ItemState::Started { number: 7 })
        );
        assert_eq!(
            left.get(2, soon).map(|i| i.outcome.clone()),
            Some(ItemState::Cancelled)
        );
        assert!(left.get(3, soon).is_none());

        let later = start + LEFT_ITEM_TTL + Duration::from_secs(1);
        assert!(left.get(1, later).is_none(), "expired");
        assert!(left.get(2, later).is_some());
        left.push(row(3), ItemState::Cancelled, later);
        assert_eq!(
            left.len(),
            2,
            "the expired item is dropped on the next push"
        );
    }

    #[test]
    fn at_most_the_newest_items_are_kept() {
        let now = Instant::now();
        let mut left = LeftItems::default();
        for id in 0..(MAX_LEFT_ITEMS as u64 + 10) {
            left.push(row(id), ItemState::Cancelled, now);
        }
        assert_eq!(left.len(), MAX_LEFT_ITEMS);
        assert!(left.get(9, now).is_none());
        assert!(left.get(10, now).is_some());
        assert!(left.get(MAX_LEFT_ITEMS as u64 + 9, now).is_some());
    }
}
