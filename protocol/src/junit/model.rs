//! A build's test results as Jenkins' JUnit plugin models them, and their JSON.
//!
//! [`TestResult`] serializes as `/job/J/N/testReport/api/json` does: Stapler writes the
//! `@Exported` properties of a class's superclass first, then its own sorted by name, so
//! the result opens with `_class` and `testActions`, a suite lists `cases`, `duration`,
//! `enclosingBlockNames`… alphabetically, and a case opens with `testActions`. A case with
//! no `<system-out>` of its own shows its suite's (as `CaseResult.getStdout` does).

use std::collections::{BTreeMap, HashMap};

use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::JunitError;
use super::keep::keep_ends;

/// Most earlier results a case's previous outcome is looked for in, as Jenkins'
/// `PREVIOUS_TEST_RESULT_BACKTRACK_BUILDS_MAX`: a case missing from the last build (its
/// report was not published) still finds its history a few builds back.
pub const MAX_PREVIOUS_RESULTS: usize = 25;

/// A test's outcome, compared with the previous build when [`TestResult::compare_with`]
/// was called (`FIXED`, `REGRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Passed, as it did before (or the first time).
    #[default]
    Passed,
    /// Not run.
    Skipped,
    /// Failed, as it did before (or the first time).
    Failed,
    /// Passed after failing (or being skipped).
    Fixed,
    /// Failed after passing.
    Regression,
}

/// One test case (`<testcase>`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Case {
    /// Builds in a row this case has failed, this one included (0 when it passed).
    pub age: u32,
    /// `classname`, else the suite's `name`; else taken from a dotted `name`.
    pub class_name: Option<String>,
    /// Seconds, between 0 and a year.
    pub duration: f32,
    /// `message` of the first `<error>`, else of the first `<failure>`.
    pub error_details: Option<String>,
    /// Text of the first `<error>`, else of the first `<failure>` (empty, not absent, when
    /// the element is empty: the test still failed).
    pub error_stack_trace: Option<String>,
    /// Build number since which this case fails (0 when it passes).
    pub failed_since: u32,
    /// The test's name; `(?)` when the report gives none.
    pub name: String,
    /// `<properties>`, when kept.
    pub properties: BTreeMap<String, String>,
    pub skipped: bool,
    /// `message` of `<skipped>`, else its text.
    pub skipped_message: Option<String>,
    pub status: Status,
    pub stderr: Option<String>,
    pub stdout: Option<String>,
}

impl Case {
    /// Neither skipped nor failed.
    pub fn is_passed(&self) -> bool {
        !self.skipped && self.error_details.is_none() && self.error_stack_trace.is_none()
    }

    /// Failed or errored, and not skipped.
    pub fn is_failed(&self) -> bool {
        !self.is_passed() && !self.skipped
    }

    /// `class.name`, the key Jenkins finds a case by in other builds.
    pub fn full_name(&self) -> String {
        format!(
            "{}.{}",
            self.class_name.as_deref().unwrap_or("null"),
            self.name
        )
    }

    /// The outcome seen alone, without an earlier build.
    pub(super) fn plain_status(&self) -> Status {
        if self.skipped {
            Status::Skipped
        } else if self.is_passed() {
            Status::Passed
        } else {
            Status::Failed
        }
    }
}

/// One test suite (`<testsuite>` holding test cases).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Suite {
    pub cases: Vec<Case>,
    /// The `time` attribute in seconds, else the sum of the cases' durations.
    pub duration: f32,
    /// Pipeline blocks around the step that recorded the suite: always empty in Steward.
    pub enclosing_block_names: Vec<String>,
    pub enclosing_blocks: Vec<String>,
    pub id: Option<String>,
    /// `package.name`, with `/\:?#%<>` made `_`. `None` when the report gives no name:
    /// [`TestResult::add_file`] names it after the file, `(TEST-x.xml)`.
    pub name: Option<String>,
    /// Pipeline node: always `null` in Steward.
    pub node_id: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub stderr: Option<String>,
    pub stdout: Option<String>,
    pub timestamp: Option<String>,
    /// Whether `duration` came from a `time` attribute (merging adds it then).
    #[serde(skip)]
    pub(super) has_time: bool,
}

impl Suite {
    fn name_or_unnamed(&self) -> &str {
        self.name.as_deref().unwrap_or("(?)")
    }
}

/// Every suite of a build, from all its report files.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct TestResult {
    /// Seconds: the sum of the suites' durations.
    pub duration: f32,
    pub suites: Vec<Suite>,
}

impl TestResult {
    pub fn new() -> Self {
        TestResult::default()
    }

