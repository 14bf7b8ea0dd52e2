//! `<scm class="hudson.plugins.git.GitSCM">`: the Git plugin's configuration as a job's XML
//! holds it, what Steward reads of it, and the checkout an agent runs from it
//! ([`GitCheckout`]), with the plugin's branch-specifier rules ([`BranchSpec`]).
//!
//! Read: `userRemoteConfigs` (url, name, refspec, credentialsId), `branches`, and the
//! extensions `CleanBeforeCheckout`, `RelativeTargetDirectory`, `CloneOption` (shallow,
//! depth, noTags, timeout) and `LocalBranch`. The element itself stays in the job as written
//! (the job keeps it verbatim); other extensions are named as ignored ([`GitScm::ignored`]).
//! docs/jobs.md says what each does.

use serde::{Deserialize, Serialize};

use crate::xml::{Element, XmlError};

use super::parameters::parse_bool;

/// The `<scm>` class of the Git plugin.
pub const GIT_SCM: &str = "hudson.plugins.git.GitSCM";
/// Where the Git plugin's extension classes live.
const EXTENSIONS: &str = "hudson.plugins.git.extensions.impl.";
/// The remote name the plugin gives the first remote without one.
pub const DEFAULT_REMOTE: &str = "origin";
/// The plugin's default timeout for a git command, in minutes.
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 10;
/// Longest timeout accepted (a day): a longer one is a typo, and a hung fetch should end.
pub const MAX_TIMEOUT_MINUTES: u32 = 24 * 60;
/// Most remotes and branch specifiers in one job: real jobs have one or two.
pub const MAX_REMOTES: usize = 16;
/// Longest URL, refspec or branch specifier accepted.
pub const MAX_GIT_FIELD_LEN: usize = 4096;

/// One `hudson.plugins.git.UserRemoteConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRemote {
    /// `origin`, `origin1`… when the job names none, as the plugin does.
    pub name: String,
    pub url: String,
    /// The fetch refspec; the plugin's default when the job gives none.
    pub refspec: String,
    pub credentials_id: Option<String>,
}

/// What the Git plugin's configuration asks, as far as Steward acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitScm {
    pub remotes: Vec<GitRemote>,
    /// Branch specifiers, in order; `**` (any branch) when the job gives none.
    pub branches: Vec<String>,
    /// `CleanBeforeCheckout`: `git clean -fdx` before the checkout (`-ffdx` with
    /// `deleteUntrackedNestedRepositories`).
    pub clean_before_checkout: Option<bool>,
    /// `RelativeTargetDirectory`: the checkout goes to this directory of the workspace.
    pub target_dir: Option<String>,
    pub clone: CloneOption,
    /// `LocalBranch`: the checkout is on this local branch (`**`: the remote branch's name).
    pub local_branch: Option<String>,
    /// Extensions present that Steward does not carry out, by class name.
    ignored: Vec<String>,
}

/// `CloneOption`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CloneOption {
    pub shallow: bool,
    /// History depth of a shallow fetch (1 when shallow without one).
    pub depth: Option<u32>,
    pub no_tags: bool,
    /// Per git command, in minutes ([`DEFAULT_TIMEOUT_MINUTES`] without one).
    pub timeout_minutes: Option<u32>,
}

