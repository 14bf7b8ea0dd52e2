//! The harness for the SSH server tests: the agent's SSH server behind a loopback TCP
//! listener (port chosen by the OS), one connection per accepted socket, as the controller
//! would forward them; a client key; and the real OpenSSH client (`ssh`, `sftp`, `scp`)
//! pointed at it, trusting only the agent's host key.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use steward_agent::services::Context;
use steward_agent::services::ssh;
use steward_protocol::ssh::{AllowedKey, SshRequest, SshTarget};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How long a condition may take before a test fails; generous for loaded machines.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A client key pair: the private key file OpenSSH reads, and its public line.
pub struct ClientKey {
    pub file: PathBuf,
    pub public: String,
    pub private: Arc<PrivateKey>,
}

impl ClientKey {
    pub fn new(dir: &Path, name: &str, seed: u8) -> ClientKey {
        let private = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        let file = dir.join(name);
        let text = private.to_openssh(LineEnding::LF).unwrap();
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut out, text.as_bytes()).unwrap();
        let public = private.public_key().to_openssh().unwrap();
        ClientKey {
            file,
            public,
            private: Arc::new(private),
        }
    }

    pub fn allowed(&self, user: &str) -> AllowedKey {
        AllowedKey {
            user: user.into(),
            public_key: self.public.clone(),
        }
    }
}

/// The agent's SSH server on a loopback port.
pub struct Server {
    pub context: Context,
    pub work: tempfile::TempDir,
    /// Keys, known_hosts and files of the client side.
    pub client_dir: tempfile::TempDir,
    pub key: ClientKey,
    pub port: u16,
    pub known_hosts: PathBuf,
    /// The connection id the next accepted connection gets.
    next_connection: Arc<AtomicU64>,
    stop: CancellationToken,
    accept: tokio::task::JoinHandle<()>,
}

impl Server {
    /// A server for the node target whose request allows the client key (as `alice`).
    pub async fn start() -> Server {
        Server::start_with(|request, key| request.allowed_keys.push(key.allowed("alice"))).await
    }

    /// A server whose request template `configure` adjusts.
    pub async fn start_with(configure: impl FnOnce(&mut SshRequest, &ClientKey)) -> Server {
        let work = tempfile::tempdir().unwrap();
        let client_dir = tempfile::tempdir().unwrap();
        let key = ClientKey::new(client_dir.path(), "id_ed25519", 7);
        let mut request = SshRequest {
            connection: 0,
            target: SshTarget::Node,
            allowed_keys: vec![],
            client_address: "127.0.0.1:1".into(),
            steward_user: "alice".into(),
        };
        configure(&mut request, &key);

        let context = Context::new(work.path().to_path_buf());
        let host_key = context.ssh().host_key(work.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let known_hosts = client_dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{port} {}\n",
                ssh::host_key::public_line(&host_key)
            ),
        )
        .unwrap();

        let next_connection = Arc::new(AtomicU64::new(1));
        let stop = CancellationToken::new();
        let accept = {
            let context = context.clone();
            let next = next_connection.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let mut request = request.clone();
                            request.connection = next.fetch_add(1, Ordering::SeqCst);
                            let context = context.clone();
                            let cancel = stop.child_token();
                            connections.spawn(async move {
                                let _ = ssh::run_connection(socket, request, context, cancel).await;
                            });
                        }
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
                connections.shutdown().await;
            })
        };
        Server {
            context,
            work,
            client_dir,
            key,
            port,
            known_hosts,
            next_connection,
            stop,
            accept,
        }
    }

    /// The id the next connection will get.
    pub fn next_connection(&self) -> u64 {
        self.next_connection.load(Ordering::SeqCst)
    }

    /// Options every OpenSSH tool gets: this server's host key only, this key only, no
    /// prompts, no user configuration. (`SSH_TEST_LOG=DEBUG3` shows the client's view.)
    fn common_options(&self, key: &Path) -> Vec<String> {
        let log = std::env::var("SSH_TEST_LOG").unwrap_or_else(|_| "ERROR".into());
        [
            "-F",
            "/dev/null",
            "-i",
            &key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o",
            &format!("LogLevel={log}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ssh -p PORT … USER@127.0.0.1 ARGS…`.
    pub fn ssh(&self, user: &str, args: &[&str]) -> Command {
        self.ssh_with_key(&self.key.file, user, args)
    }

    pub fn ssh_with_key(&self, key: &Path, user: &str, args: &[&str]) -> Command {
        self.ssh_with_options(&[], key, user, args)
    }

    /// `ssh` with `options` first: for OpenSSH the first value given wins.
    pub fn ssh_with_options(
        &self,
        options: &[&str],
        key: &Path,
        user: &str,
        args: &[&str],
    ) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(options)
            .args(self.common_options(key))
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .args(args)
            .kill_on_drop(true);
        command
    }

    /// `sftp -b BATCH …`.
    pub fn sftp(&self, batch: &Path) -> Command {
        let mut command = Command::new("sftp");
        command
            .args(self.common_options(&self.key.file))
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg(batch)
            .arg("x@127.0.0.1")
            .kill_on_drop(true);
        command
    }

    /// `scp -P PORT … FROM TO` (SFTP mode, OpenSSH 9's default).
    pub fn scp(&self, from: &str, to: &str) -> Command {
        let mut command = Command::new("scp");
        command
            .args(self.common_options(&self.key.file))
            .arg("-P")
            .arg(self.port.to_string())
            .arg(from)
            .arg(to)
            .kill_on_drop(true);
        command
    }

    /// `x@127.0.0.1:PATH`, for scp.
    pub fn remote(&self, path: &Path) -> String {
        format!("x@127.0.0.1:{}", path.display())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        self.accept.abort();
    }
}

/// Runs a command to its end, failing the test past [`DEADLINE`].
pub async fn output(command: &mut Command) -> Output {
    command.stdin(std::process::Stdio::null());
    tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("the command took too long")
        .expect("the command runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until `condition` holds, failing the test past [`DEADLINE`].
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process is running (a zombie is not).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
