//! The holder's output backlog: the last bytes of a run's output, addressed by their offset
//! in the whole output, so a reader that comes back asks for "from offset N".

use std::collections::VecDeque;

/// The last `capacity` bytes of output, and where they sit in the whole.
#[derive(Debug)]
pub struct Ring {
    bytes: VecDeque<u8>,
    /// Offset of `bytes[0]`.
    first: u64,
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            bytes: VecDeque::new(),
            first: 0,
            capacity,
        }
    }

    /// The oldest offset held.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The offset after the newest byte: the output's length so far.
    pub fn end(&self) -> u64 {
        self.first + self.bytes.len() as u64
    }

    /// Appends output, forgetting the oldest bytes beyond the capacity.
    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        let over = self.bytes.len().saturating_sub(self.capacity);
        if over > 0 {
            self.bytes.drain(..over);
            self.first += over as u64;
        }
        // A ring grown to its capacity keeps its buffer; a small one stays small.
    }

    /// Up to `max` bytes from `offset` (moved up to the oldest held), and the offset they
    /// start at; empty at the end.
    pub fn read(&self, offset: u64, max: usize) -> (u64, Vec<u8>) {
        let from = offset.max(self.first);
        let start = (from - self.first) as usize;
        let n = max.min(self.bytes.len().saturating_sub(start));
        let (a, b) = self.bytes.as_slices();
        let mut out = Vec::with_capacity(n);
        if start < a.len() {
            let take = n.min(a.len() - start);
            out.extend_from_slice(&a[start..start + take]);
            out.extend_from_slice(&b[..n - take]);
        } else {
            let s = start - a.len();
            out.extend_from_slice(&b[s..s + n]);
        }
        (from, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_offset_and_forgets_beyond_capacity() {
        let mut ring = Ring::new(8);
        ring.push(b"abcdef");
        assert_eq!(ring.read(2, 3), (2, b"cde".to_vec()));
        ring.push(b"ghijk");
        assert_eq!((ring.first(), ring.end()), (3, 11));
        // An offset already forgotten reads from the oldest held.
        assert_eq!(ring.read(0, 100), (3, b"defghijk".to_vec()));
        assert_eq!(ring.read(11, 100), (11, Vec::new()));
    }

    #[test]
    fn reads_across_the_wrap() {
        let mut ring = Ring::new(4);
        for chunk in [&b"ab"[..], b"cd", b"ef", b"g"] {
            ring.push(chunk);
        }
        assert_eq!(ring.read(3, 4), (3, b"defg".to_vec()));
        assert_eq!(ring.read(5, 1), (5, b"f".to_vec()));
    }
}
