//! Attached terminal clients: `cli attach-terminal` with piped stdin and stdout, its output
//! collected byte by byte (a prompt has no newline), for tests that type and watch.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Controller, POLL, command};

/// A shell with a fixed prompt and no start-up files, so its output is the same on every
/// machine.
pub const SHELL: &str = "env PS1='$ ' bash --norc --noprofile -i";

/// One `cli attach-terminal` process.
pub struct TerminalClient {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut stream: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

impl TerminalClient {
    /// `cli attach-terminal NAME EXTRA…` as admin.
    pub fn attach(c: &Controller, name: &str, extra: &[&str]) -> TerminalClient {
        let auth = format!("admin:{}", c.token);
        let mut child = command("cli")
            .args(["-s", &c.url, "-auth", &auth, "attach-terminal", name])
            .args(extra)
            .env_remove("JENKINS_URL")
            .env_remove("JENKINS_USER_ID")
            .env_remove("JENKINS_API_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cli attach-terminal");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), out.clone());
        collect(child.stderr.take().unwrap(), err.clone());
        let stdin = child.stdin.take();
        TerminalClient {
            child,
            stdin,
            out,
            err,
        }
    }

    /// Types `text` (escapes included: `\x05c.` detaches).
    pub fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("typing into cli");
        stdin.flush().expect("typing into cli");
    }

    /// Everything shown so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// How many times `needle` was shown.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// Waits until `needle` has been shown `times` times in all.
    pub fn wait_for_count(&self, needle: &str, times: usize, deadline: Duration) {
        let start = Instant::now();
        while self.count(needle) < times {
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {times} × {needle:?} in:\n{}\nstderr: {}",
                self.text(),
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_for(&self, needle: &str, deadline: Duration) {
        self.wait_for_count(needle, 1, deadline);
    }

    /// The exit code, once the process has exited within `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for cli") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < deadline,
                "cli attach-terminal did not exit within {deadline:?}:\n{}",
                self.text()
            );
            std::thread::sleep(POLL);
        }
    }

    /// `^Ec.`: detaches; the exit code.
    pub fn detach(&mut self, deadline: Duration) -> i32 {
        self.type_text("\x05c.");
        self.wait_exit(deadline)
    }
}

impl Drop for TerminalClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
