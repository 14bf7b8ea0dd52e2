//! A running `agent` process with its output captured.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Captured, command, wait_until};

/// A running agent.
pub struct Agent {
    child: Option<Child>,
    pub output: Captured,
    pub pid: u32,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Agent {
    pub fn spawn(args: &[&str]) -> Agent {
        Agent::spawn_env(args, &[])
    }

    /// Starts an agent with extra environment variables (proxies are cleared first).
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut child = command("agent")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting agent");
        let output = Captured::default();
        let readers = vec![
            output.follow(child.stdout.take().unwrap()),
            output.follow(child.stderr.take().unwrap()),
        ];
        let pid = child.id();
        Agent {
            child: Some(child),
            output,
            pid,
            readers,
        }
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`…) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.pid);
    }

    /// Waits for the agent to exit and for all its output to be captured; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let mut code = None;
        wait_until(deadline, "agent exits", || {
            code = self.try_exit_code();
            code.is_some()
        });
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        code.unwrap_or(-1)
    }

    /// Exit code, once exited.
    pub fn try_exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()?
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGKILL ends stopped processes too on Linux.
        self.kill();
    }
}
