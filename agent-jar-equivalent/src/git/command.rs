//! Running `git` as the Git plugin does: each command echoed as ` > git ARGS # timeout=N`,
//! its output going to the step's log, and killed when it outlives the timeout.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::MIN_GIT_VERSION;

/// Why the checkout failed; printed after `ERROR: `.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Io(String),
}

/// Largest output read from one git command whose output is used (a ref list, a log).
const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// The `git` of the node, run in the checkout's directory.
pub struct Git {
    dir: PathBuf,
    timeout_minutes: u32,
    env: Vec<(&'static str, OsString)>,
}

impl Git {
    pub fn new(dir: &Path, timeout_minutes: u32) -> Git {
        Git {
            dir: dir.to_path_buf(),
            timeout_minutes,
            env: Vec::new(),
        }
    }

    pub fn env(&mut self, name: &'static str, value: OsString) {
        self.env.push((name, value));
    }

    /// `git --version`, checked against [`MIN_GIT_VERSION`]; a missing git is named.
    pub fn check_version(&self) -> Result<(), GitError> {
        let output = Command::new("git").arg("--version").output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                GitError::Failed(format!(
                    "git is not installed on this node (no `git` on PATH): a Git checkout needs \
                     git {}.{} or later",
                    MIN_GIT_VERSION.0, MIN_GIT_VERSION.1
                ))
            } else {
                GitError::Failed(format!("cannot run git: {e}"))
            }
        })?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        println!(" > git --version # timeout={}", self.timeout_minutes);
        println!(" > git --version # '{text}'");
        match parse_version(&text) {
            Some(found) if found >= MIN_GIT_VERSION => Ok(()),
            Some((major, minor)) => Err(GitError::Failed(format!(
                "git {major}.{minor} on this node is too old: a Git checkout needs git {}.{} or \
                 later",
                MIN_GIT_VERSION.0, MIN_GIT_VERSION.1
            ))),
            None => Err(GitError::Failed(format!(
                "cannot tell the version of git on this node from {text:?}"
            ))),
        }
    }

    /// Runs `git ARGS` with its output and progress in the log (a fetch).
    pub fn show(&self, args: &[&str]) -> Result<(), GitError> {
        self.execute(args, Mode::Show).map(|_| ())
    }

    /// Runs `git ARGS` quietly, as the plugin does: what it printed is shown only in the
    /// error when it fails.
    pub fn run(&self, args: &[&str]) -> Result<(), GitError> {
        self.execute(args, Mode::Capture).map(|_| ())
    }

    /// Runs `git ARGS` and returns its standard output.
    pub fn output(&self, args: &[&str]) -> Result<String, GitError> {
        self.execute(args, Mode::Capture)
    }

    fn execute(&self, args: &[&str], mode: Mode) -> Result<String, GitError> {
        println!(
            " > git {} # timeout={}",
            args.join(" "),
            self.timeout_minutes
        );
        let capture = mode == Mode::Capture;
        let piped = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            }
        };
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(piped())
            .stderr(piped());
        let child = command
            .spawn()
            .map_err(|e| GitError::Failed(format!("cannot run git: {e}")))?;
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(read_limited(child));
        });
        let timeout = Duration::from_secs(u64::from(self.timeout_minutes) * 60);
        let result = match finished.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => {
                // SAFETY: kill(2) with a pid this process spawned and has not reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                let _ = finished.recv();
                return Err(GitError::Failed(format!(
                    "Command \"git {}\" timed out after {} minutes",
                    args.join(" "),
                    self.timeout_minutes
                )));
            }
        };
        let (status, stdout, stderr) =
            result.map_err(|e| GitError::Failed(format!("git {}: {e}", args.join(" "))))?;
        if !status.success() {
            let mut message = format!(
                "Command \"git {}\" returned status code {}",
                args.join(" "),
                status.code().unwrap_or(-1)
            );
            if capture {
                message.push_str(&format!(
                    ":\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&stdout).trim_end(),
                    String::from_utf8_lossy(&stderr).trim_end()
                ));
            }
            return Err(GitError::Failed(message));
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    }
}

/// Where a git command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// To the step's log.
    Show,
    /// Read: the standard output returned, both shown only on failure.
    Capture,
}

/// Most bytes of a captured command's standard error kept for its error message.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// Waits for the child, keeping at most [`MAX_OUTPUT_BYTES`] of its standard output and
/// [`MAX_ERROR_BYTES`] of its standard error (the rest is read and dropped, so the child
/// never blocks on a full pipe).
fn read_limited(
    mut child: std::process::Child,
) -> std::io::Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    fn drain(mut from: impl Read, limit: u64) -> Vec<u8> {
        let mut kept = Vec::new();
        let _ = (&mut from).take(limit).read_to_end(&mut kept);
        let _ = std::io::copy(&mut from, &mut std::io::sink());
        kept
    }
    let errors = child
        .stderr
        .take()
        .map(|stderr| std::thread::spawn(move || drain(stderr, MAX_ERROR_BYTES)));
    let out = child
        .stdout
        .take()
        .map(|stdout| drain(stdout, MAX_OUTPUT_BYTES as u64))
        .unwrap_or_default();
    let err = errors
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default();
    Ok((child.wait()?, out, err))
}

/// `(major, minor)` of `git version 2.47.3` (and of vendor forms like `2.39.3 (Apple Git-145)`).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("git version ")?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read() {
        assert_eq!(parse_version("git version 2.47.3"), Some((2, 47)));
        assert_eq!(
            parse_version("git version 2.39.3 (Apple Git-145)"),
            Some((2, 39))
        );
        assert_eq!(parse_version("hg 6"), None);
    }
}
