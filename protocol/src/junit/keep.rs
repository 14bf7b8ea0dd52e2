//! Text kept from a report as it streams by: both ends, never the whole.
//!
//! Jenkins keeps the first and last *n* characters of a long output and puts
//! `\n...[truncated N chars]...\n` between them (`CaseResult.possiblyTrimStdio`), with *n*
//! chosen once the test's outcome is known. A [`Keeper`] keeps enough of both ends for the
//! largest *n* it may be asked for, so its memory is bounded by that, not by the text, and
//! [`Keeper::finish`] cuts to the *n* finally chosen.
//!
//! Characters are Unicode scalar values; Jenkins counts UTF-16 units, so a text with
//! characters outside the Basic Multilingual Plane is cut a little later than in Jenkins.

/// Head and tail of a text seen in pieces.
#[derive(Debug, Clone)]
pub struct Keeper {
    /// Most characters kept at each end.
    half: usize,
    head: String,
    head_chars: usize,
    /// Characters after the head; between `half` and `2 * half` of the last ones once the
    /// text is long.
    tail: String,
    tail_chars: usize,
    total: u64,
}

impl Keeper {
    pub fn new(half: usize) -> Self {
        Keeper {
            half,
            head: String::new(),
            head_chars: 0,
            tail: String::new(),
            tail_chars: 0,
            total: 0,
        }
    }

    /// Appends a piece of the text.
    pub fn push(&mut self, mut piece: &str) {
        if self.head_chars < self.half {
            let room = self.half - self.head_chars;
            let (end, n) = byte_index_of_char(piece, room);
            self.head.push_str(&piece[..end]);
            self.head_chars += n;
            self.total += n as u64;
            piece = &piece[end..];
        }
        if piece.is_empty() {
            return;
        }
        let n = piece.chars().count();
        self.total += n as u64;
        self.tail.push_str(piece);
        self.tail_chars += n;
        // Trimmed back to `half` characters once it doubles: each character is moved
        // at most once, so pushing stays linear.
        if self.tail_chars > 2 * self.half.max(1) {
            let drop = self.tail_chars - self.half;
            let (at, _) = byte_index_of_char(&self.tail, drop);
            self.tail.drain(..at);
            self.tail_chars -= drop;
        }
    }

    /// The text if it has at most `2 * half` characters, else its first and last `half`
    /// characters around Jenkins' marker. `half` is at most the one given to [`Keeper::new`].
    pub fn finish(self, half: usize) -> String {
        let half = half.min(self.half);
        if self.total <= 2 * half as u64 {
            let mut all = self.head;
            all.push_str(&self.tail);
            return all;
        }
        let (head_end, _) = byte_index_of_char(&self.head, half);
        let mut out = String::with_capacity(4 * half + 40);
        out.push_str(&self.head[..head_end]);
        out.push_str(&format!(
            "\n...[truncated {} chars]...\n",
            self.total - 2 * half as u64
        ));
        if self.tail_chars >= half {
            let (at, _) = byte_index_of_char(&self.tail, self.tail_chars - half);
            out.push_str(&self.tail[at..]);
        } else {
            // The text is short enough that part of its last `half` characters is in the
            // head.
            let from_head = half - self.tail_chars;
            let (at, _) = byte_index_of_char(&self.head, self.head_chars - from_head);
            out.push_str(&self.head[at..]);
            out.push_str(&self.tail);
        }
        out
    }
}

/// Jenkins' truncation of a text held whole.
pub fn keep_ends(text: &str, half: usize) -> String {
    let mut keeper = Keeper::new(half);
    keeper.push(text);
    keeper.finish(half)
}

/// Byte index after the first `n` characters of `s` (or its length), and how many
/// characters that is.
fn byte_index_of_char(s: &str, n: usize) -> (usize, usize) {
    match s.char_indices().nth(n) {
        Some((i, _)) => (i, n),
        None => (s.len(), s.chars().count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_whole() {
        let mut k = Keeper::new(5);
        k.push("abc");
        k.push("défg");
        assert_eq!(k.finish(5), "abcdéfg");
        assert_eq!(keep_ends("0123456789", 5), "0123456789");
    }

    #[test]
    fn long_texts_keep_both_ends_with_jenkins_marker() {
        assert_eq!(
            keep_ends("0123456789x", 5),
            "01234\n...[truncated 1 chars]...\n6789x"
        );
        let text: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut k = Keeper::new(50);
        for piece in text.as_bytes().chunks(7) {
            k.push(std::str::from_utf8(piece).unwrap());
        }
        let want = format!(
            "{}\n...[truncated 980 chars]...\n{}",
            &text[..10],
            &text[990..]
        );
        assert_eq!(k.clone().finish(10), want);
        assert_eq!(
            k.finish(50),
            format!(
                "{}\n...[truncated 900 chars]...\n{}",
                &text[..50],
                &text[950..]
            )
        );
    }

    #[test]
    fn a_smaller_half_takes_its_tail_from_the_head_when_needed() {
        // 30 characters, kept for a half of 20: all in head (20) and tail (10).
        let text = "abcdefghijklmnopqrstuvwxyz0123";
        let mut k = Keeper::new(20);
        k.push(text);
        assert_eq!(
            k.finish(12),
            format!(
                "{}\n...[truncated 6 chars]...\n{}",
                &text[..12],
                &text[18..]
            )
        );
    }

    proptest::proptest! {
        #[test]
        fn streaming_equals_whole(text in "\\PC{0,300}", half in 0usize..40, cut in 0usize..40, split in 1usize..9) {
            let cut = cut.min(half);
            let mut k = Keeper::new(half);
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(split) {
                k.push(&piece.iter().collect::<String>());
            }
            let n = chars.len();
            let want = if n <= 2 * cut {
                text.clone()
            } else {
                let head: String = chars[..cut].iter().collect();
                let tail: String = chars[n - cut..].iter().collect();
                format!("{head}\n...[truncated {} chars]...\n{tail}", n - 2 * cut)
            };
            proptest::prop_assert_eq!(k.finish(cut), want);
        }
    }
}
