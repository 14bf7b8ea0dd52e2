//! OpenSSH's client against the controller's SSH routes: a key pair of the test's own,
//! a `known_hosts` with the node's pinned host key, and `ssh`/`sftp`/`scp` command lines
//! whose ProxyCommand is websocat or our `cli ssh-proxy`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Agent, Controller};

/// What carries the SSH bytes to the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// `websocat -b -H='Authorization: Basic …' - ws://HOST/PATH`.
    Websocat,
    /// `cli -s URL -auth @FILE ssh-proxy TARGET`.
    Cli,
}

/// A user's SSH client: an ed25519 key pair and a known_hosts file in a temporary
/// directory.
pub struct SshUser {
    dir: tempfile::TempDir,
}

impl Default for SshUser {
    fn default() -> Self {
        SshUser::new()
    }
}

impl SshUser {
    /// Generates a key pair with `ssh-keygen`.
    pub fn new() -> SshUser {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "tester@steward",
                "-f",
            ])
            .arg(dir.path().join("id"))
            .status()
            .expect("ssh-keygen (install openssh-client: scripts/test does)");
        assert!(status.success(), "ssh-keygen failed");
        std::fs::write(dir.path().join("known_hosts"), "").unwrap();
        SshUser { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("id")
    }

    /// The public key line (`ssh-ed25519 AAAA… tester@steward`).
    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("id.pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Adds the key to the admin's keys with `add-ssh-key`.
    pub fn register(&self, c: &Controller) {
        let out = c.cli_with_stdin(&["add-ssh-key"], &self.public_key());
        assert_eq!(out.code, 0, "add-ssh-key: {out:?}");
    }

    /// Pins `node`'s host key (from `ssh-host-keys`) under the alias `steward-NODE`.
    pub fn trust(&self, c: &Controller, node: &str) {
        let mut key = String::new();
        crate::wait_until(crate::DEADLINE, &format!("{node}'s host key"), || {
            let out = c.cli(&["ssh-host-keys", node]);
            assert_eq!(out.code, 0, "ssh-host-keys: {out:?}");
            key = out.stdout.split('\t').nth(2).unwrap_or("-").to_owned();
            key != "-"
        });
        std::fs::write(self.known_hosts(), format!("steward-{node} {key}\n")).unwrap();
    }

    /// `PROGRAM` (ssh, sftp or scp) with the options that make it use this user's key,
    /// trust only the pinned host key, never prompt, and reach `path` (`/computer/NODE/ssh`
    /// or `/job/JOB/N/ssh`) through `proxy`. `node` names the host key's alias.
    pub fn command(
        &self,
        program: &str,
        c: &Controller,
        proxy: Proxy,
        path: &str,
        node: &str,
    ) -> Command {
        let mut command = Command::new(program);
        command
            .arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.key())
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .arg("-o")
            .arg(format!("HostKeyAlias=steward-{node}"))
            .args(["-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!(
                "ProxyCommand={}",
                self.proxy_command(c, proxy, path)
            ));
        command
    }

    fn proxy_command(&self, c: &Controller, proxy: Proxy, path: &str) -> String {
        match proxy {
            Proxy::Websocat => {
                let header = c.admin_basic_auth_header();
                format!(
                    "websocat -b -H='{header}' - {}",
                    c.ws_url(path.trim_start_matches('/'))
                )
            }
            Proxy::Cli => {
                // Written once, whole (a rename), so ProxyCommands already running never
                // read it half-written.
                let auth = self.dir.path().join("auth");
                if !auth.exists() {
                    let temp = self.dir.path().join(".auth.new");
                    std::fs::write(&temp, format!("admin:{}", c.token)).unwrap();
                    std::fs::rename(&temp, &auth).unwrap();
                }
                let target = target_of(path);
                format!(
                    "{} -s {} -auth @{} ssh-proxy '{target}'",
                    crate::bin("cli").display(),
                    c.url,
                    auth.display()
                )
            }
        }
    }

    /// Runs `sftp -b BATCH … USER@steward` and returns its output.
    pub fn sftp_batch(
        &self,
        c: &Controller,
        proxy: Proxy,
        path: &str,
        node: &str,
        batch: &Path,
    ) -> Output {
        self.command("sftp", c, proxy, path, node)
            .arg("-b")
            .arg(batch)
            .arg("tester@steward")
            .output()
            .expect("sftp")
    }

    /// Runs `ssh … USER@steward CMD` and returns its output.
    pub fn exec(
        &self,
        c: &Controller,
        proxy: Proxy,
        path: &str,
        node: &str,
        remote: &str,
    ) -> Output {
        self.command("ssh", c, proxy, path, node)
            .arg("tester@steward")
            .arg(remote)
            .output()
            .expect("ssh")
    }
}

/// `NODE` or `JOB#N` for a route path.
fn target_of(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["computer", node, "ssh"] => (*node).to_owned(),
        ["job", job, number, "ssh"] => format!("{job}#{number}"),
        _ => panic!("not an SSH route: {path}"),
    }
}

/// A controller with node `node` (`executors` of them) and its agent in a work dir of its
/// own, and a user whose key is registered and who trusts the node's host key.
pub fn node_and_user(
    node: &str,
    executors: u32,
) -> (Controller, Agent, tempfile::TempDir, SshUser) {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(node, "", executors, "NORMAL");
    let agent = c.start_agent_in(node, work.path());
    let user = SshUser::new();
    user.register(&c);
    user.trust(&c, node);
    (c, agent, work, user)
}

/// The text of an output's stdout and stderr, for messages.
pub fn shown(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
