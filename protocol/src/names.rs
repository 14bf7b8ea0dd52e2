//! Names of nodes, jobs and terminals: Jenkins' rules (`Jenkins.checkGoodName`), and what Unicode
//! makes of them.
//!
//! A name becomes a directory (`jobs/NAME/`), a URL segment and a line in a listing, so two
//! names a person cannot tell apart must not name two things:
//! - **One spelling.** Names are kept in Unicode NFC ([`canonical`]): `é` typed as one
//!   character or as `e` and a combining accent is the same name, on entry and on lookup.
//! - **Nothing hidden.** Bidirectional controls (which reorder what is shown, `\u{202E}abc`)
//!   and other default-ignorable characters (zero-width spaces and joiners, variation
//!   selectors, the BOM…) are refused, named by code point.
//! - **No disguised separators.** A character whose compatibility form (NFKC) is one of
//!   Jenkins' unsafe characters (`／` FULLWIDTH SOLIDUS reads as `/`) is refused, and so is a
//!   name that reads as `.` or `..`.
//! - **No look-alikes.** [`lookalike_key`] folds compatibility forms and case (`ﬁ` and `fi`,
//!   `J1` and `j1`); the store refuses a new name whose key is another name's.

use std::borrow::Cow;
use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;

use crate::shown::Shown;

/// Longest node or job name accepted, in characters: Jenkins' limit on a path segment.
pub const MAX_NAME_LEN: usize = 255;

/// Characters Jenkins refuses in node and job names.
pub const UNSAFE_NAME_CHARS: &str = "?*/\\%!@#$^&|<>[]:;";

/// What a name names: the same rules apply to nodes and jobs, and the word goes into
/// [`NameError`]'s messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Node,
    Job,
    Terminal,
    View,
}

impl NameKind {
    pub fn word(self) -> &'static str {
        match self {
            NameKind::Node => "node",
            NameKind::Job => "job",
            NameKind::Terminal => "terminal",
            NameKind::View => "view",
        }
    }

    pub fn capitalized(self) -> &'static str {
        match self {
            NameKind::Node => "Node",
            NameKind::Job => "Job",
            NameKind::Terminal => "Terminal",
            NameKind::View => "View",
        }
    }
}

/// Why a node or job name is refused. Names in messages are [`Shown`]: a character that
/// would not be seen appears as an escape (`\u{200b}`), the character refused by its code
/// point (`U+200B`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{} name is empty", .0.capitalized())]
    Empty(NameKind),
    #[error("‘{}’ is not allowed as a {} name", Shown(.name), .kind.word())]
    Reserved { kind: NameKind, name: String },
    #[error("‘{}’ is an unsafe character in {} name ‘{}’", Shown(&.ch.to_string()), .kind.word(), Shown(.name))]
    UnsafeChar {
        kind: NameKind,
        ch: char,
        name: String,
    },
    #[error("‘{}’ ({}) reads as ‘{reads_as}’, an unsafe character in {} name ‘{}’", .ch, CodePoint(*.ch), .kind.word(), Shown(.name))]
    DisguisedUnsafeChar {
        kind: NameKind,
        ch: char,
        reads_as: String,
        name: String,
    },
    #[error("{} is a bidirectional text control, not allowed in {} name ‘{}’", CodePoint(*.ch), .kind.word(), Shown(.name))]
    BidiControl {
        kind: NameKind,
        ch: char,
        name: String,
    },
    #[error("{} is an invisible character, not allowed in {} name ‘{}’", CodePoint(*.ch), .kind.word(), Shown(.name))]
    Invisible {
        kind: NameKind,
        ch: char,
        name: String,
    },
    #[error("{} name is longer than {MAX_NAME_LEN} characters", .0.capitalized())]
    TooLong(NameKind),
}

/// `name` in Unicode NFC, the form names are kept, compared and looked up in.
pub fn canonical(name: &str) -> Cow<'_, str> {
    ComposingNormalizerBorrowed::new_nfc().normalize(name)
}

