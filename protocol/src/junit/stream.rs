//! The bytes quick-xml reads: the report as written, with four changes that keep memory
//! bounded by what the parser keeps rather than by the file.
//!
//! quick-xml hands over a text run, a CDATA section or a tag as one event, buffered whole:
//! a 50 MB `<system-out>` would be 50 MB in memory before the parser could truncate it. So
//! this reader, a small lexer in front of quick-xml, follows where quick-xml is (text,
//! tag, attribute value, comment, CDATA, processing instruction, DOCTYPE) and:
//!
//! - splits a long text run with an empty comment (`<!---->`), and a long CDATA section by
//!   closing and reopening it (`]]><![CDATA[`), every [`TEXT_CHUNK_BYTES`], at a place where
//!   that changes nothing (not inside a character reference or a UTF-8 sequence, not inside
//!   a `]]>`): quick-xml then hands the text over in pieces that the parser appends;
//! - cuts an attribute value after [`MAX_ATTRIBUTE_VALUE_BYTES`], with a marker saying how
//!   many bytes were left out;
//! - refuses a tag, comment, processing instruction or DOCTYPE longer than
//!   [`MAX_MARKUP_BYTES`], and a report longer than the caller's limit;
//! - does what an XML reader does to line ends (XML 1.0 §2.11: CRLF and a lone CR become
//!   LF) and to white space in attribute values (§3.3.3: tab and line feed become spaces),
//!   which quick-xml leaves to its caller.
//!
//! It also maps positions back: [`Chunked::position`] is the offset in the report, not in
//! what quick-xml read, so errors point at the user's file.

use std::io::{self, BufRead, Read};

/// Text and CDATA are handed to quick-xml in pieces of about this size: large enough that
/// splitting costs nothing measurable, small enough that a piece is never a memory concern.
pub const TEXT_CHUNK_BYTES: usize = 64 * 1024;
/// Longest attribute value kept. Test tools put a failure's one-line summary in `message`
/// (pytest the assertion, Go just "Failed"); 256 KiB is far above any real one, and the
/// parser keeps at most 50,000 characters of each end of it anyway.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256 * 1024;
/// Longest tag (after attribute values are cut), comment, processing instruction or DOCTYPE:
/// a JUnit tag holds a handful of attributes, so 1 MiB only refuses hostile input.
pub const MAX_MARKUP_BYTES: usize = 1024 * 1024;
/// Input lexed at a time: the size of a `BufReader`'s buffer, so each block is one copy.
const READ_BLOCK_BYTES: usize = 8 * 1024;
/// A run past [`TEXT_CHUNK_BYTES`] with no place to split it (only possible with a CDATA
/// section of `]` characters, or invalid UTF-8) is refused at this length.
const MAX_UNSPLIT_BYTES: usize = 2 * TEXT_CHUNK_BYTES;
/// Bytes a character or entity reference may take before splitting stops waiting for its `;`.
const MAX_REFERENCE_BYTES: usize = 32;

/// Why the reader stopped; handed to quick-xml as an I/O error and taken back by the parser
/// with [`Chunked::take_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    TooLarge,
    MarkupTooLong,
    Unsplittable,
    Io(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data; `reference` counts the bytes since an unfinished `&`.
    Text { reference: usize },
    /// Just after `<`.
    Open,
    /// Just after `<!`.
    Bang,
    /// Inside `<!--`…`-->`.
    Comment,
    /// Inside `<![`…`]]>`.
    CData,
    /// Inside `<!DOCTYPE`…`>`, with the balance of `<` and `>` quick-xml keeps.
    Doctype { balance: i64 },
    /// Inside `<?`…`?>`.
    Pi,
    /// Inside a start or end tag, outside quotes.
    Tag { start: bool },
    /// Inside a quoted attribute value of a start tag (or any quotes of an end tag).
    Quoted { quote: u8, start: bool },
}

