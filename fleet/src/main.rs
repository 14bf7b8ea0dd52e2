//! `fleet-bench`: one controller process and thousands of simulated agents from this one
//! process, each with the real handshake and channel (see `agents.rs`), measured:
//!
//! 1. the time until all are online, the controller's memory per connected agent, its CPU
//!    while all are idle, and how fast `cli list-nodes` answers;
//! 2. optionally (`--busy N`), small calls (`cli node-info`) to random agents meanwhile;
//! 3. optionally (`--restart`), kill -9 of the controller and a start on the same address:
//!    the time until all are online again, "already connected" refusals and attempts per
//!    second.
//!
//! The figures and how to read them are in docs/benchmarks.md.

mod agents;
mod controller;
mod prepare;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use steward_agent::connect::{Endpoint, Transport};
use url::Url;

use crate::controller::Controller;

/// How often the online count is read from the controller's REST API.
const POLL: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(
    name = "fleet-bench",
    version,
    about = "Thousands of simulated agents against one controller"
)]
struct Options {
    /// Simulated agents (nodes are created for them).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// The controller's ping interval, seconds (`--ws-ping-interval`).
    #[arg(long, default_value_t = 30)]
    ping_interval: u64,
    /// Seconds over which the controller's CPU is measured while all agents are idle.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Concurrent `cli node-info` loops against random agents after the idle window (0: none).
    #[arg(long, default_value_t = 0)]
    busy: usize,
    /// How long the `--busy` loops run, seconds.
    #[arg(long, default_value_t = 20)]
    busy_secs: u64,
    /// Kill -9 the controller once all are online and idle, start it again on the same
    /// address, and measure the reconnection.
    #[arg(long)]
    restart: bool,
    /// Give up waiting for the fleet to be online after this many seconds.
    #[arg(long, default_value_t = 300)]
    online_deadline: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    steward_channel::allocator::keep_freed_memory();
    let options = Options::parse();
    anyhow::ensure!(options.agents >= 1, "--agents must be at least 1");
    // Run from a worker thread, as the agent and the controller do.
    tokio::spawn(run(options))
        .await
        .context("the benchmark task failed")?
}

