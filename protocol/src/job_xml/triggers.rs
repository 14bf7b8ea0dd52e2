//! What starts a job's builds besides a user: the `<triggers>` Steward acts on, and the
//! `hudson.tasks.BuildTrigger` publisher that starts other jobs after a build.
//!
//! ```xml
//! <triggers>
//!   <hudson.triggers.TimerTrigger><spec>H 2 * * *</spec></hudson.triggers.TimerTrigger>
//!   <hudson.triggers.SCMTrigger>
//!     <spec>H/15 * * * *</spec>
//!     <ignorePostCommitHooks>false</ignorePostCommitHooks>
//!   </hudson.triggers.SCMTrigger>
//!   <com.cloudbees.jenkins.GitHubPushTrigger plugin="github@1.40.0"><spec/></com.cloudbees.jenkins.GitHubPushTrigger>
//!   <jenkins.triggers.ReverseBuildTrigger>
//!     <spec/>
//!     <upstreamProjects>lib, tools</upstreamProjects>
//!     <threshold><name>SUCCESS</name><ordinal>0</ordinal><color>BLUE</color><completeBuild>true</completeBuild></threshold>
//!   </jenkins.triggers.ReverseBuildTrigger>
//! </triggers>
//! <publishers>
//!   <hudson.tasks.BuildTrigger>
//!     <childProjects>deploy</childProjects>
//!     <threshold><name>SUCCESS</name><ordinal>0</ordinal><color>BLUE</color><completeBuild>true</completeBuild></threshold>
//!   </hudson.tasks.BuildTrigger>
//! </publishers>
//! ```
//!
//! The elements stay in the job as written; this is a reading of them. Cron specs are read
//! by [`crate::cron`].

use crate::cron::{CronError, CronTabList};
use crate::xml::{Element, XmlError};

use super::parameters::parse_bool;

pub const TIMER_TRIGGER: &str = "hudson.triggers.TimerTrigger";
pub const SCM_TRIGGER: &str = "hudson.triggers.SCMTrigger";
pub const GITHUB_PUSH_TRIGGER: &str = "com.cloudbees.jenkins.GitHubPushTrigger";
pub const REVERSE_BUILD_TRIGGER: &str = "jenkins.triggers.ReverseBuildTrigger";
pub const BUILD_TRIGGER: &str = "hudson.tasks.BuildTrigger";
/// Most jobs one trigger names.
pub const MAX_LINKED_JOBS: usize = 100;

/// The triggers a job has, as far as Steward acts on them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Triggers {
    /// `TimerTrigger`'s cron spec.
    pub timer: Option<String>,
    /// `SCMTrigger`: its cron spec (may be empty: only hooks poll), and whether hooks
    /// (`notifyCommit`, the GitHub webhook) are ignored.
    pub scm: Option<ScmTrigger>,
    /// `GitHubPushTrigger`: a GitHub push to the job's repository polls it.
    pub github_push: bool,
    /// `ReverseBuildTrigger`: builds when one of these jobs ends well enough.
    pub upstream: Option<Linked>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmTrigger {
    pub spec: String,
    pub ignore_post_commit_hooks: bool,
}

/// Jobs linked by a trigger, and the worst result of the one ending that still starts the
/// other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub jobs: Vec<String>,
    pub threshold: Threshold,
}

/// A result threshold, as Jenkins' `Result`: `SUCCESS`, `UNSTABLE` or `FAILURE` (a build
/// at least this good triggers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threshold {
    Success = 0,
    Unstable = 1,
    Failure = 2,
}

impl Threshold {
    /// Whether a build that ended with `result` (`SUCCESS`, `UNSTABLE`, `FAILURE`,
    /// `NOT_BUILT`, `ABORTED`) meets it: Jenkins' `isBetterOrEqualTo`.
    pub fn met_by(self, result: &str) -> bool {
        let ordinal = match result {
            "SUCCESS" => 0,
            "UNSTABLE" => 1,
            "FAILURE" => 2,
            _ => return false,
        };
        ordinal <= self as u8
    }

    fn read(parent: &Element) -> Result<Threshold, XmlError> {
        let Some(threshold) = parent.only_child("threshold")? else {
            return Ok(Threshold::Success);
        };
        let name = threshold.child_text("name").unwrap_or_default();
        match name.as_str() {
            "SUCCESS" | "" => Ok(Threshold::Success),
            "UNSTABLE" => Ok(Threshold::Unstable),
            "FAILURE" => Ok(Threshold::Failure),
            other => Err(XmlError::bad_value(
                "name",
                other,
                "a trigger threshold is SUCCESS, UNSTABLE or FAILURE",
            )),
        }
    }
}

