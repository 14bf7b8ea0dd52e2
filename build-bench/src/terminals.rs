//! Terminals on the real binaries (`--only terminals`), three figures:
//!
//! 1. **Many:** `--terminals` terminals (`cmd` running `cat`) spread over the agents, one
//!    attached WebSocket client each, every one having echoed a keystroke (so each screen
//!    model holds something). The controller's memory per terminal (its RSS over the
//!    same-run baseline: the controller with its agents and no terminal) and its CPU while
//!    everything idles (against the same window before the terminals).
//! 2. **Echo:** `--echo-clients` clients on one terminal whose program echoes each byte
//!    (`stty raw -echo; cat`); one of them types `--keystrokes` single bytes, each timed from
//!    the write to its echo, at the typist and at the last of the clients. Baselines: the
//!    same with the typist alone, and a local PTY running the same program.
//! 3. **Flood:** `yes | head -c BYTES` on one terminal with `--flood-clients` clients
//!    reading as fast as they can: time from the start to the recording holding every byte
//!    (the run's end recorded), as MB/s into the recording, the controller's RSS before,
//!    at its highest and after, and how many clients fell behind and were dropped. Baseline:
//!    the same command to `/dev/null` here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::rig::Rig;
use crate::stats::{self, Summary};

pub struct Plan {
    pub terminals: usize,
    pub echo_clients: usize,
    pub keystrokes: usize,
    pub flood_bytes: u64,
    pub flood_clients: usize,
    pub idle_window: Duration,
}

/// The controller's resident memory, bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Proportional set size (shared pages divided among their users), bytes.
fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory (RSS and PSS) of every process whose argv[0] is `name`, summed, and
/// how many there are.
fn rss_of_all(name: &str) -> (u64, u64, usize) {
    let mut total = 0;
    let mut proportional = 0;
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let argv0 = std::fs::read(entry.path().join("cmdline"))
            .ok()
            .and_then(|c| c.split(|b| *b == 0).next().map(|a| a.to_vec()))
            .unwrap_or_default();
        if argv0 == name.as_bytes() {
            total += rss(pid);
            proportional += pss(pid);
            count += 1;
        }
    }
    (total, proportional, count)
}

