//! Running the `cli` binary to completion.

use std::io::Write;
use std::process::Stdio;
use std::time::Instant;

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
