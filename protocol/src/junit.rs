//! JUnit XML test reports, read as Jenkins' JUnit plugin reads them, into the model its
//! `testReport/api/json` shows.
//!
//! The publisher (`junit` / JUnitResultArchiver) finds report files with an Ant pattern
//! ([`crate::ant_glob`]), hands each to [`parse_report`], gathers them with
//! [`TestResult::add_file`], and sets each case's status against earlier builds with
//! [`TestResult::compare_with`]. Surefire (`TEST-*.xml`), pytest `--junitxml`,
//! go-junit-report, jest-junit and the like all write this format; the rules Jenkins
//! applies to it are listed at the top of `junit/parse.rs`.
//!
//! Reading streams: a report is never held whole, and memory is bounded by the text kept
//! (`junit/stream.rs` splits long text for quick-xml, `junit/keep.rs` keeps its ends),
//! whatever the file's size: a 30 MB `<system-out>` adds under 1 MB to the reader's peak. As in the rest of this crate,
//! a report is untrusted: DOCTYPE is refused (no entities, no external fetches), and size,
//! depth, markup length and case count are bounded ([`Limits`]).
//!
//! What is kept of each text, as Jenkins keeps it:
//! - `<system-out>` and `<system-err>`, of a case or a suite: the first and last
//!   [`PASSING_STDIO_HALF`] characters when its tests pass, [`FAILING_STDIO_HALF`] when one
//!   fails, with `\n...[truncated N chars]...\n` between (`CaseResult.possiblyTrimStdio`);
//!   [`StdioRetention`] keeps more, up to [`ALL_STDIO_HALF`].
//! - Failure messages and stack traces: Jenkins keeps them whole; Steward keeps
//!   [`ERROR_TEXT_HALF`] characters of each end, the same way.
//!
//! Not read (as in Jenkins' defaults): Surefire's separate `*-output.txt` files (the
//! publisher reads files; this module reads one report), flaky and rerun failures.
//! Reports are read as UTF-8 (bytes that are not become U+FFFD); Jenkins also reads other
//! declared encodings.

mod keep;
mod model;
mod parse;
mod stream;
#[cfg(test)]
mod tests;

use std::io::BufRead;

pub use keep::keep_ends;
pub use model::{Case, MAX_PREVIOUS_RESULTS, Status, Suite, TestResult};
pub use parse::parse_time;
pub use stream::{MAX_ATTRIBUTE_VALUE_BYTES, MAX_MARKUP_BYTES, TEXT_CHUNK_BYTES};

/// Largest report read: the largest real reports (Surefire with captured output of
/// thousands of tests) are a few hundred MB; past 1 GiB a file is not a test report, or
/// not one worth the controller's time. Reading streams, so this bounds time, not memory.
pub const MAX_REPORT_BYTES: u64 = 1 << 30;
/// Most test cases in one report: ten times the largest suites seen in practice, and what
/// one build's result can hold without its JSON becoming unusable.
pub const MAX_CASES: usize = 1_000_000;
/// Deepest element nesting: Jest nests four levels, Surefire three; 64 is the limit of this
/// crate's other XML and bounds the suites being read at once.
pub const MAX_DEPTH: usize = 64;
/// Characters of each end of a passing test's output kept, as Jenkins' `HALF_MAX_SIZE`.
pub const PASSING_STDIO_HALF: usize = 500;
/// Characters of each end of a failing test's output kept, as Jenkins'
/// `HALF_MAX_FAILING_SIZE`.
pub const FAILING_STDIO_HALF: usize = 50_000;
/// Characters of each end kept when [`StdioRetention`] asks for all of it. Jenkins then
/// keeps everything; a ceiling keeps one report from filling the controller's memory, and
/// 1 Mi characters (a few MB) is more than anyone reads on a test's page.
pub const ALL_STDIO_HALF: usize = 1 << 20;
/// Characters of each end of a failure message, stack trace or property kept: a stack
/// trace of a thousand frames fits whole.
pub const ERROR_TEXT_HALF: usize = 50_000;
/// Most `<property>` kept per suite or case (when kept at all): Surefire writes the JVM's
/// system properties, about a hundred.
pub const MAX_PROPERTIES_PER_ELEMENT: usize = 1_000;

/// Which tests keep their whole output: the publisher's `stdioRetention` (`keepLongStdio`
/// is `All`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdioRetention {
    /// Output is cut to [`PASSING_STDIO_HALF`] or [`FAILING_STDIO_HALF`] at each end.
    #[default]
    None,
    /// Failing tests keep all their output (up to [`ALL_STDIO_HALF`] at each end).
    Failed,
    /// Every test keeps all its output (up to [`ALL_STDIO_HALF`] at each end).
    All,
}

/// What a report may hold, and what is kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_report_bytes: u64,
    pub max_cases: usize,
    pub max_depth: usize,
    pub stdio: StdioRetention,
    /// The publisher's `keepProperties`: keep `<properties>` of suites and cases.
    pub keep_properties: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_report_bytes: MAX_REPORT_BYTES,
            max_cases: MAX_CASES,
            max_depth: MAX_DEPTH,
            stdio: StdioRetention::None,
            keep_properties: false,
        }
    }
}

/// Why a report could not be read. Positions are byte offsets in the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JunitError {
    #[error("the report is empty (0 bytes)")]
    Empty,
    #[error("the report has no root element")]
    NoRoot,
    #[error("not a JUnit report: the root element is <{root}>, not <testsuites> or <testsuite>")]
    NotJunit { root: String },
    #[error("the report is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("DOCTYPE is not allowed in test reports (byte {position})")]
    Doctype { position: u64 },
    #[error("the report nests deeper than {limit} elements (byte {position})")]
    TooDeep { limit: usize, position: u64 },
    #[error("the report has more than {limit} test cases")]
    TooManyCases { limit: usize },
    #[error(
        "a tag, comment or declaration is longer than {MAX_MARKUP_BYTES} bytes (byte {position})"
    )]
    MarkupTooLong { position: u64 },
    #[error("a CDATA section holds a run of text that cannot be read in pieces (byte {position})")]
    Unsplittable { position: u64 },
    #[error("the report ends at byte {position} inside <{element}>: is it truncated?")]
    Truncated { position: u64, element: String },
    #[error("malformed XML at byte {position}: {reason}")]
    Syntax { position: u64, reason: String },
    #[error("reading the report: {0}")]
    Io(String),
}

/// Reads one JUnit XML report into its suites, in Jenkins' order (nested suites before the
/// suite holding them). Suites without a `name` have none here: [`TestResult::add_file`]
/// names them after the file.
pub fn parse_report(reader: impl BufRead, limits: &Limits) -> Result<Vec<Suite>, JunitError> {
    parse::parse(reader, limits)
}
