//! The publishers Steward carries out after a build's steps: `hudson.tasks.ArtifactArchiver`
//! and `hudson.tasks.junit.JUnitResultArchiver`, and the build wrappers it carries out
//! around them: `hudson.plugins.build__timeout.BuildTimeoutWrapper` (absolute and
//! no-activity timeouts) and `hudson.plugins.timestamper.TimestamperBuildWrapper`.
//!
//! ```xml
//! <publishers>
//!   <hudson.tasks.ArtifactArchiver>
//!     <artifacts>dist/*.tar.gz, target/*.jar</artifacts>
//!     <excludes>**/*-sources.jar</excludes>
//!     <allowEmptyArchive>false</allowEmptyArchive>
//!     <onlyIfSuccessful>false</onlyIfSuccessful>
//!     <fingerprint>false</fingerprint>
//!     <defaultExcludes>true</defaultExcludes>
//!     <caseSensitive>true</caseSensitive>
//!   </hudson.tasks.ArtifactArchiver>
//!   <hudson.tasks.junit.JUnitResultArchiver plugin="junit@1265.v65b_14fa_f12f0">
//!     <testResults>**/target/surefire-reports/*.xml</testResults>
//!     <keepLongStdio>false</keepLongStdio>
//!     <allowEmptyResults>false</allowEmptyResults>
//!     <skipMarkingBuildUnstable>false</skipMarkingBuildUnstable>
//!   </hudson.tasks.junit.JUnitResultArchiver>
//! </publishers>
//! ```
//!
//! The elements stay in the job as written; this is a reading of them.

use crate::xml::{Element, XmlError};

use super::parameters::parse_bool;

pub const ARTIFACT_ARCHIVER: &str = "hudson.tasks.ArtifactArchiver";
pub const JUNIT_ARCHIVER: &str = "hudson.tasks.junit.JUnitResultArchiver";
pub const BUILD_TIMEOUT_WRAPPER: &str = "hudson.plugins.build__timeout.BuildTimeoutWrapper";
pub const TIMESTAMPER_WRAPPER: &str = "hudson.plugins.timestamper.TimestamperBuildWrapper";
const ABSOLUTE_STRATEGY: &str = "hudson.plugins.build_timeout.impl.AbsoluteTimeOutStrategy";
const NO_ACTIVITY_STRATEGY: &str = "hudson.plugins.build_timeout.impl.NoActivityTimeOutStrategy";
const FAIL_OPERATION: &str = "hudson.plugins.build__timeout.operations.FailOperation";
const ABORT_OPERATION: &str = "hudson.plugins.build__timeout.operations.AbortOperation";
/// The shortest absolute timeout the plugin applies: shorter ones are raised to it.
pub const MIN_ABSOLUTE_TIMEOUT_MINUTES: u64 = 3;
/// Longest timeout accepted (a week); longer is a typo.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// One publisher Steward carries out, in the order the job lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publisher {
    Artifacts(ArtifactArchiver),
    JUnit(JUnitArchiver),
}

/// "Archive the artifacts".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactArchiver {
    /// Comma-separated Ant patterns.
    pub artifacts: String,
    pub excludes: String,
    pub allow_empty: bool,
    pub only_if_successful: bool,
    pub default_excludes: bool,
    pub case_sensitive: bool,
}

/// "Publish JUnit test result report".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JUnitArchiver {
    pub test_results: String,
    pub keep_long_stdio: bool,
    pub allow_empty_results: bool,
    pub skip_marking_build_unstable: bool,
}

fn flag(element: &Element, name: &str, default: bool) -> Result<bool, XmlError> {
    match element.child_text(name) {
        Some(text) if !text.is_empty() => parse_bool(name, &text),
        _ => Ok(default),
    }
}

