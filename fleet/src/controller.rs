//! The controller under test: the real `controller` binary in a child process, its address,
//! admin token, memory and CPU time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the controller may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct Controller {
    child: Child,
    pub pid: u32,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    pub token: String,
}

impl Controller {
    /// Starts `bin --home HOME --listen LISTEN ARGS…` and waits for "listening on".
    pub async fn start(
        bin: &Path,
        home: &Path,
        listen: &str,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Controller> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(bin)
            .arg("--home")
            .arg(home)
            .args(["--listen", listen])
            .args(args)
            .env("STEWARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the controller exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().context("controller stdout")?).lines();
        let mut addr = None;
        let mut url = None;
        let reading = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    addr = rest.split_whitespace().next().map(str::to_owned);
                }
                if let Some(rest) = line.split("Root URL: ").nth(1) {
                    url = Some(rest.trim().to_owned());
                }
                if addr.is_some() && url.is_some() {
                    return Ok::<(), std::io::Error>(());
                }
            }
            Ok(())
        };
        match tokio::time::timeout(START_DEADLINE, reading).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("reading the controller's output: {e}"),
            Err(_) => bail!("the controller did not print its address within {START_DEADLINE:?}"),
        }
        let (Some(addr), Some(url)) = (addr, url) else {
            bail!(
                "the controller exited before printing its address; see {}",
                log.display()
            );
        };
        // Keep draining stdout so the controller never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let token = std::fs::read_to_string(home.join("secrets/initialAdminToken"))
            .context("reading the admin token")?
            .trim()
            .to_owned();
        Ok(Controller {
            child,
            pid,
            addr,
            url,
            token,
        })
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Resident memory now, bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .context("no VmRSS")
    }

    /// User + system CPU seconds so far, all threads.
    pub fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the parenthesised command name; utime and stime are the 12th and
        // 13th of those (fields 14 and 15 of the line).
        let rest = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            bail!("malformed stat");
        };
        // SAFETY: sysconf only reads a configuration value.
        let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((user + system) / per_sec)
    }
}

/// The `controller` binary next to this one.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --bins`",
        path.display()
    );
    Ok(path)
}