/// The key two names that differ only by case or compatibility form share: NFKC, lower
/// case, NFKC again (lower-casing can undo a normalization). Lower case of NFKC stands in for
/// Unicode's full case folding (`NFKC_Casefold`): they differ on a few letters (`ß` and `ss`
/// stay apart here), never on ASCII.
pub fn lookalike_key(name: &str) -> String {
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    let lower = nfkc.normalize(name).to_lowercase();
    nfkc.normalize(&lower).into_owned()
}

/// A name as one URL path segment (`computer/NAME/`, `job/NAME/`): every byte of its UTF-8
/// but the unreserved characters of RFC 3986 (letters, digits, `-`, `.`, `_`, `~`) is
/// percent-encoded, as `%20` for a space.
pub fn url_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks a name and gives it back in its [`canonical`] form, the one to store.
pub fn check(kind: NameKind, name: &str) -> Result<String, NameError> {
    let name = canonical(name);
    validate(kind, &name)?;
    Ok(name.into_owned())
}

/// Checks a name in [`canonical`] form against Jenkins' rules (not blank, not `.` or `..`,
/// none of [`UNSAFE_NAME_CHARS`]), plus: no control characters or blank edges, no bidi
/// controls or other invisible characters, no character that reads as an unsafe one, at most
/// [`MAX_NAME_LEN`] characters.
pub fn validate(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty(kind));
    }
    let reserved = || NameError::Reserved {
        kind,
        name: name.into(),
    };
    if name == "." || name == ".." {
        return Err(reserved());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong(kind));
    }
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    for ch in name.chars() {
        let owned = || name.to_owned();
        if UNSAFE_NAME_CHARS.contains(ch) || ch.is_control() {
            return Err(NameError::UnsafeChar {
                kind,
                ch,
                name: owned(),
            });
        }
        if is_bidi_control(ch) {
            return Err(NameError::BidiControl {
                kind,
                ch,
                name: owned(),
            });
        }
        if crate::shown::is_default_ignorable(ch) {
            return Err(NameError::Invisible {
                kind,
                ch,
                name: owned(),
            });
        }
        // ASCII is its own compatibility form.
        if !ch.is_ascii() {
            let mut buf = [0; 4];
            let folded = nfkc.normalize(ch.encode_utf8(&mut buf));
            if folded.chars().any(|c| UNSAFE_NAME_CHARS.contains(c)) {
                return Err(NameError::DisguisedUnsafeChar {
                    kind,
                    ch,
                    reads_as: folded.into_owned(),
                    name: owned(),
                });
            }
        }
    }
    let folded = nfkc.normalize(name);
    if folded == "." || folded == ".." || name.trim() != name {
        return Err(reserved());
    }
    Ok(())
}

