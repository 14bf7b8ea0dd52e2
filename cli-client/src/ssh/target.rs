//! What an SSH command reaches, `TARGET`: a node (`NODE`) or a build's workspace
//! (`JOB#N`), and the names derived from it: the controller's WebSocket route, the host
//! alias ssh knows it by (`steward-NODE`, `steward-JOB-N`), the SSH user of a build
//! (`JOB-N`), and the alias its node's host key is pinned under (`steward-NODE`).
//!
//! Names that go into ssh's arguments and files are reduced to `[A-Za-z0-9._-]`
//! ([`sanitize`]): they are host patterns in `ssh_config`, words in `known_hosts`, and a
//! host name starting with `-` would read as an option.

use std::fmt;

use sha2::{Digest, Sha256};
use steward_protocol::shown::Shown;
use url::Url;

/// Prefix of the host aliases (`Host steward-linux-1`) and of the alias a node's host key
/// is pinned under (`HostKeyAlias steward-linux-1`): every target on a node, the node's own
/// and its builds', checks the same key, and `Host steward-*` matches them all.
pub const ALIAS_PREFIX: &str = "steward-";

/// A node, or one build of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Build { job: String, number: u64 },
}

/// Why a `TARGET` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no TARGET: give a node name, or JOB#N for build N of a job")]
    Empty,
    #[error("‘{}’ has no job name before ‘#’: give JOB#N", Shown(.0))]
    NoJob(String),
    #[error("‘{}’: the build number after ‘#’ must be a whole number from 1 up", Shown(.0))]
    BadNumber(String),
    #[error("‘{}’ is not a node or job name", Shown(.0))]
    BadName(String),
}

impl Target {
    /// Reads `NODE` or `JOB#N`. The last `#` splits, so whatever precedes it is the job;
    /// `N` is a build number (1 or more, digits only).
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        if text.is_empty() {
            return Err(TargetError::Empty);
        }
        let Some((job, number)) = text.rsplit_once('#') else {
            check_name(text, text)?;
            return Ok(Target::Node(text.to_owned()));
        };
        if job.is_empty() {
            return Err(TargetError::NoJob(text.to_owned()));
        }
        check_name(job, text)?;
        let number = Some(number)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| TargetError::BadNumber(text.to_owned()))?;
        Ok(Target::Build {
            job: job.to_owned(),
            number,
        })
    }

    /// The WebSocket route that carries an SSH connection to this target:
    /// `ROOT/computer/NODE/ssh` or `ROOT/job/JOB/N/ssh`, each name one percent-encoded
    /// path segment, under the root's path prefix.
    pub fn route(&self, root: &Url) -> Result<Url, steward_transport::TransportError> {
        let mut url = steward_transport::ws_url(root, "")?;
        url.set_query(None);
        url.set_fragment(None);
        let number;
        let segments: Vec<&str> = match self {
            Target::Node(node) => vec!["computer", node, "ssh"],
            Target::Build { job, number: n } => {
                number = n.to_string();
                vec!["job", job, &number, "ssh"]
            }
        };
        url.path_segments_mut()
            .map_err(|()| steward_transport::TransportError::BadUrl {
                url: root.to_string(),
                reason: "the URL cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The name ssh knows this target by: `steward-NODE`, `steward-JOB-N`.
    pub fn host_alias(&self) -> String {
        match self {
            Target::Node(node) => host_key_alias(node),
            Target::Build { .. } => {
                format!("{ALIAS_PREFIX}{}", self.build_user().unwrap_or_default())
            }
        }
    }

    /// The SSH user a build session logs in as, `JOB-N`; `None` for a node, where the user
    /// is the caller's choice.
    pub fn build_user(&self) -> Option<String> {
        match self {
            Target::Node(_) => None,
            Target::Build { job, number } => Some(format!("{}-{number}", sanitize(job))),
        }
    }
}

impl fmt::Display for Target {
    /// As the user writes it: `NODE`, `JOB#N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(node) => f.write_str(node),
            Target::Build { job, number } => write!(f, "{job}#{number}"),
        }
    }
}

/// The alias a node's host key is pinned under: `steward-NODE`.
pub fn host_key_alias(node: &str) -> String {
    format!("{ALIAS_PREFIX}{}", sanitize(node))
}

/// What no node or job name can be, refused here so that it never reaches a URL or an
/// ssh argument: control characters, `.` and `..`, a `/`.
pub(crate) fn check_name(name: &str, target: &str) -> Result<(), TargetError> {
    if matches!(name, "." | "..") || name.contains('/') || name.chars().any(char::is_control) {
        return Err(TargetError::BadName(target.to_owned()));
    }
    Ok(())
}

