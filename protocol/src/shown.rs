//! User-supplied text made safe to show: on a terminal, in an error message, in a log line.
//!
//! Names, descriptions, offline messages and header values come from users and peers.
//! Shown raw, an ESC starts a terminal escape sequence, a CR sends the cursor back over what
//! was printed, a NUL or a BEL does whatever the terminal makes of it, and a bidirectional
//! control (U+202E RIGHT-TO-LEFT OVERRIDE) makes what follows it read backwards. [`Shown`]
//! writes those characters as Rust-style escapes (`\u{1b}`, `\u{202e}`) and every other
//! character as it is, printable Unicode included, so `café` stays `café`.
//!
//! The XML writer ([`crate::xml`]) escapes the same characters as character references;
//! log lines quote such text with tracing's `?` (`Debug`), which escapes them as here.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` changes how a terminal shows what surrounds it rather than showing itself,
/// or shows as nothing: control characters (C0, DEL, C1), the bidirectional formatting
/// characters, the line and paragraph separators, and the default-ignorable characters
/// (a zero-width space makes `a\u{200b}b` look like `ab`).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || is_default_ignorable(c)
        || matches!(
            c,
            '\u{061C}' // ARABIC LETTER MARK
                | '\u{200E}' | '\u{200F}' // LEFT-TO-RIGHT and RIGHT-TO-LEFT MARK
                | '\u{202A}'..='\u{202E}' // embeddings and overrides
                | '\u{2066}'..='\u{2069}' // isolates
                | '\u{2028}' | '\u{2029}' // line and paragraph separators
        )
}

/// Displays user-supplied text on one line: every [`is_hidden`] character, line feeds
/// included, as an escape (`\u{1b}`; `\0`, `\t`, `\n`, `\r` for those four).
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(self.0, f, is_hidden)
    }
}

/// `text` on one line, as [`Shown`] writes it; borrowed when nothing needs escaping.
pub fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, is_hidden)
}

/// A message that may span lines (`ERROR: …`, an HTTP error body): as [`shown`], but line
/// feeds and tabs are kept. Text quoted inside it should already be [`Shown`], so a name
/// cannot start a line of its own.
pub fn shown_lines(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c != '\n' && c != '\t' && is_hidden(c))
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt, Unicode 16): drawn
/// as nothing when not understood. Among them the zero-width space, non-joiner and joiner
/// (U+200B–U+200D), the word joiner (U+2060), the BOM (U+FEFF), the soft hyphen, variation
/// selectors, Hangul fillers and tags.
pub fn is_default_ignorable(ch: char) -> bool {
    matches!(ch,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

fn escaped(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    // Writing to a String cannot fail.
    let _ = write_escaped(text, &mut out, escape);
    Cow::Owned(out)
}

fn write_escaped(text: &str, out: &mut impl Write, escape: impl Fn(char) -> bool) -> fmt::Result {
    for c in text.chars() {
        if !escape(c) {
            out.write_char(c)?;
        } else if matches!(c, '\0' | '\t' | '\n' | '\r') {
            // The short forms Rust's `Debug` writes, so a log line and a message agree.
            write!(out, "{}", c.escape_debug())?;
        } else {
            write!(out, "\\u{{{:x}}}", u32::from(c))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_escaped_and_printable_text_kept() {
        assert_eq!(
            Shown("\u{1b}[31mred\u{7}\r\0 x\ny").to_string(),
            "\\u{1b}[31mred\\u{7}\\r\\0 x\\ny"
        );
        assert_eq!(shown("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            shown("\u{85}\u{9f}\u{2028}\u{2066}"),
            "\\u{85}\\u{9f}\\u{2028}\\u{2066}"
        );
        assert!(matches!(shown("café 日本 \\u{1b}"), Cow::Borrowed(_)));
    }

    #[test]
    fn messages_keep_their_lines() {
        assert_eq!(shown_lines("a\n\tb\r\u{1b}c"), "a\n\tb\\r\\u{1b}c");
    }

    #[test]
    fn escapes_match_rust_debug_for_hidden_characters() {
        // Log lines quote with `Debug`: a reader sees the same escape in both places.
        for c in [
            '\0', '\r', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{202e}', '\u{2069}', '\u{2028}',
        ] {
            let text = c.to_string();
            assert_eq!(format!("\"{}\"", Shown(&text)), format!("{text:?}"));
        }
    }
}