/// The lexer's position in the markup being read and what it has seen of it.
#[derive(Debug)]
struct Lexer {
    state: State,
    /// Bytes since the `<` that opened the current markup (the `<` excluded), or since the
    /// last split of the current text or CDATA run.
    run: usize,
    /// The two bytes before the current one, in the current markup.
    last: [u8; 2],
    /// In a CDATA section: whether it opened as `<![CDATA[` (splitting needs that).
    cdata_open: bool,
    /// In an attribute value: bytes kept, bytes left out, bytes since an unfinished `&`.
    value_len: usize,
    dropped: u64,
    value_reference: usize,
    /// A CR waiting to see whether an LF follows.
    pending_cr: Option<u64>,
}

/// What opens a CDATA section, after the `<`.
const CDATA_OPENER: &[u8] = b"![CDATA[";

impl Lexer {
    /// Back to character data after a markup ends.
    fn back_to_text(&mut self) {
        self.state = State::Text { reference: 0 };
        self.run = 0;
    }

    /// Resets the attribute-value counters when a quoted value opens.
    fn start_value(&mut self) {
        if let State::Quoted { .. } = self.state {
            self.value_len = 0;
            self.dropped = 0;
            self.value_reference = 0;
        }
    }
}

/// The reader quick-xml reads: see the module documentation.
pub struct Chunked<R> {
    inner: R,
    limit: u64,
    /// Bytes taken from `inner`.
    read: u64,
    /// Bytes ready for quick-xml, from `start` on.
    out: Vec<u8>,
    start: usize,
    /// Where the linear relation between `out` and the input breaks: (index in `out`,
    /// input offset of that byte).
    marks: Vec<(usize, u64)>,
    /// Input offset the next byte pushed to `out` has if nothing was inserted or left out.
    next_linear: u64,
    /// Input offset of the first byte quick-xml has not consumed.
    consumed: u64,
    lexer: Lexer,
    eof: bool,
    error: Option<StreamError>,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Chunked {
            inner,
            limit,
            read: 0,
            out: Vec::with_capacity(2 * READ_BLOCK_BYTES),
            start: 0,
            marks: Vec::new(),
            next_linear: 0,
            consumed: 0,
            lexer: Lexer {
                state: State::Text { reference: 0 },
                run: 0,
                last: [0; 2],
                cdata_open: false,
                value_len: 0,
                dropped: 0,
                value_reference: 0,
                pending_cr: None,
            },
            eof: false,
            error: None,
        }
    }

    /// Offset in the report of the first byte quick-xml has not consumed.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// Bytes read from the report so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The reason this reader failed, if it did.
    pub fn take_error(&mut self) -> Option<StreamError> {
        self.error.take()
    }

    fn fail(&mut self, error: StreamError) -> io::Error {
        self.error = Some(error);
        io::Error::other("the report was refused")
    }

    /// Pushes one byte for quick-xml, coming from input offset `src`.
    fn emit(&mut self, byte: u8, src: u64) {
        if self.next_linear != src || self.out.is_empty() {
            self.marks.push((self.out.len(), src));
        }
        self.out.push(byte);
        self.next_linear = src + 1;
    }

    fn emit_all(&mut self, bytes: &[u8], src: u64) {
        for &b in bytes {
            self.emit(b, src);
        }
    }

    /// Reads the next block of input and lexes it into `out`.
    fn refill(&mut self) -> Result<(), io::Error> {
        self.out.clear();
        self.marks.clear();
        self.start = 0;
        while self.out.is_empty() && !self.eof {
            let block = loop {
                match self.inner.fill_buf() {
                    Ok(b) => break b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let e = StreamError::Io(e.to_string());
                        return Err(self.fail(e));
                    }
                }
            };
            if block.is_empty() {
                self.eof = true;
                if let Some(src) = self.lexer.pending_cr.take() {
                    self.lex(b'\n', src)?;
                }
                break;
            }
            let n = block.len().min(READ_BLOCK_BYTES);
            if self.read + n as u64 > self.limit {
                return Err(self.fail(StreamError::TooLarge));
            }
            // Copied out so that lexing can borrow `self`; a block is 8 KiB.
            let block = block[..n].to_vec();
            self.inner.consume(n);
            for (i, &byte) in block.iter().enumerate() {
                let src = self.read + i as u64;
                if let Some(cr) = self.lexer.pending_cr.take() {
                    self.lex(b'\n', cr)?;
                    if byte == b'\n' {
                        continue;
                    }
                }
                if byte == b'\r' {
                    self.lexer.pending_cr = Some(src);
                } else {
                    self.lex(byte, src)?;
                }
            }
            self.read += n as u64;
        }
        Ok(())
    }

    /// Lexes one input byte (line ends already normalized).
    fn lex(&mut self, byte: u8, src: u64) -> Result<(), io::Error> {
        match self.lexer.state {
            State::Text { reference } => {
                if byte == b'<' {
                    self.lexer.state = State::Open;
                    self.lexer.run = 0;
                    self.lexer.last = [0; 2];
                    self.emit(b'<', src);
                    return Ok(());
                }
                // Splitting before `byte` must not cut `&…;` (unless it never ends).
                let in_reference = reference > 0 && reference <= MAX_REFERENCE_BYTES;
                let run = self.lexer.run;
                if run >= TEXT_CHUNK_BYTES && !in_reference && !is_continuation(byte) {
                    self.lexer.run = 0;
                    self.emit_all(b"<!---->", src);
                } else if run >= MAX_UNSPLIT_BYTES {
                    return Err(self.fail(StreamError::Unsplittable));
                }
                let reference = match byte {
                    b'&' => 1,
                    b';' => 0,
                    _ if reference > 0 => reference + 1,
                    _ => 0,
                };
                self.lexer.state = State::Text { reference };
                self.lexer.run += 1;
                self.emit(byte, src);
                Ok(())
            }
            State::Open => {
                let lx = &mut self.lexer;
                lx.run = 1;
                lx.last = [0, byte];
                lx.state = match byte {
                    b'!' => State::Bang,
                    b'?' => State::Pi,
                    b'"' | b'\'' => State::Quoted {
                        quote: byte,
                        start: true,
                    },
                    b'/' => State::Tag { start: false },
                    _ => State::Tag { start: true },
                };
                lx.start_value();
                self.emit(byte, src);
                Ok(())
            }
            State::Bang => {
                self.lexer.state = match byte {
                    b'-' => State::Comment,
                    b'[' => {
                        self.lexer.cdata_open = true;
                        State::CData
                    }
                    b'D' | b'd' => State::Doctype { balance: 0 },
                    // quick-xml refuses it; lexed as a tag so that the bytes pass.
                    _ => State::Tag { start: false },
                };
                self.markup_byte(byte, src)
            }
            State::Comment => {
                // quick-xml ends a comment at the first `>` that follows `--` and comes at
                // least five bytes after the `<` (`<!---->`).
                let end = byte == b'>' && self.lexer.run >= 5 && self.lexer.last == *b"--";
                self.markup_byte(byte, src)?;
                if end {
                    self.lexer.back_to_text();
                }
                Ok(())
            }
            State::CData => self.lex_cdata(byte, src),
            State::Doctype { balance } => {
                let (balance, end) = match byte {
                    b'<' => (balance + 1, false),
                    b'>' if balance == 0 => (0, true),
                    b'>' => (balance - 1, false),
                    _ => (balance, false),
                };
                self.lexer.state = State::Doctype { balance };
                self.markup_byte(byte, src)?;
                if end {
                    self.lexer.back_to_text();
                }
                Ok(())
            }
            State::Pi => {
                let end = byte == b'>' && self.lexer.last[1] == b'?';
                self.markup_byte(byte, src)?;
                if end {
                    self.lexer.back_to_text();
                }
                Ok(())
            }
            State::Tag { start } => {
                self.lexer.state = match byte {
                    b'"' | b'\'' => State::Quoted { quote: byte, start },
                    _ => State::Tag { start },
                };
                self.lexer.start_value();
                self.markup_byte(byte, src)?;
                if byte == b'>' {
                    self.lexer.back_to_text();
                }
                Ok(())
            }
            State::Quoted { quote, start } => {
                if byte == quote {
                    if self.lexer.dropped > 0 {
                        let marker = format!(" ...[truncated {} bytes]", self.lexer.dropped);
                        self.lexer.run += marker.len();
                        self.emit_all(marker.as_bytes(), src);
                    }
                    self.lexer.state = State::Tag { start };
                    return self.markup_byte(byte, src);
                }
                if !start {
                    return self.markup_byte(byte, src);
                }
                let lx = &mut self.lexer;
                let reference = lx.value_reference;
                let in_reference = reference > 0 && reference <= MAX_REFERENCE_BYTES;
                lx.value_reference = match byte {
                    b'&' => 1,
                    b';' => 0,
                    _ if reference > 0 => reference + 1,
                    _ => 0,
                };
                if lx.dropped > 0
                    || (lx.value_len >= MAX_ATTRIBUTE_VALUE_BYTES
                        && !in_reference
                        && !is_continuation(byte))
                {
                    lx.dropped += 1;
                    return Ok(());
                }
                lx.value_len += 1;
                // Attribute-value normalization (XML 1.0 §3.3.3); a CR is already an LF.
                let byte = match byte {
                    b'\t' | b'\n' => b' ',
                    b => b,
                };
                self.markup_byte(byte, src)
            }
        }
    }

    /// Lexes one byte of a CDATA section (or of `<![` that turns out to be something else).
    fn lex_cdata(&mut self, byte: u8, src: u64) -> Result<(), io::Error> {
        let lx = &mut self.lexer;
        if byte == b'>' && lx.last == *b"]]" {
            self.emit(byte, src);
            self.lexer.back_to_text();
            return Ok(());
        }
        // The opener is `![CDATA[`: the 8 bytes after the `<`.
        if lx.run < CDATA_OPENER.len() {
            lx.cdata_open &= CDATA_OPENER.get(lx.run) == Some(&byte);
            return self.markup_byte(byte, src);
        }
        if lx.run >= TEXT_CHUNK_BYTES
            && lx.cdata_open
            && !is_continuation(byte)
            && lx.last[1] != b']'
        {
            // Closing before `byte` and reopening: no `]` precedes the `]]>` inserted, so it
            // ends the section exactly here, and the original `]]>` is still whole ahead.
            self.emit_all(b"]]><![CDATA[", src);
            self.lexer.run = CDATA_OPENER.len();
            self.lexer.last = *b"A[";
        } else if lx.run >= CDATA_OPENER.len() + MAX_UNSPLIT_BYTES {
            return Err(self.fail(StreamError::Unsplittable));
        }
        let lx = &mut self.lexer;
        lx.run += 1;
        lx.last = [lx.last[1], byte];
        self.emit(byte, src);
        Ok(())
    }

    /// Emits a byte of a tag, comment, PI or DOCTYPE, refusing markup past the limit.
    fn markup_byte(&mut self, byte: u8, src: u64) -> Result<(), io::Error> {
        let lx = &mut self.lexer;
        lx.run += 1;
        lx.last = [lx.last[1], byte];
        if lx.run > MAX_MARKUP_BYTES {
            return Err(self.fail(StreamError::MarkupTooLong));
        }
        self.emit(byte, src);
        Ok(())
    }

    /// Input offset of the byte at `index` in `out`.
    fn source_of(&self, index: usize) -> u64 {
        if index >= self.out.len() {
            return self.read;
        }
        let at = self.marks.partition_point(|&(i, _)| i <= index);
        match at.checked_sub(1).and_then(|m| self.marks.get(m)) {
            Some(&(i, src)) => src + (index - i) as u64,
            None => self.read,
        }
    }
}

