//! Running the `cli` binary: to completion, or left running while the test reads its output.

use std::io::Write;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Captured, DEADLINE, POLL, command};

/// A finished `cli` run.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the cli binary to completion with a deadline.
pub fn run_cli(args: &[&str], stdin: &str) -> CliOutput {
    run_cli_env(args, stdin, &[])
}

pub fn run_cli_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> CliOutput {
    let mut child = command("cli")
        .args(args)
        .env_remove("JENKINS_URL")
        .env_remove("JENKINS_USER_ID")
        .env_remove("JENKINS_API_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cli");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let stdout = Captured::default();
    let stderr = Captured::default();
    let readers = [
        stdout.follow(child.stdout.take().unwrap()),
        stderr.follow(child.stderr.take().unwrap()),
    ];
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cli") {
            break status;
        }
        if start.elapsed() > DEADLINE * 3 {
            let _ = child.kill();
            panic!(
                "cli {args:?} did not finish within {:?}; stderr so far: {}",
                DEADLINE * 3,
                stderr.text()
            );
        }
        std::thread::sleep(POLL);
    };
    let _ = writer.join();
    // The readers end when the pipes close, which the exit of the cli does.
    for reader in readers {
        let _ = reader.join();
    }
    CliOutput {
        code: status.code().unwrap_or(-1),
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

/// A `cli` process left running, whose output the test reads as it arrives (`build -v`,
/// `console -f`). Killed when dropped.
pub struct CliChild {
    child: Option<Child>,
    pub stdout: Captured,
    pub stderr: Captured,
    readers: Vec<JoinHandle<()>>,
    args: Vec<String>,
}

impl CliChild {
    /// Starts the cli binary with `args` and an empty stdin.
    pub fn spawn(args: &[&str]) -> CliChild {
        let mut child = command("cli")
            .args(args)
            .env_remove("JENKINS_URL")
            .env_remove("JENKINS_USER_ID")
            .env_remove("JENKINS_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting cli");
        let stdout = Captured::default();
        let stderr = Captured::default();
        let readers = vec![
            stdout.follow(child.stdout.take().unwrap()),
            stderr.follow(child.stderr.take().unwrap()),
        ];
        CliChild {
            child: Some(child),
            stdout,
            stderr,
            readers,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().expect("waiting for cli").is_some())
    }

    /// Waits for the process to exit, failing the test after `deadline`; its output.
    pub fn wait(mut self, deadline: Duration) -> CliOutput {
        let mut child = self.child.take().expect("not waited for yet");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for cli") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "cli {:?} did not finish within {deadline:?}; stdout so far:\n{}\nstderr so far:\n{}",
                    self.args,
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            std::thread::sleep(POLL);
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        CliOutput {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }
}

impl Drop for CliChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