/// One attached client: output bytes counted, the count announced.
struct Client {
    tx: futures_util::stream::SplitSink<steward_transport::WsStream, Message>,
    received: Arc<AtomicU64>,
    /// Set once the controller closed this client (dropped it for falling behind).
    closed: Arc<AtomicU64>,
    got: Arc<Notify>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn attach(rig: &Rig, name: &str) -> anyhow::Result<Client> {
    let root = url::Url::parse(&rig.url)?;
    let mut url = steward_transport::ws_url(&root, "")?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the URL cannot have a path"))?
        .pop_if_empty()
        .extend(["terminals", name, "attach"]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", rig.token));
    let headers = vec![
        ("Authorization".to_owned(), format!("Basic {basic}")),
        ("Origin".to_owned(), steward_transport::origin_of(&root)),
    ];
    let tls = steward_transport::tls_config(&steward_transport::TlsOptions::default())?;
    let (socket, _) = steward_transport::connect_websocket_within(
        &url,
        &headers,
        &tls,
        1 << 20,
        Some(Duration::from_secs(60)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("attaching to {name}: {e}"))?;
    let (tx, mut rx) = socket.split();
    let received = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let got = Arc::new(Notify::new());
    let reader = tokio::spawn({
        let (received, closed, got) = (received.clone(), closed.clone(), got.clone());
        async move {
            while let Some(Ok(message)) = rx.next().await {
                match message {
                    Message::Binary(data) => {
                        received.fetch_add(data.len() as u64, Ordering::Relaxed);
                        got.notify_waiters();
                    }
                    Message::Text(text) if text.contains("\"closed\"") => {
                        closed.store(1, Ordering::Relaxed);
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            got.notify_waiters();
        }
    });
    Ok(Client {
        tx,
        received,
        closed,
        got,
        reader,
    })
}

impl Client {
    /// Waits until at least `bytes` bytes of output came, within `limit`.
    async fn wait_for(&self, bytes: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.got.notified();
            if self.received.load(Ordering::Relaxed) >= bytes {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "output stopped at {} of {bytes} bytes",
                    self.received.load(Ordering::Relaxed)
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    async fn send(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.tx.send(Message::Binary(data.to_vec().into())).await?;
        Ok(())
    }
}

/// Creates terminal `name` on `node` running `cmd`, and waits until it runs.
async fn create(rig: &Rig, name: &str, node: &str, cmd: &str) -> anyhow::Result<()> {
    rig.client
        .ok(
            &[
                "create-terminal",
                name,
                "-node",
                node,
                "-param",
                &format!("cmd={cmd}"),
            ],
            b"",
        )
        .await?;
    wait_running(rig, name).await
}

async fn wait_running(rig: &Rig, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = rig.client.ok(&["get-terminal", name, "-json"], b"").await?;
        if out.contains("\"running\"") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("terminal {name} is not running: {out}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    many(rig, plan).await?;
    echo(rig, plan).await?;
    flood(rig, plan).await
}

async fn many(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    let pid = rig.controller.pid;
    println!(
        "\n== terminals: {} terminals (cat), one client each, over {} agents",
        plan.terminals,
        rig.agents.len()
    );
    let idle_cpu = |window: Duration| async move {
        let before = stats::cpu_secs(pid)?;
        tokio::time::sleep(window).await;
        Ok::<f64, anyhow::Error>((stats::cpu_secs(pid)? - before) / window.as_secs_f64() * 100.0)
    };
    let base_rss = rss(pid);
    let base_cpu = idle_cpu(plan.idle_window).await?;
    let started = Instant::now();
    // Created concurrently, a few at a time per agent.
    let mut creating = tokio::task::JoinSet::new();
    for i in 0..plan.terminals {
        let node = rig.agents[i % rig.agents.len()].node.clone();
        let client = rig.client.clone();
        creating.spawn(async move {
            let name = format!("t{i:04}");
            client
                .ok(
                    &[
                        "create-terminal",
                        &name,
                        "-node",
                        &node,
                        "-param",
                        "cmd=stty raw -echo; exec cat",
                    ],
                    b"",
                )
                .await
                .map(|_| name)
        });
        if creating.len() >= 32 {
            creating.join_next().await.context("a create task")???;
        }
    }
    while let Some(done) = creating.join_next().await {
        done??;
    }
    let created = started.elapsed();
    for i in 0..plan.terminals {
        wait_running(rig, &format!("t{i:04}")).await?;
    }
    let running = started.elapsed();
    let mut clients = Vec::with_capacity(plan.terminals);
    for i in 0..plan.terminals {
        clients.push(attach(rig, &format!("t{i:04}")).await?);
    }
    // Each client: its screen, then one keystroke echoed.
    for client in &mut clients {
        let screen = client.received.load(Ordering::Relaxed);
        client.send(b"x").await?;
        client.wait_for(screen + 1, Duration::from_secs(60)).await?;
    }
    let attached = started.elapsed();
    let (holders_rss, holders_pss, holders) = rss_of_all("steward-terminal-holder");
    let agents_rss: u64 = rig.agents.iter().map(|a| rss(a.proc.pid)).sum();
    let loaded_rss = rss(pid);
    let loaded_cpu = idle_cpu(plan.idle_window).await?;
    let per = (loaded_rss.saturating_sub(base_rss)) as f64 / plan.terminals as f64 / 1024.0;
    println!(
        "created in {:.1} s, all running at {:.1} s, all attached and echoed at {:.1} s",
        created.as_secs_f64(),
        running.as_secs_f64(),
        attached.as_secs_f64()
    );
    println!(
        "controller RSS: {:.1} MiB with the agents only (baseline), {:.1} MiB with the terminals: {per:.1} KiB per terminal (screen model, hub, client, runner, recording)",
        base_rss as f64 / 1048576.0,
        loaded_rss as f64 / 1048576.0
    );
    println!(
        "controller CPU while idle over {} s: {base_cpu:.2}% of a core before, {loaded_cpu:.2}% with the terminals",
        plan.idle_window.as_secs()
    );
    println!(
        "on the nodes: {holders} holders, {:.0} KiB RSS each ({:.0} KiB PSS: shared pages divided); the {} agents {:.1} MiB in all",
        holders_rss as f64 / holders.max(1) as f64 / 1024.0,
        holders_pss as f64 / holders.max(1) as f64 / 1024.0,
        rig.agents.len(),
        agents_rss as f64 / 1048576.0
    );
    drop(clients);
    let names: Vec<String> = (0..plan.terminals).map(|i| format!("t{i:04}")).collect();
    for batch in names.chunks(100) {
        let mut args = vec!["delete-terminal"];
        args.extend(batch.iter().map(String::as_str));
        rig.client.ok(&args, b"").await?;
    }
    Ok(())
}

async fn echo(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    println!(
        "\n== echo: {} keystrokes, each timed to its echo",
        plan.keystrokes
    );
    let node = rig.agents[0].node.clone();
    create(rig, "echo", &node, "stty raw -echo; exec cat").await?;
    let alone = echo_with(rig, 1, plan.keystrokes).await?;
    let many = echo_with(rig, plan.echo_clients, plan.keystrokes).await?;
    let local = local_pty_echo(plan.keystrokes).await?;
    println!("local PTY, same program (baseline): {} ms", local.line());
    println!("through Steward, the typist alone:  {} ms", alone.0.line());
    println!(
        "with {} clients, at the typist:     {} ms",
        plan.echo_clients,
        many.0.line()
    );
    println!(
        "with {} clients, at the last one:   {} ms",
        plan.echo_clients,
        many.1.line()
    );
    rig.client.ok(&["delete-terminal", "echo"], b"").await?;
    Ok(())
}

/// Keystroke echo with `clients` attached: at the typist, and at the last client.
async fn echo_with(
    rig: &Rig,
    clients: usize,
    keystrokes: usize,
) -> anyhow::Result<(Summary, Summary)> {
    let mut attached = Vec::new();
    for _ in 0..clients {
        attached.push(attach(rig, "echo").await?);
    }
    // A marker every client sees, after which each byte typed is one byte of output.
    let base: Vec<u64> = attached
        .iter()
        .map(|c| c.received.load(Ordering::Relaxed))
        .collect();
    attached[0].send(b"#").await?;
    for (c, b) in attached.iter().zip(&base) {
        c.wait_for(b + 1, Duration::from_secs(30)).await?;
    }
    let mut at_typist = Vec::new();
    let mut at_last = Vec::new();
    for _ in 0..keystrokes {
        let marks: Vec<u64> = attached
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .collect();
        let start = Instant::now();
        attached[0].send(b"k").await?;
        attached[0]
            .wait_for(marks[0] + 1, Duration::from_secs(10))
            .await?;
        at_typist.push(start.elapsed().as_secs_f64() * 1000.0);
        for (c, m) in attached.iter().zip(&marks) {
            c.wait_for(m + 1, Duration::from_secs(10)).await?;
        }
        at_last.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((Summary::new(&at_typist), Summary::new(&at_last)))
}

/// `/bin/sh -c SCRIPT` in a new PTY of this process: the master and the child.
fn in_pty(script: &str) -> anyhow::Result<(std::fs::File, std::process::Child)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments are null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    anyhow::ensure!(rc == 0, "openpty: {}", std::io::Error::last_os_error());
    use std::os::fd::FromRawFd;
    // SAFETY: both were just opened and are owned by nobody else.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let child = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave)
        .spawn()?;
    Ok((master, child))
}

/// The same program in a PTY of this process: write a byte to the master, read its echo.
async fn local_pty_echo(keystrokes: usize) -> anyhow::Result<Summary> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let (mut master, mut child) = in_pty("stty raw -echo; exec cat")?;
        // The shell's stty must be done before the first byte, or the line discipline echoes.
        master.write_all(b"#")?;
        let mut byte = [0u8; 1];
        master.read_exact(&mut byte)?;
        let mut times = Vec::new();
        for _ in 0..keystrokes {
            let start = Instant::now();
            master.write_all(b"k")?;
            master.read_exact(&mut byte)?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(Summary::new(&times))
    })
    .await?
}

/// The same flood in a PTY of this process, its master read as fast as it gives: seconds.
async fn local_pty_flood(bytes: u64) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let start = Instant::now();
        let (mut master, mut child) = in_pty(&format!("stty raw -echo; yes | head -c {bytes}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        // Linux answers EIO once no process holds the terminal any more.
        while total < bytes {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        let _ = child.wait();
        anyhow::ensure!(
            total >= bytes,
            "the local PTY gave {total} of {bytes} bytes"
        );
        Ok(start.elapsed().as_secs_f64())
    })
    .await?
}

async fn flood(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    let bytes = plan.flood_bytes;
    println!(
        "\n== flood: yes | head -c {bytes} with {} clients, recorded",
        plan.flood_clients
    );
    let local = {
        let start = Instant::now();
        let status = tokio::process::Command::new("/bin/sh")
            .args(["-c", &format!("yes | head -c {bytes} > /dev/null")])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "the local run failed");
        start.elapsed().as_secs_f64()
    };
    let pty = local_pty_flood(bytes).await?;
    let node = rig.agents[0].node.clone();
    // The program waits for one byte, floods, and ends: the run's end closes its recording.
    create(
        rig,
        "flood",
        &node,
        &format!("stty raw -echo; head -c1 >/dev/null; yes | head -c {bytes}"),
    )
    .await?;
    let mut clients = Vec::new();
    for _ in 0..plan.flood_clients {
        clients.push(attach(rig, "flood").await?);
    }
    // The byte that starts it comes from a client of its own, gone once it is sent.
    let mut typist = attach(rig, "flood").await?;
    let pid = rig.controller.pid;
    let rss_before = rss(pid);
    let cpu_before = stats::cpu_secs(pid)?;
    let start = Instant::now();
    typist.send(b"g").await?;
    drop(typist);
    let mut rss_max = rss_before;
    let recorded = loop {
        rss_max = rss_max.max(rss(pid));
        let out = rig
            .client
            .ok(&["list-recordings", "flood", "-json"], b"")
            .await?;
        let list: serde_json::Value = serde_json::from_str(&out)?;
        if let Some(done) = list.as_array().and_then(|l| {
            l.iter()
                .find(|r| r["endedMs"].is_i64() && r["outputBytes"].as_u64() >= Some(bytes))
        }) {
            break done["outputBytes"].as_u64().unwrap_or(0);
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the flood's recording did not end within 600 s: {out}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = stats::cpu_secs(pid)? - cpu_before;
    let rss_after = rss(pid);
    let dropped = clients
        .iter()
        .filter(|c| c.closed.load(Ordering::Relaxed) == 1)
        .count();
    let got: Vec<u64> = clients
        .iter()
        .map(|c| c.received.load(Ordering::Relaxed))
        .collect();
    println!(
        "local, to /dev/null (baseline): {:.2} s, {:.0} MB/s",
        local,
        stats::mbps(bytes, local)
    );
    println!(
        "local, through a PTY read here in 64 KiB reads (the kernel's PTY, baseline): {:.2} s, {:.0} MB/s",
        pty,
        stats::mbps(bytes, pty)
    );
    println!(
        "into the recording: {recorded} bytes in {secs:.2} s, {:.0} MB/s; controller CPU {:.1} s ({:.0}% of a core)",
        stats::mbps(recorded, secs),
        cpu,
        cpu / secs * 100.0
    );
    println!(
        "controller RSS: {:.1} MiB before, {:.1} MiB at most during, {:.1} MiB after",
        rss_before as f64 / 1048576.0,
        rss_max as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    println!(
        "clients: {dropped} of {} dropped for falling 4 MiB behind; bytes received: min {:.0} MB, max {:.0} MB",
        clients.len(),
        got.iter().min().copied().unwrap_or(0) as f64 / 1e6,
        got.iter().max().copied().unwrap_or(0) as f64 / 1e6
    );
    drop(clients);
    rig.client.ok(&["delete-terminal", "flood"], b"").await?;
    Ok(())
}