/// Reads a publisher Steward carries out; `None` for other classes.
pub fn read_publisher(element: &Element) -> Result<Option<Publisher>, XmlError> {
    match element.name.as_str() {
        ARTIFACT_ARCHIVER => {
            let artifacts = element.child_text("artifacts").unwrap_or_default();
            if artifacts.is_empty() {
                return Err(XmlError::bad_value(
                    "artifacts",
                    "",
                    "the artifact archiver needs file patterns",
                ));
            }
            crate::ant_glob::GlobSet::new(
                &artifacts,
                &element.child_text("excludes").unwrap_or_default(),
                true,
                true,
            )
            .map_err(|e| XmlError::bad_value("artifacts", &artifacts, e.to_string()))?;
            Ok(Some(Publisher::Artifacts(ArtifactArchiver {
                artifacts,
                excludes: element.child_text("excludes").unwrap_or_default(),
                allow_empty: flag(element, "allowEmptyArchive", false)?,
                only_if_successful: flag(element, "onlyIfSuccessful", false)?,
                default_excludes: flag(element, "defaultExcludes", true)?,
                case_sensitive: flag(element, "caseSensitive", true)?,
            })))
        }
        JUNIT_ARCHIVER => {
            let test_results = element.child_text("testResults").unwrap_or_default();
            crate::ant_glob::GlobSet::new(&test_results, "", true, true)
                .map_err(|e| XmlError::bad_value("testResults", &test_results, e.to_string()))?;
            Ok(Some(Publisher::JUnit(JUnitArchiver {
                test_results,
                keep_long_stdio: flag(element, "keepLongStdio", false)?,
                allow_empty_results: flag(element, "allowEmptyResults", false)?,
                skip_marking_build_unstable: flag(element, "skipMarkingBuildUnstable", false)?,
            })))
        }
        _ => Ok(None),
    }
}

/// A build timeout Steward enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildTimeout {
    pub strategy: TimeoutStrategy,
    /// `FailOperation`: the build ends FAILURE rather than ABORTED.
    pub fail: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStrategy {
    /// The build may run this many minutes in all (at least
    /// [`MIN_ABSOLUTE_TIMEOUT_MINUTES`]).
    Absolute { minutes: u64 },
    /// The build may print nothing for this many seconds.
    NoActivity { seconds: u64 },
}

impl TimeoutStrategy {
    /// The timeout in whole minutes, as the plugin's message gives it.
    pub fn minutes(self) -> u64 {
        match self {
            TimeoutStrategy::Absolute { minutes } => minutes,
            TimeoutStrategy::NoActivity { seconds } => seconds / 60,
        }
    }
}

