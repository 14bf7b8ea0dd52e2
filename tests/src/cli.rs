//! Running the `cli` binary: to completion, or in the background for tests that interrupt
//! it or let it wait across a fault.

use std::io::Write;
use std::process::{Child, Command, Stdio};
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
    CliProcess::spawn_env(args, stdin, env).wait(DEADLINE * 3)
}

/// A `cli` process running in the background, its output captured as it arrives. Dropping
/// it kills the process.
pub struct CliProcess {
    child: Child,
    args: Vec<String>,
    pub pid: u32,
    pub stdout: Captured,
    pub stderr: Captured,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CliProcess {
    /// Starts `cli ARGS…` with `stdin` written to it (then closed), without the `JENKINS_*`
    /// variables of the environment and with `env` added.
    pub fn spawn_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> CliProcess {
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
        let threads = vec![
            writer,
            stdout.follow(child.stdout.take().unwrap()),
            stderr.follow(child.stderr.take().unwrap()),
        ];
        CliProcess {
            pid: child.id(),
            child,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdout,
            stderr,
            threads,
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("waiting for cli").is_some()
    }

    /// Sends a signal (`INT`, `KILL`…) with kill(1), as a terminal's Ctrl-C would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.pid);
    }

    /// Waits for the process to exit and for all its output; fails the test (killing the
    /// process) after `deadline`. A process ended by a signal has code -1.
    pub fn wait(mut self, deadline: Duration) -> CliOutput {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for cli") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                panic!(
                    "cli {:?} did not finish within {deadline:?}; stdout so far: {}; stderr so far: {}",
                    self.args,
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            std::thread::sleep(POLL);
        };
        // The readers end when the pipes close, which the exit of the cli does.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        CliOutput {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