/// Unicode's `Bidi_Control` characters: ALM, LRM, RLM, the embeddings and overrides
/// (U+202A–U+202E) and the isolates (U+2066–U+2069).
fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{61C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A character's code point as Unicode writes it: `U+202E`.
struct CodePoint(char);

impl fmt::Display for CodePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

/// The candidate nearest to `key` by edit distance (insertions, deletions and
/// substitutions of characters), the first of equals winning; `None` without candidates.
/// Jenkins' `EditDistance.findNearest`, behind its "Did you mean" and "perhaps you meant".
pub fn nearest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Names are at most MAX_NAME_LEN long: a longer key is as far from each, and cutting it
    // bounds the work whatever a caller sends.
    let key: Vec<char> = key.chars().take(MAX_NAME_LEN + 1).collect();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&key, candidate);
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance between `a` and `b`, in one row of `b`'s length.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j + 1] + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_segment_encodes_all_but_the_unreserved() {
        assert_eq!(url_segment("linux-1_a.b~c"), "linux-1_a.b~c");
        assert_eq!(url_segment("my node"), "my%20node");
        assert_eq!(url_segment("a/b?c#d%e&f+g"), "a%2Fb%3Fc%23d%25e%26f%2Bg");
        assert_eq!(url_segment("caf\u{e9}"), "caf%C3%A9");
    }

    #[test]
    fn names_are_kept_in_nfc() {
        let nfd = "cafe\u{301}";
        assert_eq!(check(NameKind::Job, nfd).unwrap(), "caf\u{e9}");
        assert_eq!(canonical("caf\u{e9}"), "caf\u{e9}");
        assert!(matches!(canonical("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn lookalikes_share_a_key() {
        for (a, b) in [
            ("\u{FB01}", "fi"),
            ("J1", "j1"),
            ("caf\u{e9}", "CAFE\u{301}"),
            ("\u{FF21}BC", "abc"),
            ("build\u{2460}", "BUILD1"),
        ] {
            assert_eq!(lookalike_key(a), lookalike_key(b), "{a} {b}");
        }
        assert_ne!(lookalike_key("a-b"), lookalike_key("a_b"));
    }

    #[test]
    fn invisible_and_bidi_characters_are_named_by_code_point() {
        let message = |name: &str| check(NameKind::Job, name).unwrap_err().to_string();
        assert_eq!(
            message("a\u{200B}b"),
            "U+200B is an invisible character, not allowed in job name ‘a\\u{200b}b’"
        );
        assert_eq!(
            message("\u{202E}abc"),
            "U+202E is a bidirectional text control, not allowed in job name ‘\\u{202e}abc’"
        );
        for bidi in [
            '\u{61C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{2066}', '\u{2069}',
        ] {
            let name = format!("x{bidi}y");
            assert!(
                matches!(check(NameKind::Node, &name), Err(NameError::BidiControl { ch, .. }) if ch == bidi),
                "{name:?}"
            );
        }
        for invisible in [
            '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{AD}', '\u{FE0F}',
        ] {
            let name = format!("x{invisible}y");
            assert!(
                matches!(check(NameKind::Node, &name), Err(NameError::Invisible { ch, .. }) if ch == invisible),
                "{name:?}"
            );
        }
    }

    #[test]
    fn characters_that_read_as_unsafe_ones_are_refused() {
        assert_eq!(
            check(NameKind::Job, "a\u{FF0F}b").unwrap_err().to_string(),
            "‘\u{FF0F}’ (U+FF0F) reads as ‘/’, an unsafe character in job name ‘a\u{FF0F}b’"
        );
        for bad in ["a\u{FF1F}", "\u{FE55}x", "x\u{FF03}"] {
            assert!(
                matches!(
                    check(NameKind::Job, bad),
                    Err(NameError::DisguisedUnsafeChar { .. })
                ),
                "{bad}"
            );
        }
        for dots in ["\u{FF0E}", "\u{FF0E}\u{FF0E}", "\u{2025}", ".\u{FF0E}"] {
            assert!(
                matches!(check(NameKind::Job, dots), Err(NameError::Reserved { .. })),
                "{dots}"
            );
        }
        for ok in ["caf\u{e9}", "\u{FB01}le", "日本語", "a.b", "build 1"] {
            assert_eq!(check(NameKind::Job, ok).as_deref(), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn nearest_is_by_edit_distance_first_of_equals() {
        assert_eq!(edit_distance(&['k', 'i', 't', 't', 'e', 'n'], "sitting"), 3);
        assert_eq!(edit_distance(&[], "abc"), 3);
        assert_eq!(
            nearest("nojob", ["long", "build-all", "nojobs"]),
            Some("nojobs")
        );
        assert_eq!(nearest("nojob", ["long", "build-all"]), Some("long"));
        assert_eq!(
            nearest("ab", ["xb", "ay"]),
            Some("xb"),
            "the first of equals"
        );
        assert_eq!(
            nearest("ü", ["u", "üü"]),
            Some("u"),
            "characters, not bytes"
        );
        assert_eq!(nearest("x", std::iter::empty()), None);
    }
}
