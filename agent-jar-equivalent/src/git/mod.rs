//! `steward-git`: a build's Git checkout, run as the build's first step.
//!
//! The controller starts the checkout as an ordinary durable step whose script is
//! `#!/usr/bin/env steward-git` and a [`GitCheckout`] in JSON: the step's wrapper runs this
//! binary under that name (a link in the agent's bin directory, first on the step's PATH),
//! so a checkout is logged, followed, aborted and resumed as any step is. It drives the
//! system's `git` as the Git plugin does, printing the plugin's lines (` > git fetch …`),
//! and writes what it checked out ([`CheckoutResult`]) to `scm.json` beside the script,
//! where the controller reads it.
//!
//! Credentials come in the step's environment ([`GIT_ENV_USERNAME`] and the others), never
//! in the script: a username and password reach git through a `GIT_ASKPASS` script that
//! reads them from the environment; an SSH key is written to the step's private directory,
//! mode 0600, for `GIT_SSH_COMMAND`, and deleted when the checkout ends (and with the step's
//! directory at the end of the build, should the checkout be killed).

mod changes;
mod command;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use steward_protocol::job_xml::git::{
    ASKPASS_SCRIPT, BranchSpec, CHECKOUT_RESULT_FILE, CheckoutResult, DEFAULT_TIMEOUT_MINUTES,
    GIT_ENV_PASSPHRASE, GIT_ENV_PASSWORD, GIT_ENV_SSH_KEY, GIT_ENV_USERNAME, GitCheckout,
    GitCredentialKind,
};

use command::{Git, GitError};

/// The name this binary runs a checkout under.
pub const COMMAND_NAME: &str = "steward-git";
/// Oldest git the checkout works with: `GIT_SSH_COMMAND` came in 2.3.
pub const MIN_GIT_VERSION: (u32, u32) = (2, 3);
/// Largest checkout description read: a few remotes and branch names.
const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Whether the binary was started as `steward-git`.
pub fn invoked_as(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name() == Some(std::ffi::OsStr::new(COMMAND_NAME))
}

/// Runs the checkout the script `args[0]` describes, in the current directory (the
/// workspace); the exit code: 0 when checked out, 1 when not (the reason printed as the
/// plugin prints it, `ERROR: …`), 2 for a bad invocation.
pub fn main(args: &[OsString]) -> u8 {
    let Some(script) = args.first().map(PathBuf::from) else {
        eprintln!("usage: {COMMAND_NAME} SCRIPT (run by a build's checkout step)");
        return 2;
    };
    let checkout = match read_spec(&script) {
        Ok(checkout) => checkout,
        Err(why) => {
            println!("ERROR: {why}");
            return 2;
        }
    };
    let step_dir = script
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let workspace = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => {
            println!("ERROR: the workspace cannot be read: {e}");
            return 1;
        }
    };
    let mut secrets = Secrets::new(&step_dir);
    let result = run(&checkout, &workspace, &mut secrets);
    secrets.remove();
    match result {
        Ok(result) => match write_result(&step_dir, &result) {
            Ok(()) => 0,
            Err(e) => {
                println!("ERROR: cannot record the checked-out revision: {e}");
                1
            }
        },
        Err(e) => {
            println!("ERROR: {e}");
            1
        }
    }
}

