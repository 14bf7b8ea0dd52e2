//! Real git repositories for checkout tests: a bare repository with a work clone to commit
//! from, and `git daemon` serving a directory on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{DEADLINE, POLL};

/// A bare repository (`origin.git`) and a clone of it that commits are made in.
pub struct Repo {
    dir: tempfile::TempDir,
}

/// Runs git in `dir` with a fixed identity; its standard output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_as(dir, args, "Ann Lee", "ann@example.com")
}

fn git_as(dir: &Path, args: &[&str], name: &str, email: &str) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", name)
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", name)
        .env("GIT_COMMITTER_EMAIL", email)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git (install git: scripts/test does)");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Repo {
    /// An empty bare repository whose default branch is `main`, and its work clone.
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        let repo = Repo { dir };
        git(
            &repo.work(),
            &["remote", "add", "origin", repo.bare().to_str().unwrap()],
        );
        repo
    }

    /// The bare repository's directory.
    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    /// The directory holding the bare repository (a `git daemon` base path).
    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes `path` in the work clone, commits it as `author` and pushes `main`; the new
    /// commit's id.
    pub fn commit(&self, path: &str, content: &str, message: &str, author: &str) -> String {
        let file = self.work().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
        let email = format!(
            "{}@example.com",
            author.split(' ').next().unwrap().to_lowercase()
        );
        git_as(&self.work(), &["add", path], author, &email);
        git_as(
            &self.work(),
            &["commit", "-q", "-m", message],
            author,
            &email,
        );
        git(&self.work(), &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }

    /// An annotated tag on the work clone's HEAD, pushed.
    pub fn tag(&self, name: &str) {
        git(&self.work(), &["tag", "-a", "-m", name, name]);
        git(&self.work(), &["push", "-q", "origin", name]);
    }
}

impl Default for Repo {
    fn default() -> Self {
        Repo::new()
    }
}

/// `git daemon` exporting every repository under a directory, on a free loopback port;
/// stopped when dropped.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < DEADLINE, "git daemon did not start");
            assert!(child.try_wait().unwrap().is_none(), "git daemon exited");
            std::thread::sleep(POLL);
        }
        GitDaemon { child, port }
    }

    pub fn url(&self, repository: &str) -> String {
        format!("git://127.0.0.1:{}/{repository}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A freestyle job checking out `url` at `branch` with `extensions` (the plugin's
/// extension elements), then running `script`.
pub fn git_job(url: &str, branch: &str, extensions: &str, script: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        r#"<project>
  <scm class="hudson.plugins.git.GitSCM" plugin="git@5.2.1">
    <configVersion>2</configVersion>
    <userRemoteConfigs><hudson.plugins.git.UserRemoteConfig><url>{}</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>
    <branches><hudson.plugins.git.BranchSpec><name>{}</name></hudson.plugins.git.BranchSpec></branches>
    <doGenerateSubmoduleConfigurations>false</doGenerateSubmoduleConfigurations>
    <submoduleCfg class="empty-list"/>
    <extensions>{extensions}</extensions>
  </scm>
  <builders><hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell></builders>
</project>"#,
        escape(url),
        escape(branch),
        escape(script)
    )
}
