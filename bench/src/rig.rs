//! The system under test: the controller library running in this process in a temporary
//! home on 127.0.0.1:0, one inbound node, and the real `agent` binary connected to it
//! over loopback WebSocket with its work directory in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use steward_channel::{Channel, call};
use steward_controller::config::Config;
use steward_controller::state::AppState;
use steward_controller::{Started, nodes};
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::services::{AgentInfo, Request, Response};
use tempfile::TempDir;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

/// The benchmark's node.
pub const NODE: &str = "bench";
/// How long the agent may take to connect; it is local, so this only catches breakage.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// How long the agent and the controller get to stop cleanly before being killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Proxy settings would send loopback traffic elsewhere; children never see them.
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

pub struct Rig {
    pub channel: Channel,
    pub agent_pid: u32,
    pub info: AgentInfo,
    agent: Child,
    agent_log: PathBuf,
    started: Option<Started>,
    shutdown: CancellationToken,
    work: TempDir,
    _home: TempDir,
}

impl Rig {
    pub async fn start(agent_bin: &Path, work_parent: Option<&Path>) -> anyhow::Result<Rig> {
        let home = tempfile::Builder::new()
            .prefix("steward-bench-home-")
            .tempdir()
            .context("creating the controller home")?;
        let work = match work_parent {
            Some(parent) => tempfile::Builder::new()
                .prefix("steward-bench-work-")
                .tempdir_in(parent),
            None => tempfile::Builder::new()
                .prefix("steward-bench-work-")
                .tempdir(),
        }
        .context("creating the agent work directory")?;

        let shutdown = CancellationToken::new();
        // Until the rig is built, an error stops the controller on the way out.
        let guard = shutdown.clone().drop_guard();
        let config = Config::new(
            home.path().join("controller"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        let started = steward_controller::start(config, shutdown.clone())
            .await
            .context("starting the controller")?;
        let state = started.state().clone();
        let by = steward_controller::audit::Actor::system();
        nodes::create(&state, NodeConfig::inbound(NODE), &by)
            .await
            .context("creating the node")?;
        let secret = state.secret_key.node_secret(NODE);

        let agent_log = home.path().join("agent.log");
        let log = std::fs::File::create(&agent_log).context("creating the agent log")?;
        let mut command = tokio::process::Command::new(agent_bin);
        command
            .arg("-webSocket")
            .arg("-url")
            .arg(started.root_url.as_str())
            .args(["-name", NODE])
            .arg("-secret")
            .arg(secret.expose())
            .arg("-workDir")
            .arg(work.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        let mut agent = command
            .spawn()
            .with_context(|| format!("starting {}", agent_bin.display()))?;
        let agent_pid = agent.id().context("the agent has no pid")?;
        let channel = wait_for_channel(&state, &mut agent, &agent_log).await?;
        let info = match call::call(&channel, &Request::Info).await? {
            Response::Info(info) => info,
            other => bail!("Info answered {other:?}"),
        };
        guard.disarm();
        Ok(Rig {
            channel,
            agent_pid,
            info,
            agent,
            agent_log,
            started: Some(started),
            shutdown,
            work,
            _home: home,
        })
    }

    /// Experiment: sets TCP_NODELAY on this process's sockets on the controller's port (the
    /// listener and the agent's accepted connection), which the controller itself does not
    /// do. Returns how many sockets were changed.
    pub fn set_controller_nodelay(&self) -> usize {
        let Some(port) = self.started.as_ref().map(|s| s.local_addr.port()) else {
            return 0;
        };
        let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
            return 0;
        };
        let mut changed = 0;
        for fd in fds
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            // SAFETY: getsockname/setsockopt on a descriptor number with properly sized
            // buffers; on a descriptor that is not an inet socket they fail harmlessly.
            unsafe {
                let mut addr: libc::sockaddr_in = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                if libc::getsockname(fd, (&raw mut addr).cast(), &mut len) != 0
                    || i32::from(addr.sin_family) != libc::AF_INET
                    || u16::from_be(addr.sin_port) != port
                {
                    continue;
                }
                let one: libc::c_int = 1;
                if libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&raw const one).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ) == 0
                {
                    changed += 1;
                }
            }
        }
        changed
    }

    /// An absolute path in the agent's work directory.
    pub fn path(&self, name: &str) -> String {
        self.work.path().join(name).to_string_lossy().into_owned()
    }

    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// The end of the agent's log, for error messages.
    pub fn agent_log_tail(&self) -> String {
        tail(&self.agent_log)
    }

    /// Stops the agent (SIGTERM, then SIGKILL) and the controller.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on the pid of a child this rig still owns (not yet reaped).
        unsafe {
            libc::kill(self.agent_pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.agent.wait())
            .await
            .is_err()
        {
            let _ = self.agent.kill().await;
        }
        self.shutdown.cancel();
        if let Some(started) = self.started.take() {
            tokio::time::timeout(STOP_GRACE, started.wait())
                .await
                .context("the controller did not stop")??;
        }
        Ok(())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // An early exit (error, timeout, Ctrl-C): the agent is killed on drop; stop the
        // controller's tasks too.
        self.shutdown.cancel();
    }
}

async fn wait_for_channel(
    state: &AppState,
    agent: &mut Child,
    log: &Path,
) -> anyhow::Result<Channel> {
    let mut changes = state.agents.subscribe();
    let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    loop {
        if let Some(channel) = state.agents.channel(NODE) {
            return Ok(channel);
        }
        tokio::select! {
            changed = changes.changed() => changed.context("the registry is gone")?,
            status = agent.wait() => bail!("the agent exited ({}) before connecting:\n{}", status?, tail(log)),
            () = tokio::time::sleep_until(deadline) => {
                bail!("the agent did not connect within {CONNECT_DEADLINE:?}:\n{}", tail(log))
            }
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Writes `size` bytes of a fixed pattern and syncs them, so the timed runs neither wait
/// for nor compete with writeback of this file.
pub async fn create_file(path: PathBuf, size: u64) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let block: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])
                .with_context(|| format!("writing {}", path.display()))?;
            left -= n as u64;
        }
        file.sync_all()
            .with_context(|| format!("syncing {}", path.display()))
    })
    .await?
}