    /// Adds what one report file gave, as the JUnit publisher does:
    ///
    /// - suites without a name are named after the file, `(TEST-x.xml)`;
    /// - a suite named as one already here (and with the same `id`, when both have one) is
    ///   merged into it (JENKINS-12457: one suite split over several files);
    /// - an empty file becomes a failed case `[empty]`, and an unreadable `.xml` file a
    ///   failed case `[failed-to-read]` with the reason, in a suite named after the file;
    /// - an unreadable file not ending in `.xml` is returned as the error: Jenkins fails the
    ///   build then ("Is this really a JUnit report file?"), since the pattern matches more
    ///   than reports.
    ///
    /// `path` is shown in the failed cases' text; its last segment is the file name.
    pub fn add_file(
        &mut self,
        path: &str,
        parsed: Result<Vec<Suite>, JunitError>,
    ) -> Result<(), JunitError> {
        let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
        match parsed {
            Ok(suites) => {
                for mut suite in suites {
                    if suite.name.is_none() {
                        suite.name = Some(safe(&format!("({file})")));
                    }
                    self.add(suite);
                }
                Ok(())
            }
            Err(JunitError::Empty) => {
                let trace = format!("Test report file {path} was length 0");
                self.add(unreadable_suite(file, "[empty]", trace));
                Ok(())
            }
            Err(e) if path.ends_with(".xml") => {
                let trace = format!("Failed to read test report file {path}\n{e}");
                self.add(unreadable_suite(file, "[failed-to-read]", trace));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Adds another result's suites, merging same-named ones as [`TestResult::add_file`].
    pub fn merge(&mut self, other: TestResult) {
        for suite in other.suites {
            self.add(suite);
        }
    }

    fn add(&mut self, suite: Suite) {
        self.duration += suite.duration;
        let same = self.suites.iter_mut().find(|s| {
            s.name == suite.name
                && (s.id.is_none() || suite.id.is_none() || s.id == suite.id)
                && s.node_id == suite.node_id
                && s.enclosing_blocks == suite.enclosing_blocks
                && s.enclosing_block_names == suite.enclosing_block_names
        });
        match same {
            Some(into) => {
                // SuiteResult.merge: the duration grows by the other's time when this one
                // had a time attribute, else by its cases' durations.
                into.duration += if into.has_time {
                    suite.duration
                } else {
                    suite.cases.iter().map(|c| c.duration).sum()
                };
                into.cases.extend(suite.cases);
            }
            None => self.suites.push(suite),
        }
    }

    /// Every case, suite by suite.
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.suites.iter().flat_map(|s| s.cases.iter())
    }

    pub fn total(&self) -> usize {
        self.suites.iter().map(|s| s.cases.len()).sum()
    }

    pub fn fail_count(&self) -> usize {
        self.cases().filter(|c| c.is_failed()).count()
    }

    pub fn skip_count(&self) -> usize {
        self.cases().filter(|c| c.skipped).count()
    }

    pub fn pass_count(&self) -> usize {
        self.total() - self.fail_count() - self.skip_count()
    }

    /// No test case at all.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Sets each case's `status`, `failedSince` and `age` for build `number`, from the
    /// results of earlier builds, newest first (at most [`MAX_PREVIOUS_RESULTS`] are
    /// looked at). A case is found in an earlier result by its suite's name and its
    /// `class.name`, in the newest result that has it. As in Jenkins:
    ///
    /// - a skipped case is `SKIPPED`; otherwise, without an earlier outcome, `PASSED` or
    ///   `FAILED`; after a pass, `PASSED` or `REGRESSION`; after a failure or a skip,
    ///   `FIXED` or `FAILED`;
    /// - a failing case fails since the earlier one's `failedSince` when that one failed
    ///   too, else since `number`; a passing or skipped case has `failedSince` 0;
    /// - `age` is 0 for a passing case, else `number - failedSince + 1` (so a skipped case
    ///   shows `number + 1`, as Jenkins does).
    pub fn compare_with<'a>(
        &mut self,
        number: u32,
        previous: impl IntoIterator<Item = &'a TestResult>,
    ) {
        // Index of each case still looking for its earlier outcome.
        let mut pending: Vec<(usize, usize)> = Vec::new();
        for (si, suite) in self.suites.iter_mut().enumerate() {
            for (ci, case) in suite.cases.iter_mut().enumerate() {
                settle(case, number, None);
                pending.push((si, ci));
            }
        }
        for earlier in previous.into_iter().take(MAX_PREVIOUS_RESULTS) {
            if pending.is_empty() {
                break;
            }
            // One earlier result indexed at a time: memory stays that of one build.
            let mut index: HashMap<&str, HashMap<String, &Case>> = HashMap::new();
            for suite in &earlier.suites {
                let cases = index.entry(suite.name_or_unnamed()).or_default();
                for case in &suite.cases {
                    cases.insert(case.full_name(), case);
                }
            }
            pending.retain(|&(si, ci)| {
                let suite = &mut self.suites[si];
                let before = index
                    .get(suite.name_or_unnamed())
                    .and_then(|cases| cases.get(suite.cases[ci].full_name().as_str()))
                    .copied();
                match before {
                    Some(before) => {
                        settle(&mut suite.cases[ci], number, Some(before));
                        false
                    }
                    None => true,
                }
            });
        }
    }
}

/// Status, failedSince and age of `case` in build `number`, given its earlier outcome.
fn settle(case: &mut Case, number: u32, before: Option<&Case>) {
    let passed = case.is_passed();
    case.status = match before {
        _ if case.skipped => Status::Skipped,
        None => case.plain_status(),
        Some(b) if b.is_passed() => {
            if passed {
                Status::Passed
            } else {
                Status::Regression
            }
        }
        Some(_) => {
            if passed {
                Status::Fixed
            } else {
                Status::Failed
            }
        }
    };
    case.failed_since = if case.is_failed() {
        match before {
            Some(b) if b.is_failed() && b.failed_since != 0 => b.failed_since,
            _ => number,
        }
    } else {
        0
    };
    case.age = if passed {
        0
    } else {
        number.saturating_sub(case.failed_since).saturating_add(1)
    };
}

/// The suite Jenkins records for a report it could not read: one failed case.
fn unreadable_suite(file: &str, case_name: &str, trace: String) -> Suite {
    let case = Case {
        class_name: Some(file.to_owned()),
        name: case_name.to_owned(),
        error_details: Some(String::new()),
        error_stack_trace: Some(keep_ends(&trace, super::ERROR_TEXT_HALF)),
        status: Status::Failed,
        ..Case::default()
    };
    Suite {
        cases: vec![case],
        name: Some(file.to_owned()),
        stdout: Some(String::new()),
        stderr: Some(String::new()),
        ..Suite::default()
    }
}

/// Jenkins' `TestObject.safe`: a name fit for a URL segment.
pub(super) fn safe(name: &str) -> String {
    if name.is_empty() {
        return "(empty)".to_owned();
    }
    name.chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '?' | '#' | '%' | '<' | '>' => '_',
            c => c,
        })
        .collect()
}

