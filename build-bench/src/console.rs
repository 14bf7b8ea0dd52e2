//! Scenario 2, console throughput: a build printing SIZE bytes (100-byte lines from `yes`),
//! timed from the step's start to the stored console reaching full size, with `cli console
//! -f` (the binary) following it from the moment the build starts.
//!
//! The script reads the clock before and after its output (`date +%s%N`), so the console
//! also says how fast the step itself wrote (into its log on the agent). This process
//! samples the size of the stored console every [`SIZE_POLL`]; once the build has ended,
//! the console is read back to check that the payload is all there, in one piece. Baseline,
//! just before each build: the same pipeline into a file next to the controller's home.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;

use crate::client::LineClock;
use crate::dispatch::clock_lines;
use crate::rig::{Rig, node_name};
use crate::stats::{Checksum, cpu_secs, mbps, ms, now_ns, verdict};

pub const JOB: &str = "console";
/// The target for the stored console.
const TARGET_MBPS: f64 = 200.0;
/// How often the stored console's size is read while the build runs.
const SIZE_POLL: Duration = Duration::from_millis(2);
/// Bytes per output line: 99 `x` and a newline.
const LINE: usize = 100;

pub struct Plan {
    /// Bytes the step prints; a multiple of [`LINE`].
    pub bytes: u64,
    pub repeat: usize,
}

/// The script: the clock, the payload, the clock. Tracing is off first, so that no `+ …`
/// line can land inside the payload.
fn script(bytes: u64) -> String {
    format!(
        "set +x\ndate +%s%N\nyes {} | head -c {bytes}\ndate +%s%N",
        "x".repeat(LINE - 1)
    )
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    anyhow::ensure!(
        plan.bytes > 0 && plan.bytes.is_multiple_of(LINE as u64),
        "the console size must be a positive multiple of {LINE} bytes"
    );
    let node = node_name(rig.agents.len().min(2));
    let xml = format!(
        "<project><assignedNode>{node}</assignedNode>\
         <builders><hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell></builders></project>",
        script(plan.bytes)
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    println!(
        "\n== 2. Console throughput: a build printing {} MB (`yes` lines of {LINE} bytes | head -c {}) on {node}, `cli console -f` following; {} run(s) ==",
        plan.bytes as f64 / 1e6,
        plan.bytes,
        plan.repeat
    );
    let mut rates = Vec::new();
    for run in 1..=plan.repeat {
        let local = baseline(rig, plan.bytes).await?;
        println!(
            "run {run}: baseline, same pipeline into a file on the same disk: {:.0} MB/s ({:.2} s); + fsync {:.2} s",
            mbps(plan.bytes, local.write_secs),
            local.write_secs,
            local.fsync_secs
        );
        rates.push(one_build(rig, plan, &node).await?);
        // The step's directory is removed after the build; let that and writeback settle.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "target: >= {TARGET_MBPS} MB/s into the stored console: median {median:.0} MB/s over {} run(s) {:?}, {}",
        rates.len(),
        rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        verdict(median >= TARGET_MBPS)
    );
    Ok(())
}

struct Local {
    write_secs: f64,
    fsync_secs: f64,
}

/// The step's pipeline with its output in a file beside the home: how fast this disk takes
/// it without Steward, and the fsync the build's end also does.
async fn baseline(rig: &Rig, bytes: u64) -> anyhow::Result<Local> {
    let path = rig.scratch.join("baseline.out");
    let pipeline = format!(
        "yes {} | head -c {bytes} > {}",
        "x".repeat(LINE - 1),
        path.display()
    );
    let t0 = now_ns();
    let status = tokio::process::Command::new("/bin/sh")
        .args(["-c", &pipeline])
        .status()
        .await?;
    let t1 = now_ns();
    anyhow::ensure!(status.success(), "the baseline pipeline failed: {status}");
    let fsync = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let t = now_ns();
        file.sync_data()?;
        let took = ms(t, now_ns()) / 1000.0;
        std::fs::remove_file(&path)?;
        Ok::<_, std::io::Error>((size, took))
    })
    .await??;
    anyhow::ensure!(fsync.0 == bytes, "the baseline wrote {} bytes", fsync.0);
    Ok(Local {
        write_secs: ms(t0, t1) / 1000.0,
        fsync_secs: fsync.1,
    })
}

