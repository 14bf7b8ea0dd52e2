//! The streaming reader: quick-xml events in, [`Suite`]s out, nothing held but the suites
//! being read and the text they keep.
//!
//! It reads what Jenkins' `SuiteResult.parse` reads, with Jenkins' rules:
//!
//! - The root and every `<testsuite>` directly inside a suite-holding element are read as
//!   suites; one becomes a [`Suite`] when it has a `<testcase>` or an `<error>` child.
//!   Nested suites come before the suite holding them.
//! - A suite's `<error>` (a class that failed to load) becomes a first case named after the
//!   suite, in class `<init>`.
//! - Of repeated children (`<failure>`, `<system-out>`…) the first counts; `<error>` counts
//!   before `<failure>`. Text is the element's own, not its children's.
//! - `time` drops thousands separators (`1,234.5`) and reads a leading number otherwise
//!   (`1.5s`); a case's duration is clamped between 0 and a year.

use std::collections::BTreeMap;
use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::escape::unescape;
use quick_xml::events::{BytesStart, Event};

use super::keep::{Keeper, keep_ends};
use super::model::{Case, Suite, safe};
use super::stream::{Chunked, StreamError};
use super::{
    ALL_STDIO_HALF, ERROR_TEXT_HALF, FAILING_STDIO_HALF, JunitError, Limits,
    MAX_PROPERTIES_PER_ELEMENT, PASSING_STDIO_HALF, StdioRetention,
};

/// Longest duration kept, as Jenkins' `CaseResult.clampDuration`: a year, in seconds.
const MAX_DURATION_SECONDS: f32 = 365.0 * 24.0 * 60.0 * 60.0;