/// Jenkins' class names, written as `_class` where Stapler writes them.
const TEST_RESULT_CLASS: &str = "hudson.tasks.junit.TestResult";

impl Serialize for TestResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TestResult", 8)?;
        s.serialize_field("_class", TEST_RESULT_CLASS)?;
        s.serialize_field("testActions", &[(); 0])?;
        s.serialize_field("duration", &self.duration)?;
        s.serialize_field("empty", &self.is_empty())?;
        s.serialize_field("failCount", &self.fail_count())?;
        s.serialize_field("passCount", &self.pass_count())?;
        s.serialize_field("skipCount", &self.skip_count())?;
        s.serialize_field("suites", &self.suites)?;
        s.end()
    }
}

impl Serialize for Suite {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cases: Vec<CaseJson<'_>> = self
            .cases
            .iter()
            .map(|case| CaseJson { case, suite: self })
            .collect();
        let mut s = serializer.serialize_struct("SuiteResult", 11)?;
        s.serialize_field("cases", &cases)?;
        s.serialize_field("duration", &self.duration)?;
        s.serialize_field("enclosingBlockNames", &self.enclosing_block_names)?;
        s.serialize_field("enclosingBlocks", &self.enclosing_blocks)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("name", &self.name_or_unnamed())?;
        s.serialize_field("nodeId", &self.node_id)?;
        s.serialize_field("properties", &self.properties)?;
        s.serialize_field("stderr", &self.stderr)?;
        s.serialize_field("stdout", &self.stdout)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.end()
    }
}

/// A case as Jenkins shows it: its suite's output when it has none of its own.
struct CaseJson<'a> {
    case: &'a Case,
    suite: &'a Suite,
}

impl Serialize for CaseJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.case;
        let mut s = serializer.serialize_struct("CaseResult", 14)?;
        s.serialize_field("testActions", &[(); 0])?;
        s.serialize_field("age", &c.age)?;
        s.serialize_field("className", &c.class_name)?;
        s.serialize_field("duration", &c.duration)?;
        s.serialize_field("errorDetails", &c.error_details)?;
        s.serialize_field("errorStackTrace", &c.error_stack_trace)?;
        s.serialize_field("failedSince", &c.failed_since)?;
        s.serialize_field("name", &c.name)?;
        s.serialize_field("properties", &c.properties)?;
        s.serialize_field("skipped", &c.skipped)?;
        s.serialize_field("skippedMessage", &c.skipped_message)?;
        s.serialize_field("status", &c.status)?;
        s.serialize_field("stderr", &c.stderr.as_ref().or(self.suite.stderr.as_ref()))?;
        s.serialize_field("stdout", &c.stdout.as_ref().or(self.suite.stdout.as_ref()))?;
        s.end()
    }
}