/// One build; prints its figures and returns the stored console's rate, MB/s.
async fn one_build(rig: &Rig, plan: &Plan, node: &str) -> anyhow::Result<f64> {
    let lines = LineClock::default();
    let building = {
        let (client, lines) = (rig.client.clone(), lines.clone());
        tokio::spawn(async move { client.run_lines(&["build", JOB, "-s"], &lines).await })
    };
    let (_, started) = lines.wait_for(&format!("Started {JOB} #")).await;
    let number: u64 = started
        .rsplit_once('#')
        .and_then(|(_, n)| n.trim().parse().ok())
        .context("no build number")?;
    let agent_pid = rig.agent(node).context("no agent for the node")?.proc.pid;
    let cpu_before = (cpu_secs(rig.controller.pid)?, cpu_secs(agent_pid)?);
    let path = rig.console_path(JOB, number);

    // `cli console JOB N -f`, the binary, counting what it prints.
    let mut follower = rig
        .cli_command(&["console", JOB, &number.to_string(), "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut follower_out = follower.stdout.take().context("cli stdout")?;
    let following = tokio::spawn(async move {
        let mut buffer = vec![0; 256 * 1024];
        let (mut sum, mut last_byte) = (Checksum::default(), now_ns());
        loop {
            let n = follower_out.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            sum.update(&buffer[..n]);
            last_byte = now_ns();
        }
        let status = follower.wait().await?;
        Ok::<_, anyhow::Error>((sum.finish(), last_byte, now_ns(), status))
    });

    // The stored console's size over time.
    let done = Arc::new(AtomicBool::new(false));
    let sampling = {
        let (path, done) = (path.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut ticks = tokio::time::interval(SIZE_POLL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !done.load(Ordering::Relaxed) {
                ticks.tick().await;
                // A stat takes microseconds: not worth a trip to the blocking pool, which
                // would cost more than it and add a wake-up to what is measured.
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                samples.push((now_ns(), size));
            }
            samples
        })
    };

    let out = building.await??;
    let (t_done, _) = lines.find("Completed ").context("no `Completed` line")?;
    done.store(true, Ordering::Relaxed);
    if out.code != 0 {
        bail!("build {JOB} -s exited {}: {}", out.code, out.stderr.trim());
    }
    let cpu_after = (cpu_secs(rig.controller.pid)?, cpu_secs(agent_pid)?);
    let samples = sampling.await?;
    let ((follower_sum, received), last_byte, follower_exit, status) = following.await??;
    anyhow::ensure!(status.success(), "cli console -f exited {status}");

    let layout = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_layout(&path)).await??
    };
    let expected_lines = plan.bytes / LINE as u64;
    anyhow::ensure!(
        layout.payload_lines == expected_lines
            && layout.payload_end - layout.payload_start == plan.bytes,
        "the stored console of #{number} holds {} payload lines in bytes {}..{}, not {expected_lines} in one piece",
        layout.payload_lines,
        layout.payload_start,
        layout.payload_end
    );
    let [step_start, step_end] = layout.clocks;
    let t_full = samples
        .iter()
        .find(|(_, size)| *size >= layout.payload_end)
        .map_or(t_done, |(t, _)| *t);
    let secs = |a: i128, b: i128| ms(a, b) / 1000.0;
    let rate = mbps(plan.bytes, secs(step_start, t_full));
    println!(
        "  build #{number}: stored console {} bytes, payload {} lines of {LINE} bytes in one piece: verified",
        layout.size, layout.payload_lines
    );
    println!(
        "  the step wrote its output (into its log on the agent) in {:.2} s: {:.0} MB/s",
        secs(step_start, step_end),
        mbps(plan.bytes, secs(step_start, step_end))
    );
    println!(
        "  stored console at full size {:.2} s after the step started: {rate:.0} MB/s ({:.0} ms after the step's output ended)",
        secs(step_start, t_full),
        ms(step_end, t_full)
    );
    println!(
        "  build ended (`Completed` at the client) {:.2} s after the step started: {:.0} MB/s including the console's fsync and the build's end",
        secs(step_start, t_done),
        mbps(plan.bytes, secs(step_start, t_done))
    );
    println!(
        "  cli console -f: received {received} bytes ({}), last byte {:+.0} ms and exit {:+.0} ms from the build's end",
        if (follower_sum, received) == layout.checksum {
            "the stored console, byte for byte"
        } else {
            "NOT the same as the stored console"
        },
        ms(t_done, last_byte),
        ms(t_done, follower_exit)
    );
    println!(
        "  CPU from `Started` to `Completed`: controller {:.2} s, agent {:.2} s (wall {:.2} s)",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        secs(samples.first().map_or(t_done, |s| s.0), t_done)
    );
    Ok(rate)
}

/// Where the payload sits in a stored console.
struct Layout {
    size: u64,
    payload_start: u64,
    payload_end: u64,
    payload_lines: u64,
    /// The whole file's [`Checksum`] and length.
    checksum: (u64, u64),
    /// The step's two clock readings.
    clocks: [i128; 2],
}

/// Reads the console once: the clock lines, and the payload's lines (all contiguous).
fn read_layout(path: &Path) -> anyhow::Result<Layout> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let payload = "x".repeat(LINE - 1) + "\n";
    let (mut at, mut start, mut end, mut count) = (0u64, None, 0u64, 0u64);
    let mut broken = false;
    let mut clocks = Vec::new();
    let mut line = Vec::with_capacity(LINE);
    let mut sum = Checksum::default();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        sum.update(&line);
        if line == payload.as_bytes() {
            if start.is_none() {
                start = Some(at);
            } else if end != at {
                broken = true;
            }
            end = at + n as u64;
            count += 1;
        } else if let Some(clock) = clock_lines(&String::from_utf8_lossy(&line)).next() {
            clocks.push(clock);
        }
        at += n as u64;
    }
    if broken {
        bail!(
            "the payload in {} is interrupted by other lines",
            path.display()
        );
    }
    let [first, second] = clocks[..] else {
        bail!(
            "expected two clock lines in {}, found {}",
            path.display(),
            clocks.len()
        );
    };
    Ok(Layout {
        size,
        payload_start: start.unwrap_or(0),
        payload_end: end,
        payload_lines: count,
        checksum: sum.finish(),
        clocks: [first, second],
    })
}