async fn run(options: Options) -> anyhow::Result<()> {
    let files = raise_open_files(options.agents)?;
    let n = options.agents;
    println!(
        "fleet-bench {} at {}; {} CPUs; load average {}; open files limit {files}",
        env!("CARGO_PKG_VERSION"),
        utc_now(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let home = temp.path().join("home");
    let work = temp.path().join("work");
    std::fs::create_dir_all(&work)?;
    let log = temp.path().join("controller.log");

    let began = Instant::now();
    let key = prepare::home_with_nodes(&home, n).await?;
    println!(
        "{n} nodes created in the home in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    let controller_bin = controller::sibling("controller")?;
    let cli_bin = controller::sibling("cli")?;
    let args = vec![
        "--ws-ping-interval".to_owned(),
        options.ping_interval.to_string(),
    ];
    let controller = Controller::start(&controller_bin, &home, "127.0.0.1:0", &args, &log).await?;
    let api = Api::new(&controller)?;
    // Nothing connected yet: the baseline for memory per agent.
    wait_quiet().await;
    let rss_before = controller.rss()?;
    println!(
        "controller pid {} at {}, RSS {:.1} MiB with no agent connected (ping interval {} s)",
        controller.pid,
        controller.url,
        mib(rss_before),
        options.ping_interval
    );

    let root = Url::parse(&controller.url)?;
    let endpoints = (0..n)
        .map(|i| {
            let name = prepare::node_name(i);
            Endpoint {
                root: root.clone(),
                secret: key.node_secret(&name),
                node_name: name,
                extra_headers: Vec::new(),
            }
        })
        .collect();
    let tls = steward_transport::tls_config(&Default::default())?;
    let transport = Transport {
        http: steward_transport::http_client(&tls)?,
        tls,
        proxy_credentials: None,
    };

    // ---- All online.
    let fleet = agents::Fleet::start(endpoints, transport, &work);
    let took = api
        .wait_all_online(n, Duration::from_secs(options.online_deadline))
        .await?;
    let rss_online = controller.rss()?;
    println!(
        "all {n} online after {took:.2} s; controller RSS {:.1} MiB (+{:.1} KiB per agent)",
        mib(rss_online),
        per_agent_kib(rss_online, rss_before, n)
    );

    // ---- Idle.
    let cpu_start = controller.cpu_secs()?;
    let idle_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.idle_secs)).await;
    let idle_cpu = (controller.cpu_secs()? - cpu_start) / idle_began.elapsed().as_secs_f64();
    let rss_idle = controller.rss()?;
    println!(
        "idle for {} s: controller CPU {:.2}% of one core; RSS {:.1} MiB (+{:.1} KiB per agent)",
        options.idle_secs,
        idle_cpu * 100.0,
        mib(rss_idle),
        per_agent_kib(rss_idle, rss_before, n)
    );
    let online_now = api.online_count().await?;
    println!("still online after the idle window: {online_now} of {n}");

    // ---- list-nodes.
    let mut list_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = cli(&cli_bin, &controller, &["list-nodes"]).await?;
        list_times.push(started.elapsed().as_secs_f64() * 1000.0);
        let rows = out.lines().filter(|l| l.starts_with("fleet-")).count();
        anyhow::ensure!(rows == n, "list-nodes listed {rows} of {n} nodes");
    }
    list_times.sort_by(f64::total_cmp);
    println!(
        "cli list-nodes ({n} rows), 5 runs, whole command incl. process start: median {:.1} ms, max {:.1} ms",
        list_times[2], list_times[4]
    );

    // ---- Small calls.
    if options.busy > 0 {
        busy(&cli_bin, &controller, n, options.busy, options.busy_secs).await?;
    }

    // ---- Restart.
    let (controller, api) = if options.restart {
        let addr = controller.addr.clone();
        let stats = fleet.stats.clone();
        let already_before = stats
            .already_connected
            .load(std::sync::atomic::Ordering::Relaxed);
        let attempts_before = stats.attempts.load(std::sync::atomic::Ordering::Relaxed);
        controller.kill().await?;
        let killed_at = stats.now();
        println!("controller killed with SIGKILL; starting it again on {addr}");
        let controller = Controller::start(&controller_bin, &home, &addr, &args, &log).await?;
        let api = Api::new(&controller)?;
        let took = api
            .wait_all_online(n, Duration::from_secs(options.online_deadline))
            .await?;
        let done_at = stats.now();
        let ordering = std::sync::atomic::Ordering::Relaxed;
        println!(
            "all {n} online again {took:.2} s after the new controller printed its address \
             ({:.2} s after the kill)",
            done_at - killed_at
        );
        println!(
            "reconnection: {} attempts, peak {} attempts in one second, {} refused as \"already connected\"; no agent left out: {}",
            stats.attempts.load(ordering) - attempts_before,
            stats.peak_attempts_per_second(killed_at, done_at + 1.0),
            stats.already_connected.load(ordering) - already_before,
            api.online_count().await? == n,
        );
        println!(
            "attempts begun in each second from the kill on: {:?}",
            stats.attempts_by_second(killed_at, done_at + 1.0)
        );
        (controller, api)
    } else {
        (controller, api)
    };
    drop(api);
    fleet.stop().await;
    controller.kill().await?;
    println!("load average at the end: {}", loadavg());
    Ok(())
}