/// Reads a `BuildTimeoutWrapper`; `None` when its strategy is one Steward does not enforce
/// (elastic, likely stuck, deadline, or a timeout given by a variable).
pub fn read_build_timeout(wrapper: &Element) -> Result<Option<BuildTimeout>, XmlError> {
    let number = |name: &str, text: &str| -> Result<Option<u64>, XmlError> {
        let text = text.trim();
        if text.contains('$') {
            return Ok(None);
        }
        match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(XmlError::bad_value(
                name,
                text,
                "expected a whole number above 0",
            )),
        }
    };
    let strategy = match wrapper.only_child("strategy")? {
        Some(strategy) => match strategy.attribute("class").unwrap_or_default() {
            ABSOLUTE_STRATEGY => {
                let text = strategy.child_text("timeoutMinutes").unwrap_or_default();
                number("timeoutMinutes", &text)?.map(|minutes| TimeoutStrategy::Absolute {
                    minutes: minutes.max(MIN_ABSOLUTE_TIMEOUT_MINUTES),
                })
            }
            NO_ACTIVITY_STRATEGY => {
                let text = strategy
                    .child_text("timeoutSecondsString")
                    .or_else(|| strategy.child_text("timeoutSeconds"))
                    .unwrap_or_default();
                number("timeoutSecondsString", &text)?
                    .map(|seconds| TimeoutStrategy::NoActivity { seconds })
            }
            _ => None,
        },
        // The plugin's first form: `<timeoutMinutes>` on the wrapper.
        None => match wrapper.child_text("timeoutMinutes") {
            Some(text) => {
                number("timeoutMinutes", &text)?.map(|minutes| TimeoutStrategy::Absolute {
                    minutes: minutes.max(MIN_ABSOLUTE_TIMEOUT_MINUTES),
                })
            }
            None => None,
        },
    };
    let Some(strategy) = strategy else {
        return Ok(None);
    };
    let seconds = match strategy {
        TimeoutStrategy::Absolute { minutes } => minutes.saturating_mul(60),
        TimeoutStrategy::NoActivity { seconds } => seconds,
    };
    if seconds > MAX_TIMEOUT_SECONDS {
        return Err(XmlError::bad_value(
            "strategy",
            &seconds.to_string(),
            format!("a timeout is at most {MAX_TIMEOUT_SECONDS} seconds (a week)"),
        ));
    }
    let operations: Vec<&str> = wrapper
        .only_child("operationList")?
        .map(|list| list.child_elements().map(|e| e.name.as_str()).collect())
        .unwrap_or_default();
    let fail = operations.contains(&FAIL_OPERATION)
        || (!operations.contains(&ABORT_OPERATION) && flag(wrapper, "failBuild", false)?);
    Ok(Some(BuildTimeout { strategy, fail }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    #[test]
    fn publishers_are_read_with_jenkins_defaults() {
        let e = parse_document("<hudson.tasks.ArtifactArchiver><artifacts>dist/</artifacts></hudson.tasks.ArtifactArchiver>").unwrap();
        assert_eq!(
            read_publisher(&e).unwrap(),
            Some(Publisher::Artifacts(ArtifactArchiver {
                artifacts: "dist/".into(),
                excludes: String::new(),
                allow_empty: false,
                only_if_successful: false,
                default_excludes: true,
                case_sensitive: true,
            }))
        );
        let e = parse_document("<hudson.tasks.ArtifactArchiver><artifacts>../x</artifacts></hudson.tasks.ArtifactArchiver>").unwrap();
        assert!(
            read_publisher(&e)
                .unwrap_err()
                .to_string()
                .contains("artifacts")
        );
        let e = parse_document("<hudson.tasks.junit.JUnitResultArchiver><testResults>r/*.xml</testResults><skipMarkingBuildUnstable>true</skipMarkingBuildUnstable></hudson.tasks.junit.JUnitResultArchiver>").unwrap();
        let Some(Publisher::JUnit(junit)) = read_publisher(&e).unwrap() else {
            panic!("junit")
        };
        assert!(junit.skip_marking_build_unstable && !junit.keep_long_stdio);
    }

    #[test]
    fn timeouts_are_read_as_the_plugin_applies_them() {
        let read = |xml: &str| read_build_timeout(&parse_document(xml).unwrap());
        let absolute = read(r#"<w><strategy class="hudson.plugins.build_timeout.impl.AbsoluteTimeOutStrategy"><timeoutMinutes>1</timeoutMinutes></strategy><operationList><hudson.plugins.build__timeout.operations.FailOperation/></operationList></w>"#).unwrap().unwrap();
        assert_eq!(absolute.strategy, TimeoutStrategy::Absolute { minutes: 3 });
        assert!(absolute.fail);
        let idle = read(r#"<w><strategy class="hudson.plugins.build_timeout.impl.NoActivityTimeOutStrategy"><timeoutSecondsString>90</timeoutSecondsString></strategy><operationList/></w>"#).unwrap().unwrap();
        assert_eq!(idle.strategy, TimeoutStrategy::NoActivity { seconds: 90 });
        assert_eq!(idle.strategy.minutes(), 1);
        assert!(!idle.fail);
        assert_eq!(read(r#"<w><strategy class="hudson.plugins.build_timeout.impl.ElasticTimeOutStrategy"/></w>"#).unwrap(), None);
        assert_eq!(read(r#"<w><strategy class="hudson.plugins.build_timeout.impl.AbsoluteTimeOutStrategy"><timeoutMinutes>${T}</timeoutMinutes></strategy></w>"#).unwrap(), None);
        assert!(read(r#"<w><strategy class="hudson.plugins.build_timeout.impl.AbsoluteTimeOutStrategy"><timeoutMinutes>x</timeoutMinutes></strategy></w>"#).is_err());
        let legacy = read("<w><timeoutMinutes>10</timeoutMinutes><failBuild>true</failBuild></w>")
            .unwrap()
            .unwrap();
        assert_eq!(
            legacy,
            BuildTimeout {
                strategy: TimeoutStrategy::Absolute { minutes: 10 },
                fail: true
            }
        );
    }
}