impl Triggers {
    /// Reads `<triggers>`; cron specs are checked with `seed` (the job's name) as
    /// Jenkins' `H` hashes it.
    pub fn read(triggers: &Element, seed: &str) -> Result<Triggers, XmlError> {
        let mut read = Triggers::default();
        let check = |spec: &str| -> Result<(), XmlError> {
            CronTabList::parse(spec, seed)
                .map(|_| ())
                .map_err(|e: CronError| XmlError::bad_value("spec", spec, e.to_string()))
        };
        for trigger in triggers.child_elements() {
            let spec = || trigger.child_text("spec").unwrap_or_default();
            match trigger.name.as_str() {
                TIMER_TRIGGER => {
                    let spec = spec();
                    check(&spec)?;
                    read.timer = Some(spec);
                }
                SCM_TRIGGER => {
                    let spec = spec();
                    check(&spec)?;
                    let ignore = match trigger.child_text("ignorePostCommitHooks") {
                        Some(text) => parse_bool("ignorePostCommitHooks", &text)?,
                        None => false,
                    };
                    read.scm = Some(ScmTrigger {
                        spec,
                        ignore_post_commit_hooks: ignore,
                    });
                }
                GITHUB_PUSH_TRIGGER => read.github_push = true,
                REVERSE_BUILD_TRIGGER => {
                    let jobs =
                        job_list(&trigger.child_text("upstreamProjects").unwrap_or_default())?;
                    read.upstream = Some(Linked {
                        jobs,
                        threshold: Threshold::read(trigger)?,
                    });
                }
                _ => {}
            }
        }
        Ok(read)
    }

    /// Whether `name` is a trigger Steward acts on.
    pub fn understands(name: &str) -> bool {
        [
            TIMER_TRIGGER,
            SCM_TRIGGER,
            GITHUB_PUSH_TRIGGER,
            REVERSE_BUILD_TRIGGER,
        ]
        .contains(&name)
    }
}

/// Reads a `hudson.tasks.BuildTrigger` publisher.
pub fn read_build_trigger(publisher: &Element) -> Result<Linked, XmlError> {
    Ok(Linked {
        jobs: job_list(&publisher.child_text("childProjects").unwrap_or_default())?,
        threshold: Threshold::read(publisher)?,
    })
}

/// `a, b,c` as Jenkins' `Items.fromNameList` splits it: commas, names trimmed, blanks
/// dropped.
fn job_list(text: &str) -> Result<Vec<String>, XmlError> {
    let jobs: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    if jobs.len() > MAX_LINKED_JOBS {
        return Err(XmlError::bad_value(
            "upstreamProjects",
            text,
            format!("more than {MAX_LINKED_JOBS} jobs"),
        ));
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    #[test]
    fn triggers_are_read() {
        let xml = r#"<triggers>
          <hudson.triggers.TimerTrigger><spec>H 2 * * *</spec></hudson.triggers.TimerTrigger>
          <hudson.triggers.SCMTrigger><spec></spec><ignorePostCommitHooks>true</ignorePostCommitHooks></hudson.triggers.SCMTrigger>
          <com.cloudbees.jenkins.GitHubPushTrigger plugin="github@1.40.0"><spec/></com.cloudbees.jenkins.GitHubPushTrigger>
          <jenkins.triggers.ReverseBuildTrigger><spec/><upstreamProjects>lib, tools,</upstreamProjects>
            <threshold><name>UNSTABLE</name><ordinal>1</ordinal><color>YELLOW</color><completeBuild>true</completeBuild></threshold>
          </jenkins.triggers.ReverseBuildTrigger>
        </triggers>"#;
        let t = Triggers::read(&parse_document(xml).unwrap(), "job").unwrap();
        assert_eq!(t.timer.as_deref(), Some("H 2 * * *"));
        assert_eq!(
            t.scm,
            Some(ScmTrigger {
                spec: String::new(),
                ignore_post_commit_hooks: true
            })
        );
        assert!(t.github_push);
        let up = t.upstream.unwrap();
        assert_eq!(up.jobs, ["lib", "tools"]);
        assert_eq!(up.threshold, Threshold::Unstable);
        assert!(up.threshold.met_by("UNSTABLE") && !up.threshold.met_by("FAILURE"));
        assert!(!Threshold::Failure.met_by("ABORTED"));
    }

    #[test]
    fn a_bad_spec_is_named() {
        let xml = "<triggers><hudson.triggers.TimerTrigger><spec>61 * * * *</spec></hudson.triggers.TimerTrigger></triggers>";
        let e = Triggers::read(&parse_document(xml).unwrap(), "job")
            .unwrap_err()
            .to_string();
        assert!(e.contains("<spec>") && e.contains("61"), "{e}");
    }
}