impl GitScm {
    /// Reads `<scm class="hudson.plugins.git.GitSCM">`.
    pub fn read(scm: &Element) -> Result<GitScm, XmlError> {
        let mut remotes = Vec::new();
        if let Some(list) = scm.only_child("userRemoteConfigs")? {
            for (index, config) in list.child_elements().enumerate() {
                if remotes.len() == MAX_REMOTES {
                    return Err(XmlError::bad_value(
                        "userRemoteConfigs",
                        "",
                        format!("more than {MAX_REMOTES} remotes"),
                    ));
                }
                let url = field(config, "url")?.unwrap_or_default();
                if url.is_empty() {
                    return Err(XmlError::bad_value(
                        "url",
                        "",
                        "every remote needs a repository URL",
                    ));
                }
                let name = match field(config, "name")? {
                    Some(name) if !name.is_empty() => name,
                    _ if index == 0 => DEFAULT_REMOTE.to_owned(),
                    _ => format!("{DEFAULT_REMOTE}{index}"),
                };
                if !valid_remote_name(&name) {
                    return Err(XmlError::bad_value(
                        "name",
                        &name,
                        "a remote name is letters, digits, '.', '_' and '-'",
                    ));
                }
                let refspec = field(config, "refspec")?
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| default_refspec(&name));
                let credentials_id = field(config, "credentialsId")?.filter(|c| !c.is_empty());
                remotes.push(GitRemote {
                    name,
                    url,
                    refspec,
                    credentials_id,
                });
            }
        }
        if remotes.is_empty() {
            return Err(XmlError::bad_value(
                "userRemoteConfigs",
                "",
                "a Git SCM needs at least one repository URL",
            ));
        }
        let mut branches = Vec::new();
        if let Some(list) = scm.only_child("branches")? {
            for spec in list.child_elements() {
                if branches.len() == MAX_REMOTES {
                    return Err(XmlError::bad_value(
                        "branches",
                        "",
                        format!("more than {MAX_REMOTES} branch specifiers"),
                    ));
                }
                let name = field(spec, "name")?.unwrap_or_default();
                if !name.is_empty() {
                    BranchSpec::new(&name)
                        .map_err(|why| XmlError::bad_value("name", &name, why))?;
                    branches.push(name);
                }
            }
        }
        if branches.is_empty() {
            branches.push("**".to_owned());
        }
        let mut git = GitScm {
            remotes,
            branches,
            clean_before_checkout: None,
            target_dir: None,
            clone: CloneOption::default(),
            local_branch: None,
            ignored: Vec::new(),
        };
        if let Some(extensions) = scm.only_child("extensions")? {
            for extension in extensions.child_elements() {
                git.read_extension(extension)?;
            }
        }
        Ok(git)
    }

    fn read_extension(&mut self, extension: &Element) -> Result<(), XmlError> {
        let short = extension.name.strip_prefix(EXTENSIONS);
        match short {
            Some("CleanBeforeCheckout" | "CleanCheckout") => {
                let nested = match extension.child_text("deleteUntrackedNestedRepositories") {
                    Some(text) => parse_bool("deleteUntrackedNestedRepositories", &text)?,
                    None => false,
                };
                self.clean_before_checkout = Some(nested);
            }
            Some("RelativeTargetDirectory") => {
                let dir = field(extension, "relativeTargetDir")?.unwrap_or_default();
                if !dir.is_empty() {
                    check_relative_dir(&dir)?;
                    self.target_dir = Some(dir.trim_end_matches('/').to_owned());
                }
            }
            Some("CloneOption") => {
                let flag = |name: &str| match extension.child_text(name) {
                    Some(text) => parse_bool(name, &text),
                    None => Ok(false),
                };
                self.clone.shallow = flag("shallow")?;
                self.clone.no_tags = flag("noTags")?;
                self.clone.depth = number(extension, "depth", 1, u32::MAX)?;
                self.clone.timeout_minutes = number(extension, "timeout", 1, MAX_TIMEOUT_MINUTES)?;
            }
            Some("LocalBranch") => {
                let name = field(extension, "localBranch")?.unwrap_or_default();
                self.local_branch = Some(if name.is_empty() {
                    "**".to_owned()
                } else {
                    name
                });
            }
            _ => self.ignored.push(extension.name.clone()),
        }
        Ok(())
    }

    /// The extensions the job holds that Steward does not carry out (e.g.
    /// `SubmoduleOption`): builds check out without them.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Whether `url` is one of this job's repositories, as the plugin's `notifyCommit`
    /// compares them ([`same_repository`]).
    pub fn uses(&self, url: &str) -> bool {
        self.remotes.iter().any(|r| same_repository(&r.url, url))
    }

    /// The checkout an agent runs for a build: this configuration, the credential kind of
    /// each remote (looked up by the caller) and the commit the previous build checked out
    /// (for the change log).
    pub fn checkout(&self, previous_commit: Option<String>) -> GitCheckout {
        GitCheckout {
            remotes: self.remotes.clone(),
            branches: self.branches.clone(),
            clean: self.clean_before_checkout,
            target_dir: self.target_dir.clone(),
            clone: self.clone.clone(),
            local_branch: self.local_branch.clone(),
            previous_commit,
            credential: None,
        }
    }
}