/// `name` reduced to `[A-Za-z0-9._-]`, not starting with `-`. A name that needed changes
/// gets a short hash of itself appended (`build_1-3f9a0c12`), so two names never share an
/// alias: a shared `HostKeyAlias` would let one node's key vouch for another.
pub fn sanitize(name: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.is_empty() && name.chars().all(keep) && !name.starts_with('-') {
        return name.to_owned();
    }
    let mut safe: String = name
        .chars()
        .map(|c| if keep(c) { c } else { '_' })
        .collect();
    if safe.starts_with('-') {
        safe.replace_range(..1, "_");
    }
    let hash = Sha256::digest(name.as_bytes());
    let suffix: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    if safe.is_empty() {
        suffix
    } else {
        format!("{safe}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(job: &str, number: u64) -> Target {
        Target::Build {
            job: job.into(),
            number,
        }
    }

    #[test]
    fn node_or_job_and_build_number() {
        assert_eq!(Target::parse("linux-1"), Ok(Target::Node("linux-1".into())));
        assert_eq!(Target::parse("unit tests#12"), Ok(build("unit tests", 12)));
        // The last `#` splits.
        assert_eq!(Target::parse("a#b#3"), Ok(build("a#b", 3)));
        assert_eq!(Target::parse("é#1").unwrap().to_string(), "é#1");
    }

    #[test]
    fn malformed_targets_are_refused_with_the_reason() {
        assert_eq!(Target::parse(""), Err(TargetError::Empty));
        assert_eq!(Target::parse("#3"), Err(TargetError::NoJob("#3".into())));
        for bad in [
            "job#", "job#0", "job#-1", "job#+1", "job#1.5", "job#x", "job# 1",
        ] {
            assert_eq!(
                Target::parse(bad),
                Err(TargetError::BadNumber(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            Target::parse("job#99999999999999999999"),
            Err(TargetError::BadNumber("job#99999999999999999999".into()))
        );
        for bad in [".", "..", "a/b", "x\u{1b}[31m", "..#2"] {
            assert_eq!(Target::parse(bad), Err(TargetError::BadName(bad.into())));
        }
        // A control character is shown escaped, never printed raw.
        assert_eq!(
            Target::parse("x\u{1b}").unwrap_err().to_string(),
            "‘x\\u{1b}’ is not a node or job name"
        );
        assert_eq!(
            Target::parse("job#0").unwrap_err().to_string(),
            "‘job#0’: the build number after ‘#’ must be a whole number from 1 up"
        );
    }

    #[test]
    fn routes_keep_the_prefix_and_encode_each_name_as_one_segment() {
        let root = Url::parse("https://ci.example.com/jenkins/").unwrap();
        assert_eq!(
            Target::Node("linux-1".into())
                .route(&root)
                .unwrap()
                .as_str(),
            "wss://ci.example.com/jenkins/computer/linux-1/ssh"
        );
        assert_eq!(
            build("unit tests", 7).route(&root).unwrap().as_str(),
            "wss://ci.example.com/jenkins/job/unit%20tests/7/ssh"
        );
        assert_eq!(
            build("a#b?c%d", 1).route(&root).unwrap().as_str(),
            "wss://ci.example.com/jenkins/job/a%23b%3Fc%25d/1/ssh"
        );
        let root = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            Target::Node("é".into()).route(&root).unwrap().as_str(),
            "ws://127.0.0.1:8080/computer/%C3%A9/ssh"
        );
        // A root without its trailing slash, or with a query, still leads to the route.
        let root = Url::parse("http://h/ci?x=1").unwrap();
        assert_eq!(
            Target::Node("n".into()).route(&root).unwrap().as_str(),
            "ws://h/ci/computer/n/ssh"
        );
    }

    #[test]
    fn aliases_and_users() {
        let node = Target::Node("linux-1".into());
        assert_eq!(node.host_alias(), "steward-linux-1");
        assert_eq!(node.build_user(), None);
        let build = build("unit-tests", 42);
        assert_eq!(build.host_alias(), "steward-unit-tests-42");
        assert_eq!(build.build_user().as_deref(), Some("unit-tests-42"));
        assert_eq!(host_key_alias("linux-1"), "steward-linux-1");
        // A name ssh could misread gets a safe alias.
        let odd = Target::Node("-oProxyCommand=x".into());
        assert!(
            odd.host_alias().starts_with("steward-_oProxyCommand_x-"),
            "{}",
            odd.host_alias()
        );
    }

    #[test]
    fn sanitized_names_are_safe_and_never_collide() {
        assert_eq!(sanitize("Linux_1.2-x"), "Linux_1.2-x");
        let spaced = sanitize("a b");
        let underscored = sanitize("a_b");
        assert_eq!(underscored, "a_b");
        assert!(
            spaced.starts_with("a_b-") && spaced.len() == "a_b-".len() + 8,
            "{spaced}"
        );
        assert_ne!(spaced, underscored);
        assert_ne!(sanitize("a*b"), sanitize("a?b"));
        for name in ["-oProxyCommand=x", "é", "x y", "*", "", "!neg", "a@b"] {
            let safe = sanitize(name);
            assert!(!safe.starts_with('-'), "{safe}");
            assert!(
                !safe.is_empty()
                    && safe
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "{name:?} -> {safe:?}"
            );
        }
    }
}