/// `--busy` loops of `cli node-info` on random agents; prints latency and rate.
async fn busy(
    cli_bin: &std::path::Path,
    controller: &Controller,
    n: usize,
    workers: usize,
    secs: u64,
) -> anyhow::Result<()> {
    let cpu_start = controller.cpu_secs()?;
    let until = Instant::now() + Duration::from_secs(secs);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (cli_bin, url, token) = (
            cli_bin.to_path_buf(),
            controller.url.clone(),
            controller.token.clone(),
        );
        loops.spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < until {
                let node = prepare::node_name(rand::random_range(0..n));
                let started = Instant::now();
                let status = tokio::process::Command::new(&cli_bin)
                    .args([
                        "-s",
                        &url,
                        "-auth",
                        &format!("admin:{token}"),
                        "node-info",
                        &node,
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await?;
                anyhow::ensure!(status.success(), "node-info {node} failed: {status}");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<Vec<f64>, anyhow::Error>(times)
        });
    }
    let mut times = Vec::new();
    while let Some(joined) = loops.join_next().await {
        times.extend(joined??);
    }
    let cpu = (controller.cpu_secs()? - cpu_start) / secs as f64;
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    if times.is_empty() {
        bail!("no node-info call finished in {secs} s");
    }
    println!(
        "small calls: {workers} loops of `cli node-info` on random agents for {secs} s: {} calls ({:.1}/s), whole command median {:.1} ms, p99 {:.1} ms; controller CPU {:.1}% of one core",
        times.len(),
        times.len() as f64 / secs as f64,
        pick(0.5),
        pick(0.99),
        cpu * 100.0
    );
    Ok(())
}

/// `cli -s URL -auth admin:TOKEN ARGS…`, its stdout; fails on a non-zero exit.
async fn cli(
    cli_bin: &std::path::Path,
    controller: &Controller,
    args: &[&str],
) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(cli_bin)
        .args([
            "-s",
            &controller.url,
            "-auth",
            &format!("admin:{}", controller.token),
        ])
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "cli {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The controller's REST API, for the online count.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    fn new(controller: &Controller) -> anyhow::Result<Api> {
        let tls = steward_transport::tls_config(&Default::default())?;
        Ok(Api {
            http: steward_transport::http_client(&tls)?,
            url: format!("{}computer/api/json", controller.url),
            token: controller.token.clone(),
        })
    }

    /// Nodes whose name starts with `fleet-` and that are online.
    async fn online_count(&self) -> anyhow::Result<usize> {
        let body = self
            .http
            .get(&self.url)
            .basic_auth("admin", Some(&self.token))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        let computers = json["computer"].as_array().context("no computer list")?;
        Ok(computers
            .iter()
            .filter(|c| {
                c["displayName"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("fleet-"))
                    && c["offline"] == false
            })
            .count())
    }

    /// Seconds until `n` are online, reading the count every [`POLL`].
    async fn wait_all_online(&self, n: usize, deadline: Duration) -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut last_print = Instant::now();
        loop {
            let online = self.online_count().await.unwrap_or(0);
            if online == n {
                return Ok(started.elapsed().as_secs_f64());
            }
            if started.elapsed() > deadline {
                bail!("only {online} of {n} online after {deadline:?}");
            }
            if last_print.elapsed() > Duration::from_secs(5) {
                println!(
                    "  {online} of {n} online after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Raises the open-file limit to its hard maximum; each agent costs one descriptor here and
/// one in the controller (which inherits the limit).
fn raise_open_files(agents: usize) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    let needed = agents as u64 + 1024;
    if limit.rlim_cur < needed {
        bail!(
            "{agents} agents need about {needed} open files here and in the controller; the hard limit is {} (raise it with `ulimit -Hn` as root, or in /etc/security/limits.conf)",
            limit.rlim_cur
        );
    }
    Ok(limit.rlim_cur)
}

/// Waits (at most 10 s) until the machine is quiet: the baseline is taken after start-up.
async fn wait_quiet() {
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = || {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        let total: u64 = ticks.iter().take(8).sum();
        Some((total - ticks.get(3)? - ticks.get(4)?, total))
    };
    let Some(mut last) = busy() else { return };
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(now) = busy() else { return };
        let total = now.1 - last.1;
        if total > 0 && (now.0 - last.0) * 10 <= total {
            return;
        }
        last = now;
    }
}

fn per_agent_kib(now: u64, before: u64, n: usize) -> f64 {
    now.saturating_sub(before) as f64 / n as f64 / 1024.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}