/// A UTF-8 continuation byte: a split before it would cut a character in two.
fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Chunked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(e) = &self.error {
            // Stays failed: quick-xml may ask again after an error.
            let e = e.clone();
            return Err(self.fail(e));
        }
        if self.start >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.start..])
    }

    fn consume(&mut self, amt: usize) {
        self.start = (self.start + amt).min(self.out.len());
        self.consumed = self.source_of(self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What quick-xml would read from `input`.
    fn through(input: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut r = Chunked::new(input, u64::MAX);
        let mut out = Vec::new();
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(_) => Err(r.take_error().unwrap_or(StreamError::Io("?".into()))),
        }
    }

    #[test]
    fn small_documents_pass_unchanged_but_line_ends() {
        let doc =
            b"<?xml version='1.0'?><!-- c --><a b=\"x > y\" c='&amp;'><![CDATA[<z>]]>t&lt;</a>";
        assert_eq!(through(doc).unwrap(), doc.to_vec());
        assert_eq!(
            through(b"<a b='1\r\n2\t3'>x\r\ny\rz\r</a>\r").unwrap(),
            b"<a b='1 2 3'>x\ny\nz\n</a>\n".to_vec()
        );
    }

    #[test]
    fn long_text_and_cdata_are_split_where_nothing_changes() {
        let text = "é&amp;".repeat(TEXT_CHUNK_BYTES);
        let doc = format!(
            "<a>{text}</a><b><![CDATA[{}]]></b>",
            "]x]".repeat(TEXT_CHUNK_BYTES)
        );
        let out = String::from_utf8(through(doc.as_bytes()).unwrap()).unwrap();
        assert!(out.contains("<!---->"));
        assert!(out.contains("]]><![CDATA["));
        assert_eq!(out.replace("<!---->", "").replace("]]><![CDATA[", ""), doc);
        // Never inside a reference, nor after a `]`.
        assert!(!out.contains("&<!---->") && !out.contains("&amp<!---->"));
        assert!(!out.contains("]]]><![CDATA["));
    }

    #[test]
    fn long_attribute_values_are_cut_with_a_marker() {
        let doc = format!(
            "<a m=\"{}&amp;\" n='1'/>",
            "x".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 10)
        );
        let out = String::from_utf8(through(doc.as_bytes()).unwrap()).unwrap();
        assert!(
            out.ends_with("x ...[truncated 15 bytes]\" n='1'/>"),
            "{}",
            &out[out.len() - 60..]
        );
    }

    #[test]
    fn long_markup_and_large_reports_are_refused() {
        let doc = format!("<a {}/>", "b='1' ".repeat(MAX_MARKUP_BYTES / 6 + 1));
        assert_eq!(through(doc.as_bytes()), Err(StreamError::MarkupTooLong));
        let doc = format!("<a><![CDATA[{}]]></a>", "]".repeat(MAX_UNSPLIT_BYTES + 10));
        assert_eq!(through(doc.as_bytes()), Err(StreamError::Unsplittable));
        let mut r = Chunked::new(&b"<a>0123456789</a>"[..], 10);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(r.take_error(), Some(StreamError::TooLarge));
    }

    #[test]
    fn positions_are_input_offsets() {
        let text = "y".repeat(TEXT_CHUNK_BYTES + 5);
        let doc = format!("<a>\r\n{text}</a>");
        let mut r = Chunked::new(doc.as_bytes(), u64::MAX);
        let mut seen = 0usize;
        loop {
            let n = r.fill_buf().unwrap().len();
            if n == 0 {
                break;
            }
            let step = n.min(1000);
            seen += step;
            r.consume(step);
            if seen < 3 {
                assert_eq!(r.position(), seen as u64);
            }
        }
        assert_eq!(r.position(), doc.len() as u64);
    }
}