/// Whether two repository URLs name the same repository, as the Git plugin's
/// `notifyCommit` decides: scheme, user, `.git` suffix and trailing slashes aside, the host
/// compared without case.
pub fn same_repository(a: &str, b: &str) -> bool {
    fn key(url: &str) -> (String, String) {
        let url = url.trim().trim_end_matches('/');
        let url = url.strip_suffix(".git").unwrap_or(url);
        let rest = match url.find("://") {
            Some(at) => &url[at + 3..],
            // scp-like `user@host:path`
            None => url,
        };
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = match rest.find(['/', ':']) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        // A port is not part of the repository's identity for the plugin either.
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        (host, path.trim_start_matches('/').to_owned())
    }
    key(a) == key(b)
}

/// The fetch refspec the plugin uses for a remote without one.
pub fn default_refspec(remote: &str) -> String {
    format!("+refs/heads/*:refs/remotes/{remote}/*")
}

fn valid_remote_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The trimmed text of the one child `name`; an over-long value is refused.
fn field(parent: &Element, name: &str) -> Result<Option<String>, XmlError> {
    let Some(child) = parent.only_child(name)? else {
        return Ok(None);
    };
    let text = child.text().trim().to_owned();
    if text.len() > MAX_GIT_FIELD_LEN {
        return Err(XmlError::bad_value(
            name,
            &text,
            format!("longer than {MAX_GIT_FIELD_LEN} bytes"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(XmlError::bad_value(
            name,
            &text,
            "control characters are not allowed",
        ));
    }
    Ok(Some(text))
}

fn number(parent: &Element, name: &str, min: u32, max: u32) -> Result<Option<u32>, XmlError> {
    let Some(text) = field(parent, name)? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u32>() {
        // The plugin's form writes 0 for "not set".
        Ok(0) => Ok(None),
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(XmlError::bad_value(
            name,
            &text,
            format!("expected a whole number from {min} to {max}"),
        )),
    }
}

fn check_relative_dir(dir: &str) -> Result<(), XmlError> {
    let bad = dir.starts_with('/') || dir.contains('\\') || dir.split('/').any(|part| part == "..");
    if bad {
        return Err(XmlError::bad_value(
            "relativeTargetDir",
            dir,
            "must be a directory inside the workspace (relative, without '..')",
        ));
    }
    Ok(())
}

/// What a checkout authenticates with: the kind of credential a remote names. The secret
/// itself reaches the agent in the step's environment ([`GIT_ENV_USERNAME`] and the
/// others), never in the checkout's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GitCredentialKind {
    /// Username and password (or token), given to git by `GIT_ASKPASS`.
    UsernamePassword,
    /// An SSH private key, given to git by `GIT_SSH_COMMAND`.
    SshKey,
}

/// Environment variables that carry a checkout's secret to the agent's git runner.
pub const GIT_ENV_USERNAME: &str = "STEWARD_GIT_USERNAME";
pub const GIT_ENV_PASSWORD: &str = "STEWARD_GIT_PASSWORD";
pub const GIT_ENV_SSH_KEY: &str = "STEWARD_GIT_SSH_KEY";
pub const GIT_ENV_PASSPHRASE: &str = "STEWARD_GIT_PASSPHRASE";

/// `GIT_ASKPASS` (and `SSH_ASKPASS`): answers git's and ssh's prompts from the
/// environment ([`GIT_ENV_USERNAME`], [`GIT_ENV_PASSWORD`], [`GIT_ENV_PASSPHRASE`]), so the
/// script itself holds no secret. The agent's checkout and the controller's polls both
/// write it.
pub const ASKPASS_SCRIPT: &str = r#"#!/bin/sh
case $1 in
Username*|username*) printf '%s\n' "$STEWARD_GIT_USERNAME" ;;
*assphrase*) printf '%s\n' "$STEWARD_GIT_PASSPHRASE" ;;
*) printf '%s\n' "$STEWARD_GIT_PASSWORD" ;;
esac
"#;

