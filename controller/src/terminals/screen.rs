//! The controller's model of a terminal's screen (a vt100 parser), so a client that
//! attaches sees the screen at once, as it is, even a full-screen program's.
//!
//! The parser is much slower than a terminal can produce output (about 15 MB/s on a flood of
//! short lines), and a flood must never slow the terminal, its recording or its clients. So
//! output is parsed in place while it is small and the parser idle (every keystroke's echo),
//! and otherwise queued for a worker on the blocking pool. The queue is bounded: past
//! [`MAX_BEHIND`] the oldest queued output is dropped, keeping the newest [`RESYNC_TAIL`]
//! bytes, and the screen will be rebuilt from a blank one with them. Parsing is then put off
//! while the flood lasts (the worker would only burn a core on output dropped a moment
//! later): [`Screen::catch_up`], called on a timer, parses what is queued once no output has
//! come for [`QUIET`]. After a flood the screen is so rebuilt from its last output, which
//! covers a screenful of scrolling text many times over; modes set before that tail (an
//! alternate screen, say) are lost until the program draws again. [`Screen::snapshot`] never
//! waits for the worker: it gives the parsed screen and the output still queued, which
//! together are the screen.

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use steward_protocol::terminals::Size;

/// Output parsed in place, when nothing is queued: an echo or a prompt.
const INLINE_MAX: usize = 4 * 1024;
/// How far the parser may fall behind before queued output is dropped.
pub const MAX_BEHIND: usize = 1024 * 1024;
/// What is kept of the queue when it is dropped, to rebuild the screen from.
pub const RESYNC_TAIL: usize = 256 * 1024;
/// What the worker parses per turn of the lock.
const WORK_CHUNK: usize = 16 * 1024;
/// How long output must pause before parsing put off during a flood resumes.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(200);
/// The last output kept as it came, for `^Ecr` (the last lines, scrolled off or not).
pub const TAIL: usize = 8 * 1024;
/// The height of the screen the tail is replayed on: tall, so lines are not scrolled off
/// before they are counted.
const REPLAY_ROWS: u16 = 200;

/// A terminal's screen; cheap to clone (one model shared).
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Mutex<Model>>,
}

struct Model {
    parser: vt100::Parser,
    queued: VecDeque<Bytes>,
    queued_len: usize,
    tail: VecDeque<u8>,
    /// The next worker starts from a blank screen.
    reset: bool,
    working: bool,
    /// Parsing is put off until output pauses (a flood overran the queue).
    deferred: bool,
    last_feed: std::time::Instant,
    /// Times the queue overflowed and the screen was rebuilt from its tail.
    pub resyncs: u64,
}

fn parser(size: Size) -> vt100::Parser {
    let rows = NonZeroU16::new(size.rows).unwrap_or(NonZeroU16::MIN);
    let cols = NonZeroU16::new(size.cols).unwrap_or(NonZeroU16::MIN);
    vt100::Parser::new(rows, cols, 0)
}

