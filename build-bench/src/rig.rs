//! The system under test: the real `controller` binary on 127.0.0.1:0 in a temporary home,
//! N inbound nodes, and one real `agent` process per node with its work directory in the
//! same temporary directory; an in-process client (the `cli` library) for the admin.
//!
//! Children run in their own process groups and are killed when dropped, so an error, the
//! timeout or Ctrl-C leaves nothing behind but steps already started on the agents (which
//! run in their own sessions by design and end by themselves: every step here is bounded).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use steward_protocol::secret::SecretKey;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::Client;

/// How long the controller may take to print its address; it is local, so this only
/// catches breakage.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long all agents may take to be online.
const ONLINE_DEADLINE: Duration = Duration::from_secs(60);
/// Time a child gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Proxy settings would send loopback traffic elsewhere; children never see them.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];
/// The label every benchmark node carries.
pub const POOL_LABEL: &str = "pool";

/// What to start.
pub struct Layout {
    pub agents: usize,
    pub executors: u32,
    /// Keep the temporary directory (printed) instead of removing it.
    pub keep: bool,
    /// More arguments for the controller (e.g. `--github-webhook-secret-file FILE`).
    pub controller_args: Vec<OsString>,
}

/// A child process in its own group, killed on drop.
pub struct Proc {
    child: Child,
    pub pid: u32,
}

impl Proc {
    /// SIGTERM, then SIGKILL after [`STOP_GRACE`].
    async fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child we still own (not yet reaped).
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub struct Agent {
    pub node: String,
    pub proc: Proc,
}

pub struct Rig {
    pub client: Client,
    pub controller: Proc,
    pub agents: Vec<Agent>,
    pub url: String,
    pub token: String,
    pub home: PathBuf,
    /// A scratch directory on the same file system as the home and the work dirs.
    pub scratch: PathBuf,
    pub cli_bin: PathBuf,
    temp: Option<TempDir>,
}

impl Rig {
    pub async fn start(layout: &Layout) -> anyhow::Result<Rig> {
        let temp = tempfile::Builder::new()
            .prefix("steward-build-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let home = temp.path().join("home");
        let scratch = temp.path().join("scratch");
        std::fs::create_dir_all(&scratch)?;
        let controller_bin = sibling("controller")?;
        let agent_bin = sibling("agent")?;
        let cli_bin = sibling("cli")?;

        let (controller, url) =
            start_controller(&controller_bin, &home, temp.path(), &layout.controller_args).await?;
        let token = std::fs::read_to_string(home.join("secrets/initialAdminToken"))
            .context("reading the admin token")?
            .trim()
            .to_owned();
        let client = Client::new(&url, "admin", &token)?;
        let key = std::fs::read(home.join("secrets/node-secret-hmac.key"))
            .context("reading the node secret key")?;
        let key = SecretKey::from_slice(&key).context("the node secret key is not 32 bytes")?;

        let mut agents = Vec::new();
        for i in 1..=layout.agents {
            let node = node_name(i);
            let xml = format!(
                "<slave><name>{node}</name><remoteFS></remoteFS>\
                 <numExecutors>{}</numExecutors><mode>NORMAL</mode>\
                 <launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket></launcher>\
                 <label>{POOL_LABEL}</label></slave>",
                layout.executors
            );
            client.ok(&["create-node", &node], xml.as_bytes()).await?;
            let work = temp.path().join(format!("work-{node}"));
            std::fs::create_dir_all(&work)?;
            let log = temp.path().join(format!("agent-{node}.log"));
            let proc = start_agent(
                &agent_bin,
                &url,
                &node,
                key.node_secret(&node).expose(),
                &work,
                &log,
            )?;
            agents.push(Agent { node, proc });
        }
        let waiting = async {
            for agent in &agents {
                client.ok(&["wait-node-online", &agent.node], b"").await?;
            }
            Ok::<(), anyhow::Error>(())
        };
        match tokio::time::timeout(ONLINE_DEADLINE, waiting).await {
            Ok(result) => result?,
            Err(_) => bail!(
                "the agents were not all online within {ONLINE_DEADLINE:?}; logs in {}",
                temp.path().display()
            ),
        }
        let temp = if layout.keep {
            println!("keeping the temporary directory {}", temp.keep().display());
            None
        } else {
            Some(temp)
        };
        Ok(Rig {
            client,
            controller,
            agents,
            url,
            token,
            home,
            scratch,
            cli_bin,
            temp,
        })
    }

    /// The stored console of build `number` of `job`.
    pub fn console_path(&self, job: &str, number: u64) -> PathBuf {
        self.home
            .join("jobs")
            .join(job)
            .join("builds")
            .join(number.to_string())
            .join("log")
    }

    /// The agent process serving `node`.
    pub fn agent(&self, node: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.node == node)
    }

    /// `cli -s URL -auth admin:TOKEN ARGS…`, the binary, ready to spawn.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.cli_bin);
        command
            .args(["-s", &self.url, "-auth", &format!("admin:{}", self.token)])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        command
    }

    /// Stops the agents and the controller, and removes the temporary directory.
    pub async fn stop(self) {
        for agent in self.agents {
            agent.proc.stop().await;
        }
        self.controller.stop().await;
        drop(self.temp);
    }
}

/// `build-01`, `build-02`, …
pub fn node_name(i: usize) -> String {
    format!("build-{i:02}")
}

async fn start_controller(
    bin: &Path,
    home: &Path,
    dir: &Path,
    extra_args: &[OsString],
) -> anyhow::Result<(Proc, String)> {
    let log_path = dir.join("controller.log");
    let log = std::fs::File::create(&log_path).context("creating the controller log")?;
    let mut command = Command::new(bin);
    command
        .arg("--home")
        .arg(home)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .env(
            "STEWARD_LOG",
            std::env::var("STEWARD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the controller exited at once")?;
    let mut lines = BufReader::new(child.stdout.take().context("controller stdout")?).lines();
    let reading = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("Root URL: ").nth(1) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    };
    let url = match tokio::time::timeout(START_DEADLINE, reading).await {
        Ok(Ok(Some(url))) => url,
        Ok(Ok(None)) => bail!(
            "the controller exited before printing its address; see {}",
            log_path.display()
        ),
        Ok(Err(e)) => bail!("reading the controller's output: {e}"),
        Err(_) => bail!("the controller did not print its address within {START_DEADLINE:?}"),
    };
    // Keep draining stdout so the controller never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((Proc { child, pid }, url))
}

fn start_agent(
    bin: &Path,
    url: &str,
    node: &str,
    secret: &str,
    work: &Path,
    log: &Path,
) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log).context("creating an agent log")?;
    let mut command = Command::new(bin);
    command
        .args(["-webSocket", "-url", url, "-name", node, "-secret", secret])
        .arg("-workDir")
        .arg(work)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the agent exited at once")?;
    Ok(Proc { child, pid })
}

/// A binary next to this one (`target/release/agent` beside `target/release/build-bench`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --bins`",
        path.display()
    );
    Ok(path)
}