/// A checkout, as the controller asks it of an agent: written as JSON after the
/// `#!/usr/bin/env steward-git` line of the checkout step's script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCheckout {
    pub remotes: Vec<GitRemote>,
    pub branches: Vec<String>,
    /// `Some(nested)`: clean before the checkout.
    pub clean: Option<bool>,
    pub target_dir: Option<String>,
    pub clone: CloneOption,
    pub local_branch: Option<String>,
    /// The commit the job's previous build checked out: the change log starts there.
    pub previous_commit: Option<String>,
    /// The id and kind of the credential used, when a remote names one.
    pub credential: Option<(String, GitCredentialKind)>,
}

/// The first line of a checkout step's script: the agent's git runner.
pub const CHECKOUT_SHEBANG: &str = "#!/usr/bin/env steward-git";
/// The file, next to the step's script, where the runner writes what it checked out
/// ([`CheckoutResult`], JSON).
pub const CHECKOUT_RESULT_FILE: &str = "scm.json";
/// Most commits a build's change log keeps: a first build after a long gap does not carry
/// a repository's whole history.
pub const MAX_CHANGES: usize = 1000;
/// Most paths kept per commit.
pub const MAX_CHANGE_PATHS: usize = 1000;
/// Largest `scm.json` the controller reads.
pub const MAX_CHECKOUT_RESULT_BYTES: usize = 8 << 20;

/// What a checkout did: the revision built and the changes since the previous build.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckoutResult {
    pub commit: String,
    /// As Jenkins' `GIT_BRANCH`: `origin/main`, or the tag's or ref's name.
    pub branch: String,
    /// The URL of the remote the revision came from.
    pub url: String,
    /// The local branch checked out (`LocalBranch`), if any.
    pub local_branch: Option<String>,
    /// Newest first, at most [`MAX_CHANGES`].
    pub changes: Vec<Change>,
}

/// One commit in a build's change log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Change {
    pub commit: String,
    pub author: String,
    pub author_email: String,
    /// Seconds since the epoch (author date).
    pub timestamp: i64,
    /// The whole message.
    pub message: String,
    /// `(edit type, path)`: `add`, `edit` or `delete`, as the plugin names them.
    pub paths: Vec<(String, String)>,
}