fn read_spec(script: &Path) -> Result<GitCheckout, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(script)
        .and_then(|f| f.take(MAX_SPEC_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the checkout {}: {e}", script.display()))?;
    let json = text.split_once('\n').map_or("", |(_, rest)| rest);
    serde_json::from_str(json)
        .map_err(|e| format!("the checkout in {} is malformed: {e}", script.display()))
}

/// The checkout, as the Git plugin does it.
fn run(
    checkout: &GitCheckout,
    workspace: &Path,
    secrets: &mut Secrets,
) -> Result<CheckoutResult, GitError> {
    let timeout = checkout
        .clone
        .timeout_minutes
        .unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    let target = match &checkout.target_dir {
        Some(dir) => workspace.join(dir),
        None => workspace.to_path_buf(),
    };
    let mut git = Git::new(&target, timeout);
    git.check_version()?;
    match &checkout.credential {
        Some((id, kind)) => {
            println!("using credential {id}");
            secrets.give(&mut git, *kind)?;
        }
        None => println!("No credentials specified"),
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| GitError::Io(format!("cannot create {}: {e}", target.display())))?;
    let first_remote = &checkout.remotes[..1];
    if target.join(".git").is_dir() {
        println!("Fetching changes from the remote Git repository");
    } else {
        println!("Cloning the remote Git repository");
        if checkout.clone.shallow {
            println!(
                "Using shallow clone with depth {}",
                checkout.clone.depth.unwrap_or(1)
            );
        }
        for remote in first_remote {
            println!("Cloning repository {}", remote.url);
        }
        git.run(&["init", &target.display().to_string()])?;
    }
    for remote in &checkout.remotes {
        git.run(&[
            "config",
            &format!("remote.{}.url", remote.name),
            &remote.url,
        ])?;
        git.run(&[
            "config",
            "--replace-all",
            &format!("remote.{}.fetch", remote.name),
            &remote.refspec,
        ])?;
        println!("Fetching upstream changes from {}", remote.url);
        let mut fetch = vec!["fetch"];
        fetch.push(if checkout.clone.no_tags {
            "--no-tags"
        } else {
            "--tags"
        });
        fetch.extend(["--force", "--progress"]);
        let depth;
        if checkout.clone.shallow {
            depth = format!("--depth={}", checkout.clone.depth.unwrap_or(1));
            fetch.push(&depth);
        }
        fetch.extend(["--", &remote.url, &remote.refspec]);
        git.show(&fetch)?;
    }
    let remotes: Vec<String> = checkout.remotes.iter().map(|r| r.name.clone()).collect();
    let (commit, branch) = choose_revision(&git, &checkout.branches, &remotes)?;
    let url = checkout
        .remotes
        .iter()
        .find(|r| branch.starts_with(&format!("{}/", r.name)))
        .unwrap_or(&checkout.remotes[0])
        .url
        .clone();
    println!("Checking out Revision {commit} ({branch})");
    if let Some(nested) = checkout.clean {
        println!("Cleaning workspace");
        git.run(&["clean", if nested { "-ffdx" } else { "-fdx" }])?;
    }
    let local_branch = checkout.local_branch.as_ref().map(|name| {
        if name == "**" {
            // The remote branch's own name, as the plugin's `**`.
            remotes
                .iter()
                .find_map(|r| branch.strip_prefix(&format!("{r}/")))
                .unwrap_or(&branch)
                .to_owned()
        } else {
            name.clone()
        }
    });
    match &local_branch {
        Some(name) => git.run(&["checkout", "-f", "-B", name, &commit])?,
        None => git.run(&["checkout", "-f", &commit])?,
    }
    let title = git.output(&["log", "-1", "--format=%s", &commit])?;
    println!("Commit message: \"{}\"", title.trim_end());
    let changes = changes::since(&git, checkout.previous_commit.as_deref(), &commit)?;
    Ok(CheckoutResult {
        commit,
        branch,
        url,
        local_branch,
        changes,
    })
}

/// The revision to build: for the first specifier that selects anything, the most recently
/// committed ref it selects (a tag's commit for a tag); the commit and its name as
/// `GIT_BRANCH` gives it (`origin/main`, `refs/tags/v1`).
fn choose_revision(
    git: &Git,
    branches: &[String],
    remotes: &[String],
) -> Result<(String, String), GitError> {
    let refs = git.output(&[
        "for-each-ref",
        "--sort=-committerdate",
        "--format=%(objectname) %(*objectname) %(refname)",
        "refs/remotes",
        "refs/tags",
    ])?;
    let refs: Vec<(&str, &str)> = refs
        .lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let object = words.next()?;
            let peeled = words.next()?;
            let name = words.next()?;
            Some((if peeled.is_empty() { object } else { peeled }, name))
        })
        .collect();
    for spec in branches {
        let Ok(spec) = BranchSpec::new(spec) else {
            continue;
        };
        if let Some(commit) = spec.commit() {
            return Ok((commit.to_owned(), commit.to_owned()));
        }
        if let Some((commit, name)) = refs.iter().find(|(_, name)| spec.matches(name, remotes)) {
            let shown = name.strip_prefix("refs/remotes/").unwrap_or(name);
            return Ok(((*commit).to_owned(), shown.to_owned()));
        }
    }
    Err(GitError::Failed(
        "Couldn't find any revision to build. Verify the repository and branch configuration \
         for this job."
            .into(),
    ))
}