/// Reads one report; see [`super::parse_report`].
pub(super) fn parse<R: BufRead>(reader: R, limits: &Limits) -> Result<Vec<Suite>, JunitError> {
    let mut xml = Reader::from_reader(Chunked::new(reader, limits.max_report_bytes));
    let config = xml.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let mut parser = Parser {
        limits,
        stack: Vec::new(),
        suites: Vec::new(),
        cases: 0,
        root_seen: false,
        position: 0,
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = xml.read_event_into(&mut buf);
        parser.position = xml.get_ref().position();
        let event = match event {
            Ok(event) => event,
            Err(e) => return Err(read_error(&mut xml, e)),
        };
        match event {
            Event::Start(start) => parser.start(&start, false)?,
            Event::Empty(start) => parser.start(&start, true)?,
            Event::End(_) => parser.end()?,
            Event::Text(text) => {
                let raw = String::from_utf8_lossy(&text);
                let text = unescape(&raw).map_err(|e| parser.syntax(e.to_string()))?;
                parser.text(&text)?;
            }
            Event::CData(data) => parser.text(&String::from_utf8_lossy(&data))?,
            Event::DocType(_) => {
                return Err(JunitError::Doctype {
                    position: parser.position,
                });
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    let read = xml.get_ref().bytes_read();
    if let Some(open) = parser.stack.last() {
        return Err(JunitError::Truncated {
            position: read,
            element: open.name().to_owned(),
        });
    }
    if !parser.root_seen {
        return Err(if read == 0 {
            JunitError::Empty
        } else {
            JunitError::NoRoot
        });
    }
    Ok(parser.suites)
}

/// A quick-xml error, or the reason the stream below it refused the report.
fn read_error<R: BufRead>(xml: &mut Reader<Chunked<R>>, e: quick_xml::Error) -> JunitError {
    let position = xml.get_ref().position();
    match xml.get_mut().take_error() {
        Some(StreamError::TooLarge) => JunitError::TooLarge {
            limit: xml.get_ref().bytes_read(),
        },
        Some(StreamError::MarkupTooLong) => JunitError::MarkupTooLong { position },
        Some(StreamError::Unsplittable) => JunitError::Unsplittable { position },
        Some(StreamError::Io(reason)) => JunitError::Io(reason),
        None => JunitError::Syntax {
            position,
            reason: e.to_string(),
        },
    }
}

/// Where the text of a kept element goes when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Stdout,
    Stderr,
    Error,
    Failure,
    Skipped,
}

/// `<failure>`, `<error>` or `<skipped>`: its `message` and its text.
#[derive(Debug, Default)]
struct Outcome {
    message: Option<String>,
    text: String,
}

/// The children of a case (or of a suite, for its `<init>` case) that make its outcome.
#[derive(Debug, Default)]
struct Outcomes {
    error: Option<Outcome>,
    failure: Option<Outcome>,
    skipped: Option<Outcome>,
    /// Which of the slots an element was seen for (the first one counts, even empty).
    seen: Vec<Slot>,
}

impl Outcomes {
    fn first(&mut self, slot: Slot) -> bool {
        if self.seen.contains(&slot) {
            return false;
        }
        self.seen.push(slot);
        true
    }

    fn failing(&self) -> bool {
        self.error.is_some() || self.failure.is_some()
    }

    /// errorStackTrace and errorDetails: the `<error>`'s, else the `<failure>`'s.
    fn error(&self) -> (Option<String>, Option<String>) {
        match self.error.as_ref().or(self.failure.as_ref()) {
            Some(o) => (Some(o.text.clone()), o.message.clone()),
            None => (None, None),
        }
    }
}

/// A `<testcase>` being read.
#[derive(Debug, Default)]
struct CaseBuilder {
    class_name: Option<String>,
    name: Option<String>,
    time: Option<String>,
    outcomes: Outcomes,
    stdout: Option<Keeper>,
    stderr: Option<Keeper>,
    properties: BTreeMap<String, String>,
    properties_seen: bool,
}

/// A suite-holding element being read (the root, or a `<testsuite>` in one).
#[derive(Debug, Default)]
struct SuiteBuilder {
    /// The raw `name` attribute: the class of cases without `classname`.
    name: Option<String>,
    package: Option<String>,
    id: Option<String>,
    timestamp: Option<String>,
    time: Option<String>,
    cases: Vec<Case>,
    /// A `<testcase>` or `<error>` child was seen: the element is a suite.
    has_cases: bool,
    outcomes: Outcomes,
    stdout: Option<Keeper>,
    stderr: Option<Keeper>,
    properties: BTreeMap<String, String>,
    properties_seen: bool,
}

#[derive(Debug)]
enum Frame {
    Suite(Box<SuiteBuilder>),
    Case(Box<CaseBuilder>),
    /// An element whose text is kept, bound for `slot` of its parent.
    Text {
        slot: Slot,
        message: Option<String>,
        keeper: Keeper,
    },
    /// `<properties>` of a kept suite or case.
    Properties(BTreeMap<String, String>),
    /// `<property>`: `value`, else its text.
    Property {
        name: Option<String>,
        value: Option<String>,
        keeper: Keeper,
    },
    /// Anything else, by name (for errors); its text is dropped.
    Other(String),
}

impl Frame {
    fn name(&self) -> &str {
        match self {
            Frame::Suite(_) => "testsuite",
            Frame::Case(_) => "testcase",
            Frame::Text { slot, .. } => match slot {
                Slot::Stdout => "system-out",
                Slot::Stderr => "system-err",
                Slot::Error => "error",
                Slot::Failure => "failure",
                Slot::Skipped => "skipped",
            },
            Frame::Properties(_) => "properties",
            Frame::Property { .. } => "property",
            Frame::Other(name) => name,
        }
    }
}

struct Parser<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    suites: Vec<Suite>,
    cases: usize,
    root_seen: bool,
    /// Offset in the report of the event being handled.
    position: u64,
}

impl Parser<'_> {
    fn syntax(&self, reason: String) -> JunitError {
        JunitError::Syntax {
            position: self.position,
            reason,
        }
    }

    /// Largest half a `<system-out>` may finally be cut to.
    fn stdio_keeper(&self) -> Keeper {
        Keeper::new(match self.limits.stdio {
            StdioRetention::None => FAILING_STDIO_HALF,
            StdioRetention::Failed | StdioRetention::All => ALL_STDIO_HALF,
        })
    }

    /// The half stdout and stderr are cut to, once it is known whether tests failed.
    fn stdio_half(&self, failing: bool) -> usize {
        match self.limits.stdio {
            StdioRetention::All => ALL_STDIO_HALF,
            StdioRetention::Failed if failing => ALL_STDIO_HALF,
            _ if failing => FAILING_STDIO_HALF,
            _ => PASSING_STDIO_HALF,
        }
    }

    fn start(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<(), JunitError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(JunitError::TooDeep {
                limit: self.limits.max_depth,
                position: self.position,
            });
        }
        let local = start.local_name();
        let name = local.as_ref();
        let at = self.position;
        let keep_properties = self.limits.keep_properties;
        let stdio = self.stdio_keeper();
        let other = || shown_name(name);
        let frame = match self.stack.last_mut() {
            None if self.root_seen => {
                return Err(JunitError::Syntax {
                    position: at,
                    reason: "content after the root element".into(),
                });
            }
            None => {
                if name != b"testsuites" && name != b"testsuite" {
                    return Err(JunitError::NotJunit {
                        root: shown_name(name),
                    });
                }
                self.root_seen = true;
                Frame::Suite(Box::new(suite_builder(start, at)?))
            }
            Some(Frame::Suite(suite)) => match name {
                b"testsuite" => Frame::Suite(Box::new(suite_builder(start, at)?)),
                b"testcase" => {
                    suite.has_cases = true;
                    Frame::Case(Box::new(case_builder(start, at)?))
                }
                b"error" | b"failure" | b"skipped" => {
                    let slot = outcome_slot(name);
                    if slot == Slot::Error {
                        suite.has_cases = true;
                    }
                    if suite.outcomes.first(slot) {
                        Frame::Text {
                            slot,
                            message: attribute(start, b"message", at)?,
                            keeper: Keeper::new(ERROR_TEXT_HALF),
                        }
                    } else {
                        Frame::Other(other())
                    }
                }
                b"system-out" | b"system-err" => {
                    let slot = if name == b"system-out" {
                        Slot::Stdout
                    } else {
                        Slot::Stderr
                    };
                    if suite.outcomes.first(slot) {
                        Frame::Text {
                            slot,
                            message: None,
                            keeper: stdio,
                        }
                    } else {
                        Frame::Other(other())
                    }
                }
                b"properties" if keep_properties && !suite.properties_seen => {
                    suite.properties_seen = true;
                    Frame::Properties(BTreeMap::new())
                }
                _ => Frame::Other(other()),
            },
            Some(Frame::Case(case)) => match name {
                b"error" | b"failure" | b"skipped" | b"system-out" | b"system-err" => {
                    let slot = match name {
                        b"system-out" => Slot::Stdout,
                        b"system-err" => Slot::Stderr,
                        _ => outcome_slot(name),
                    };
                    if case.outcomes.first(slot) {
                        let (message, keeper) = match slot {
                            Slot::Stdout | Slot::Stderr => (None, stdio),
                            _ => (
                                attribute(start, b"message", at)?,
                                Keeper::new(ERROR_TEXT_HALF),
                            ),
                        };
                        Frame::Text {
                            slot,
                            message,
                            keeper,
                        }
                    } else {
                        Frame::Other(other())
                    }
                }
                b"properties" if keep_properties && !case.properties_seen => {
                    case.properties_seen = true;
                    Frame::Properties(BTreeMap::new())
                }
                _ => Frame::Other(other()),
            },
            Some(Frame::Properties(_)) if name == b"property" => Frame::Property {
                name: attribute(start, b"name", at)?,
                value: attribute(start, b"value", at)?,
                keeper: Keeper::new(ERROR_TEXT_HALF),
            },
            Some(_) => Frame::Other(other()),
        };
        self.stack.push(frame);
        if empty {
            self.end()?;
        }
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), JunitError> {
        match self.stack.last_mut() {
            Some(Frame::Text { keeper, .. }) | Some(Frame::Property { keeper, .. }) => {
                keeper.push(text);
                Ok(())
            }
            Some(_) => Ok(()),
            None if text.trim().is_empty() => Ok(()),
            None => Err(self.syntax("text outside the root element".into())),
        }
    }

    fn end(&mut self) -> Result<(), JunitError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.syntax("unexpected end tag".into()));
        };
        match frame {
            Frame::Suite(suite) => {
                if suite.has_cases {
                    let suite = self.finish_suite(*suite)?;
                    self.suites.push(suite);
                }
            }
            Frame::Case(case) => {
                let class_fallback = match self.stack.last() {
                    Some(Frame::Suite(s)) => s.name.clone(),
                    _ => None,
                };
                let case = self.finish_case(*case, class_fallback);
                self.count_case()?;
                if let Some(Frame::Suite(suite)) = self.stack.last_mut() {
                    suite.cases.push(case);
                }
            }
            Frame::Text {
                slot,
                message,
                keeper,
            } => {
                let (outcomes, stdout, stderr) = match self.stack.last_mut() {
                    Some(Frame::Suite(s)) => (&mut s.outcomes, &mut s.stdout, &mut s.stderr),
                    Some(Frame::Case(c)) => (&mut c.outcomes, &mut c.stdout, &mut c.stderr),
                    _ => return Ok(()),
                };
                match slot {
                    Slot::Stdout => *stdout = Some(keeper),
                    Slot::Stderr => *stderr = Some(keeper),
                    Slot::Error | Slot::Failure | Slot::Skipped => {
                        let outcome = Outcome {
                            message: message.map(|m| keep_ends(&m, ERROR_TEXT_HALF)),
                            text: keeper.finish(ERROR_TEXT_HALF),
                        };
                        match slot {
                            Slot::Error => outcomes.error = Some(outcome),
                            Slot::Failure => outcomes.failure = Some(outcome),
                            _ => outcomes.skipped = Some(outcome),
                        }
                    }
                }
            }
            Frame::Properties(properties) => match self.stack.last_mut() {
                Some(Frame::Suite(s)) => s.properties = properties,
                Some(Frame::Case(c)) => c.properties = properties,
                _ => {}
            },
            Frame::Property {
                name,
                value,
                keeper,
            } => {
                if let (Some(name), Some(Frame::Properties(properties))) =
                    (name, self.stack.last_mut())
                    && properties.len() < MAX_PROPERTIES_PER_ELEMENT
                {
                    let value = match value {
                        Some(v) => keep_ends(&v, ERROR_TEXT_HALF),
                        None => keeper.finish(ERROR_TEXT_HALF),
                    };
                    properties.insert(name, value);
                }
            }
            Frame::Other(_) => {}
        }
        Ok(())
    }

    fn count_case(&mut self) -> Result<(), JunitError> {
        self.cases += 1;
        if self.cases > self.limits.max_cases {
            return Err(JunitError::TooManyCases {
                limit: self.limits.max_cases,
            });
        }
        Ok(())
    }

    fn finish_case(&self, case: CaseBuilder, class_fallback: Option<String>) -> Case {
        let mut class_name = case.class_name.or(class_fallback);
        let mut name = case.name;
        // Some tools write the class into a dotted name and no class at all.
        if class_name.is_none()
            && let Some(n) = &name
            && let Some(dot) = n.rfind('.')
        {
            class_name = Some(n[..dot].to_owned());
            name = Some(n[dot + 1..].to_owned());
        }
        let failing = case.outcomes.failing();
        let half = self.stdio_half(failing);
        let (error_stack_trace, error_details) = case.outcomes.error();
        let skipped = case.outcomes.skipped.as_ref();
        let mut out = Case {
            class_name,
            name: name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "(?)".into()),
            duration: clamp_duration(parse_time(case.time.as_deref())),
            error_details,
            error_stack_trace,
            skipped: skipped.is_some(),
            skipped_message: skipped.map(|s| s.message.clone().unwrap_or_else(|| s.text.clone())),
            stdout: case.stdout.map(|k| fix_nuls(k.finish(half))),
            stderr: case.stderr.map(|k| fix_nuls(k.finish(half))),
            properties: case.properties,
            ..Case::default()
        };
        out.status = out.plain_status();
        out
    }

    fn finish_suite(&mut self, suite: SuiteBuilder) -> Result<Suite, JunitError> {
        let SuiteBuilder {
            name,
            package,
            id,
            timestamp,
            time,
            mut cases,
            outcomes,
            stdout,
            stderr,
            properties,
            ..
        } = suite;
        let failing =
            outcomes.error.is_some() || cases.iter().any(|c| c.error_stack_trace.is_some());
        let half = self.stdio_half(failing);
        let stdout = stdout.map(|k| fix_nuls(k.finish(half)));
        let stderr = stderr.map(|k| fix_nuls(k.finish(half)));
        if outcomes.error.is_some() {
            // The class failed to load: Jenkins reads the suite element itself as a case
            // of class `<init>`, named after the suite.
            let (error_stack_trace, error_details) = outcomes.error();
            let skipped = outcomes.skipped.as_ref();
            let mut init = Case {
                class_name: Some("<init>".into()),
                name: name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "(?)".into()),
                duration: clamp_duration(parse_time(time.as_deref())),
                error_details,
                error_stack_trace,
                skipped: skipped.is_some(),
                skipped_message: skipped
                    .map(|s| s.message.clone().unwrap_or_else(|| s.text.clone())),
                stdout: stdout.clone(),
                stderr: stderr.clone(),
                properties: properties.clone(),
                ..Case::default()
            };
            init.status = init.plain_status();
            self.count_case()?;
            cases.insert(0, init);
        }
        let has_time = time.is_some();
        let duration = match &time {
            Some(t) => clamp_duration(parse_time(Some(t))),
            None => cases.iter().map(|c| c.duration).sum(),
        };
        let name = name.map(|n| match package.filter(|p| !p.is_empty()) {
            Some(p) => safe(&format!("{p}.{n}")),
            None => safe(&n),
        });
        Ok(Suite {
            cases,
            duration,
            id,
            name,
            properties,
            stderr,
            stdout,
            timestamp,
            has_time,
            ..Suite::default()
        })
    }
}