impl Screen {
    pub fn new(size: Size) -> Screen {
        Screen {
            inner: Arc::new(Mutex::new(Model {
                parser: parser(size),
                queued: VecDeque::new(),
                queued_len: 0,
                // Grows with the output, to TAIL: a quiet terminal keeps little.
                tail: VecDeque::new(),
                reset: false,
                working: false,
                deferred: false,
                last_feed: std::time::Instant::now(),
                resyncs: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes output: parsed now when small and nothing waits, else queued for the worker.
    pub fn feed(&self, data: Bytes) {
        let mut model = self.lock();
        let keep = &data[data.len().saturating_sub(TAIL)..];
        let over = (model.tail.len() + keep.len()).saturating_sub(TAIL);
        model.tail.drain(..over);
        model.tail.extend(keep);
        model.last_feed = std::time::Instant::now();
        if !model.working && !model.deferred && model.queued.is_empty() && data.len() <= INLINE_MAX
        {
            model.parser.process(&data);
            return;
        }
        model.queued_len += data.len();
        model.queued.push_back(data);
        if model.queued_len > MAX_BEHIND {
            // Only the newest RESYNC_TAIL bytes are kept, cutting into the oldest chunk left.
            while model.queued_len > RESYNC_TAIL {
                let excess = model.queued_len - RESYNC_TAIL;
                let Some(front) = model.queued.front_mut() else {
                    break;
                };
                if front.len() <= excess {
                    let dropped = front.len();
                    model.queued.pop_front();
                    model.queued_len -= dropped;
                } else {
                    *front = front.slice(excess..);
                    model.queued_len -= excess;
                }
            }
            if !model.reset {
                model.resyncs += 1;
            }
            model.reset = true;
            model.deferred = true;
        }
        if !model.working && !model.deferred {
            model.working = true;
            let screen = self.clone();
            tokio::task::spawn_blocking(move || screen.work());
        }
    }

    /// Parses what a flood left queued, once output has paused for [`QUIET`].
    pub fn catch_up(&self) {
        let mut model = self.lock();
        if model.deferred && model.last_feed.elapsed() >= QUIET {
            model.deferred = false;
            if !model.working && !model.queued.is_empty() {
                model.working = true;
                let screen = self.clone();
                tokio::task::spawn_blocking(move || screen.work());
            }
        }
    }

    /// The worker: parses the queue a chunk at a time, so the lock is never held long.
    fn work(&self) {
        loop {
            let mut model = self.lock();
            if model.deferred {
                model.working = false;
                return;
            }
            if model.reset {
                let (rows, cols) = model.parser.screen().size();
                model.parser = parser(Size {
                    cols: cols.get(),
                    rows: rows.get(),
                });
                model.reset = false;
            }
            let Some(mut chunk) = model.queued.pop_front() else {
                model.working = false;
                return;
            };
            if chunk.len() > WORK_CHUNK {
                let rest = chunk.split_off(WORK_CHUNK);
                model.queued.push_front(rest);
            }
            model.queued_len -= chunk.len();
            model.parser.process(&chunk);
        }
    }

    /// The screen's size now.
    pub fn resize(&self, size: Size) {
        let mut model = self.lock();
        let rows = NonZeroU16::new(size.rows).unwrap_or(NonZeroU16::MIN);
        let cols = NonZeroU16::new(size.cols).unwrap_or(NonZeroU16::MIN);
        model.parser.screen_mut().set_size(rows, cols);
    }

    /// What draws the screen on a blank terminal: the parsed screen (contents, attributes,
    /// modes, cursor) followed by the output still queued.
    pub fn snapshot(&self) -> Vec<u8> {
        let model = self.lock();
        let screen = model.parser.screen();
        let mut out = Vec::new();
        // Clear the client's screen and home the cursor first.
        out.extend_from_slice(b"\x1b[H\x1b[2J");
        if screen.alternate_screen() {
            out.extend_from_slice(b"\x1b[?1049h");
        }
        out.extend_from_slice(screen.state_formatted().as_bytes());
        for chunk in &model.queued {
            out.extend_from_slice(chunk);
        }
        out
    }

    /// The last `n` lines of output that are not blank, as text: the tail of the output
    /// replayed on a tall screen of the terminal's width.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let (tail, cols) = {
            let model = self.lock();
            let (_, cols) = model.parser.screen().size();
            (model.tail.iter().copied().collect::<Vec<u8>>(), cols)
        };
        let rows = NonZeroU16::new(REPLAY_ROWS).unwrap_or(NonZeroU16::MIN);
        let mut replay = vt100::Parser::new(rows, cols, 0);
        replay.process(&tail);
        let mut lines: Vec<String> = replay
            .screen()
            .rows(0, cols.get())
            .map(|row| row.trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        let skip = lines.len().saturating_sub(n);
        lines.split_off(skip)
    }

    /// Whether parsing is put off until output pauses (then [`Screen::catch_up`] is due).
    pub fn deferred(&self) -> bool {
        self.lock().deferred
    }

    /// How many times the model fell too far behind and was rebuilt from the tail.
    pub fn resyncs(&self) -> u64 {
        self.lock().resyncs
    }

    /// Whether the worker has caught up (for tests and benchmarks).
    pub fn idle(&self) -> bool {
        let model = self.lock();
        !model.working && model.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Size = Size { cols: 20, rows: 4 };

    #[tokio::test]
    async fn a_snapshot_redraws_the_screen_on_a_fresh_parser() {
        let screen = Screen::new(SIZE);
        screen.feed(Bytes::from_static(b"one\r\ntwo\r\n\x1b[1mbold\x1b[0m"));
        let mut fresh = parser(SIZE);
        fresh.process(&screen.snapshot());
        assert_eq!(fresh.screen().contents(), "one\ntwo\nbold");
        assert!(fresh.screen().cell(2, 0).unwrap().bold());
        assert_eq!(screen.last_lines(2), vec!["two", "bold"]);
    }

    #[tokio::test]
    async fn a_flood_is_parsed_behind_and_the_snapshot_still_shows_the_last_lines() {
        let screen = Screen::new(SIZE);
        let mut flood = Vec::new();
        for i in 0..200_000 {
            flood.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        // Faster than any parser: handed over at once, past what the model may fall behind.
        screen.feed(Bytes::from(flood));
        // What it keeps is bounded: the tail it rebuilds from, not the flood.
        assert!(screen.snapshot().len() < RESYNC_TAIL + 16 * 1024);
        // Whether or not the worker has caught up, the snapshot shows the end.
        let mut fresh = parser(SIZE);
        fresh.process(&screen.snapshot());
        assert!(
            fresh.screen().contents().contains("line 199999"),
            "{}",
            fresh.screen().contents()
        );
        assert!(
            screen.resyncs() > 0,
            "3 MB of output is more than the model may fall behind"
        );
        // Put off during the flood; parsed once it has paused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !screen.idle() {
            screen.catch_up();
            assert!(
                std::time::Instant::now() < deadline,
                "the worker never caught up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(screen.last_lines(1), vec!["line 199999"]);
    }
}