/// Writes `scm.json` by a rename, so the controller never reads half of it.
fn write_result(step_dir: &Path, result: &CheckoutResult) -> std::io::Result<()> {
    let path = step_dir.join(CHECKOUT_RESULT_FILE);
    let temp = step_dir.join(format!("{CHECKOUT_RESULT_FILE}.tmp"));
    let json = serde_json::to_vec(result).map_err(std::io::Error::other)?;
    std::fs::write(&temp, json)?;
    std::fs::rename(&temp, &path)
}

/// The files a credential needs, in the step's private directory, removed at the end.
struct Secrets {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Secrets {
    fn new(dir: &Path) -> Secrets {
        Secrets {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        }
    }

    /// Sets git up to use the credential the environment carries.
    fn give(&mut self, git: &mut Git, kind: GitCredentialKind) -> Result<(), GitError> {
        let askpass = self.write(
            "git-askpass.sh",
            ASKPASS_SCRIPT.as_bytes(),
            0o700, // read by the step's user only; it holds no secret itself
        )?;
        git.env("GIT_TERMINAL_PROMPT", "0".into());
        match kind {
            GitCredentialKind::UsernamePassword => {
                for name in [GIT_ENV_USERNAME, GIT_ENV_PASSWORD] {
                    if std::env::var_os(name).is_none() {
                        return Err(GitError::Failed(format!(
                            "the credential is incomplete ({name} is not set)"
                        )));
                    }
                }
                git.env("GIT_ASKPASS", askpass.into_os_string());
            }
            GitCredentialKind::SshKey => {
                let Some(mut key) = std::env::var_os(GIT_ENV_SSH_KEY).map(OsString::into_vec)
                else {
                    return Err(GitError::Failed(format!(
                        "the credential's private key is missing ({GIT_ENV_SSH_KEY} is not set)"
                    )));
                };
                if !key.ends_with(b"\n") {
                    key.push(b'\n');
                }
                let key_file = self.write("git-ssh-key", &key, 0o600)?;
                let mut ssh = format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new",
                    shell_quote(&key_file.display().to_string())
                );
                if std::env::var_os(GIT_ENV_PASSPHRASE).is_some() {
                    git.env("SSH_ASKPASS", askpass.into_os_string());
                    git.env("SSH_ASKPASS_REQUIRE", "force".into());
                    git.env("DISPLAY", ":0".into());
                } else {
                    ssh.push_str(" -o BatchMode=yes");
                }
                git.env("GIT_SSH_COMMAND", ssh.into());
            }
        }
        Ok(())
    }

    fn write(&mut self, name: &str, content: &[u8], mode: u32) -> Result<PathBuf, GitError> {
        let path = self.dir.join(name);
        let _ = std::fs::remove_file(&path);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| f.write_all(content));
        self.files.push(path.clone());
        written.map_err(|e| GitError::Io(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    fn remove(&mut self) {
        for file in self.files.drain(..) {
            let _ = std::fs::remove_file(file);
        }
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

trait IntoVec {
    fn into_vec(self) -> Vec<u8>;
}

impl IntoVec for OsString {
    fn into_vec(self) -> Vec<u8> {
        std::os::unix::ffi::OsStringExt::into_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut secrets = Secrets::new(dir.path());
        let key = secrets.write("git-ssh-key", b"KEY\n", 0o600).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        secrets.remove();
        assert!(!key.exists());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