impl Change {
    /// The message's first line: Jenkins' `msg`.
    pub fn title(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// A branch specifier, as the Git plugin reads `<branches>`: which fetched refs it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchSpec {
    pattern: String,
}

impl BranchSpec {
    /// Checks a specifier: not empty, no whitespace.
    pub fn new(spec: &str) -> Result<BranchSpec, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("a branch specifier cannot be empty".into());
        }
        if spec.chars().any(char::is_whitespace) {
            return Err("a branch specifier cannot hold spaces".into());
        }
        Ok(BranchSpec {
            pattern: spec.to_owned(),
        })
    }

    /// Whether the fetched ref `refname` (`refs/remotes/origin/main`, `refs/tags/v1`) is
    /// selected, `remotes` being the job's remote names:
    /// - `refs/tags/PATTERN` and `refs/heads/PATTERN` (a branch of any remote);
    /// - `REMOTE/PATTERN` or `*/PATTERN`: a branch of that remote (or any);
    /// - `**` any branch; a plain `PATTERN` (no `/`): a branch of any remote of that name;
    /// - `*` and `**` wildcards (`*` does not cross `/`).
    pub fn matches(&self, refname: &str, remotes: &[String]) -> bool {
        let p = self.pattern.as_str();
        if let Some(tag) = p.strip_prefix("refs/tags/") {
            return refname
                .strip_prefix("refs/tags/")
                .is_some_and(|name| glob(tag, name));
        }
        let Some(remote_branch) = refname.strip_prefix("refs/remotes/") else {
            return false;
        };
        let Some((remote, branch)) = remotes
            .iter()
            .filter_map(|r| {
                remote_branch
                    .strip_prefix(r.as_str())
                    .and_then(|b| b.strip_prefix('/'))
                    .map(|b| (r.as_str(), b))
            })
            .next()
        else {
            return false;
        };
        if let Some(head) = p.strip_prefix("refs/heads/") {
            return glob(head, branch);
        }
        if p == "**" {
            return true;
        }
        if let Some(name) = p.strip_prefix("*/") {
            return glob(name, branch);
        }
        if let Some((r, name)) = p.split_once('/')
            && remotes.iter().any(|known| known == r)
        {
            return r == remote && glob(name, branch);
        }
        glob(p, branch)
    }

    /// A specifier naming one commit (`0123abc…`, 40 hex digits): checked out as is.
    pub fn commit(&self) -> Option<&str> {
        (self.pattern.len() == 40 && self.pattern.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(self.pattern.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// `*` matches within a path segment, `**` across segments.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=t.len() {
                    if go(rest, &t[i..]) {
                        return true;
                    }
                    if t.get(i) == Some(&b'/') {
                        break;
                    }
                }
                false
            }
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    const SCM: &str = r#"<scm class="hudson.plugins.git.GitSCM" plugin="git@5.2.1">
      <configVersion>2</configVersion>
      <userRemoteConfigs>
        <hudson.plugins.git.UserRemoteConfig>
          <url>https://example.com/app.git</url>
          <credentialsId>gh</credentialsId>
        </hudson.plugins.git.UserRemoteConfig>
      </userRemoteConfigs>
      <branches><hudson.plugins.git.BranchSpec><name>*/main</name></hudson.plugins.git.BranchSpec></branches>
      <doGenerateSubmoduleConfigurations>false</doGenerateSubmoduleConfigurations>
      <submoduleCfg class="empty-list"/>
      <extensions>
        <hudson.plugins.git.extensions.impl.CleanBeforeCheckout>
          <deleteUntrackedNestedRepositories>true</deleteUntrackedNestedRepositories>
        </hudson.plugins.git.extensions.impl.CleanBeforeCheckout>
        <hudson.plugins.git.extensions.impl.RelativeTargetDirectory><relativeTargetDir>src/</relativeTargetDir></hudson.plugins.git.extensions.impl.RelativeTargetDirectory>
        <hudson.plugins.git.extensions.impl.CloneOption><shallow>true</shallow><noTags>false</noTags><reference/><depth>3</depth><timeout>5</timeout></hudson.plugins.git.extensions.impl.CloneOption>
        <hudson.plugins.git.extensions.impl.LocalBranch><localBranch>**</localBranch></hudson.plugins.git.extensions.impl.LocalBranch>
        <hudson.plugins.git.extensions.impl.SubmoduleOption><recursiveSubmodules>true</recursiveSubmodules></hudson.plugins.git.extensions.impl.SubmoduleOption>
      </extensions>
    </scm>"#;

    #[test]
    fn reads_the_plugins_xml() {
        let git = GitScm::read(&parse_document(SCM).unwrap()).unwrap();
        assert_eq!(
            git.remotes,
            vec![GitRemote {
                name: "origin".into(),
                url: "https://example.com/app.git".into(),
                refspec: "+refs/heads/*:refs/remotes/origin/*".into(),
                credentials_id: Some("gh".into()),
            }]
        );
        assert_eq!(git.branches, vec!["*/main"]);
        assert_eq!(git.clean_before_checkout, Some(true));
        assert_eq!(git.target_dir.as_deref(), Some("src"));
        assert_eq!(
            git.clone,
            CloneOption {
                shallow: true,
                depth: Some(3),
                no_tags: false,
                timeout_minutes: Some(5)
            }
        );
        assert_eq!(git.local_branch.as_deref(), Some("**"));
        assert_eq!(
            git.ignored(),
            ["hudson.plugins.git.extensions.impl.SubmoduleOption"]
        );
    }

    #[test]
    fn bad_values_are_named() {
        let with = |inner: &str| {
            let xml = format!(r#"<scm class="hudson.plugins.git.GitSCM">{inner}</scm>"#);
            GitScm::read(&parse_document(&xml).unwrap()).map_err(|e| e.to_string())
        };
        let e = with("").unwrap_err();
        assert!(e.contains("at least one repository URL"), "{e}");
        let remote = "<userRemoteConfigs><hudson.plugins.git.UserRemoteConfig><url>file:///r</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>";
        let e = with(&format!("{remote}<extensions><hudson.plugins.git.extensions.impl.RelativeTargetDirectory><relativeTargetDir>../x</relativeTargetDir></hudson.plugins.git.extensions.impl.RelativeTargetDirectory></extensions>")).unwrap_err();
        assert!(
            e.contains("relativeTargetDir") && e.contains("inside the workspace"),
            "{e}"
        );
        let e = with(&format!("{remote}<extensions><hudson.plugins.git.extensions.impl.CloneOption><depth>x</depth></hudson.plugins.git.extensions.impl.CloneOption></extensions>")).unwrap_err();
        assert!(e.contains("depth"), "{e}");
        let git = with(remote).unwrap();
        assert_eq!(git.branches, vec!["**"]);
        assert_eq!(git.clone.timeout_minutes, None);
    }

    #[test]
    fn branch_specifiers_select_as_the_plugin_does() {
        let remotes = vec!["origin".to_owned(), "fork".to_owned()];
        let m = |spec: &str, r: &str| BranchSpec::new(spec).unwrap().matches(r, &remotes);
        assert!(m("*/main", "refs/remotes/origin/main"));
        assert!(m("*/main", "refs/remotes/fork/main"));
        assert!(!m("*/main", "refs/remotes/origin/main2"));
        assert!(m("main", "refs/remotes/origin/main"));
        assert!(!m("main", "refs/tags/main"));
        assert!(m("origin/main", "refs/remotes/origin/main"));
        assert!(!m("origin/main", "refs/remotes/fork/main"));
        assert!(m("refs/heads/main", "refs/remotes/fork/main"));
        assert!(m("refs/tags/*", "refs/tags/v1.0"));
        assert!(!m("refs/tags/*", "refs/remotes/origin/main"));
        assert!(m("refs/tags/v1.*", "refs/tags/v1.2"));
        assert!(m("**", "refs/remotes/origin/feature/x"));
        assert!(m("*/feature/*", "refs/remotes/origin/feature/x"));
        assert!(!m("*/feature*", "refs/remotes/origin/feature/x"));
        assert!(m("feature/**", "refs/remotes/origin/feature/a/b"));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(BranchSpec::new(sha).unwrap().commit(), Some(sha));
        assert!(BranchSpec::new("a b").is_err());
    }

    #[test]
    fn the_askpass_script_names_no_secret_but_the_variables() {
        for name in [GIT_ENV_USERNAME, GIT_ENV_PASSWORD, GIT_ENV_PASSPHRASE] {
            assert!(ASKPASS_SCRIPT.contains(name), "{name}");
        }
    }

    #[test]
    fn repositories_compare_as_notify_commit_does() {
        assert!(same_repository(
            "https://github.com/o/r.git",
            "https://GitHub.com/o/r/"
        ));
        assert!(same_repository(
            "git@github.com:o/r.git",
            "ssh://git@github.com/o/r"
        ));
        assert!(same_repository("file:///srv/r.git", "file:///srv/r"));
        assert!(!same_repository(
            "https://github.com/o/r",
            "https://github.com/o/s"
        ));
    }
}
