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

/// `git http-backend` behind a minimal HTTP/1.1 server on a free loopback port that asks
/// for Basic credentials (`user`, `password`): smart HTTP, as a Git host serves it.
pub struct GitHttp {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// How many requests came with the right credentials.
    pub authorized: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GitHttp {
    pub fn start(base: &Path, user: &str, password: &str) -> GitHttp {
        use base64::Engine;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let authorized = std::sync::Arc::new(AtomicUsize::new(0));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let (base, for_thread, count) = (base.to_path_buf(), stop.clone(), authorized.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if for_thread.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (base, expected, count) = (base.clone(), expected.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = serve_git_http(conn, &base, &expected, &count);
                });
            }
        });
        GitHttp {
            port,
            stop,
            authorized,
        }
    }

    pub fn url(&self, repository: &str) -> String {
        format!("http://127.0.0.1:{}/{repository}", self.port)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One connection: requests until it closes, each run through `git http-backend` (CGI).
fn serve_git_http(
    conn: std::net::TcpStream,
    base: &Path,
    expected_auth: &str,
    authorized: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("GET").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        if header("authorization").as_deref() != Some(expected_auth) {
            write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        authorized.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut cgi = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("GIT_PROJECT_ROOT", base)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("REQUEST_METHOD", &method)
            .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_USER", "git")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = cgi.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let output = cgi.wait_with_output()?;
        let _ = writer.join();
        let text = output.stdout;
        let split = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, 4))
            .or_else(|| text.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
        let (head, content) = match split {
            Some((at, len)) => (
                String::from_utf8_lossy(&text[..at]).into_owned(),
                &text[at + len..],
            ),
            None => (String::new(), &text[..]),
        };
        let mut status = "200 OK".to_owned();
        let mut response_headers = String::new();
        for line in head.lines() {
            if let Some(s) = line.strip_prefix("Status:") {
                status = s.trim().to_owned();
            } else if !line.is_empty() {
                response_headers.push_str(line);
                response_headers.push_str("\r\n");
            }
        }
        write!(
            out,
            "HTTP/1.1 {status}\r\n{response_headers}Content-Length: {}\r\n\r\n",
            content.len()
        )?;
        out.write_all(content)?;
    }
}