/// Longest element name quoted back in an error.
const MAX_SHOWN_NAME: usize = 64;

/// An element name for an error message: at most [`MAX_SHOWN_NAME`] characters.
fn shown_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .take(MAX_SHOWN_NAME)
        .collect()
}

fn outcome_slot(name: &[u8]) -> Slot {
    match name {
        b"error" => Slot::Error,
        b"failure" => Slot::Failure,
        _ => Slot::Skipped,
    }
}

fn suite_builder(start: &BytesStart<'_>, at: u64) -> Result<SuiteBuilder, JunitError> {
    Ok(SuiteBuilder {
        name: attribute(start, b"name", at)?,
        package: attribute(start, b"package", at)?,
        id: attribute(start, b"id", at)?,
        timestamp: attribute(start, b"timestamp", at)?,
        time: attribute(start, b"time", at)?,
        ..SuiteBuilder::default()
    })
}

fn case_builder(start: &BytesStart<'_>, at: u64) -> Result<CaseBuilder, JunitError> {
    Ok(CaseBuilder {
        class_name: attribute(start, b"classname", at)?,
        name: attribute(start, b"name", at)?,
        time: attribute(start, b"time", at)?,
        ..CaseBuilder::default()
    })
}

/// The first attribute `key` of `start` (the tag that ends at `at`), unescaped; bytes that
/// are not UTF-8 become U+FFFD.
fn attribute(start: &BytesStart<'_>, key: &[u8], at: u64) -> Result<Option<String>, JunitError> {
    let syntax = |reason: String| JunitError::Syntax {
        position: at,
        reason,
    };
    // Not quick-xml's duplicate check: it is quadratic in the number of attributes.
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| syntax(e.to_string()))?;
        if attr.key.local_name().as_ref() == key {
            let raw = String::from_utf8_lossy(&attr.value);
            let value = unescape(&raw).map_err(|e| syntax(e.to_string()))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// Jenkins' `TimeToFloat`: thousands separators dropped, then a number (as Java reads one,
/// `1e3` and a trailing `f` or `d` included), else the number the text starts with, else 0.
pub fn parse_time(time: Option<&str>) -> f32 {
    let Some(time) = time else { return 0.0 };
    let time = time.replace(',', "");
    let trimmed = time.trim();
    let number = trimmed
        .strip_suffix(['f', 'F', 'd', 'D'])
        .unwrap_or(trimmed);
    let plain = number
        .bytes()
        .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b));
    if plain && let Ok(v) = number.parse::<f32>() {
        return v;
    }
    // DecimalFormat: the longest leading `-digits.digits`.
    let bytes = time.as_bytes();
    let mut end = usize::from(bytes.first() == Some(&b'-'));
    let digits_from = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end < bytes.len() && bytes[end] == b'.' {
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    if time[digits_from..end].bytes().any(|b| b.is_ascii_digit()) {
        time[..end].trim_end_matches('.').parse().unwrap_or(0.0)
    } else {
        0.0
    }
}

/// Jenkins' `clampDuration`, with NaN read as 0.
fn clamp_duration(d: f32) -> f32 {
    if d.is_nan() {
        0.0
    } else {
        d.clamp(0.0, MAX_DURATION_SECONDS)
    }
}

/// Jenkins' `fixNULs` (JENKINS-71139): NUL shown as `^@`.
fn fix_nuls(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "^@")
    } else {
        s
    }
}
