//! Scenario 1, dispatch latency: how long from the `build` request until the step's first
//! command runs on an idle agent.
//!
//! The job runs `date +%s%N` first; t0 is this process's CLOCK_REALTIME just before the
//! client dials, t1 the step's own reading of the same clock, found in the stored console.
//! Builds go one at a time (`build -s`, each waiting for the last to end, then a short
//! pause so the agent is idle), through the in-process client so that no process start is
//! counted. Interleaved with them, the baseline: `exec-on-node NODE -- date +%s%N`, a
//! process on the same agent over the same channel with no queue, store or console. And
//! the costs a user adds: `who-am-i` in this process and as the `cli` binary, and a few
//! builds through the binary.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::LineClock;
use crate::rig::{Rig, node_name};
use crate::stats::{Summary, ms, now_ns, verdict};

pub const JOB: &str = "dispatch";
/// The target for the median.
const TARGET_P50_MS: f64 = 20.0;
/// Builds and exec round trips before the measured ones: first connections, page cache.
const WARM_UP: usize = 3;

pub struct Plan {
    /// Measured builds through the in-process client (and as many `exec-on-node`s).
    pub builds: usize,
    /// Builds through the `cli` binary, and `who-am-i` runs each way.
    pub cli_runs: usize,
    /// Pause after each build so the agent is idle (its steps removed) for the next.
    pub gap: Duration,
}

/// One build's times, ms from t0.
struct Sample {
    started: f64,
    step: f64,
    completed: f64,
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    let node = node_name(1);
    let xml = format!(
        "<project><assignedNode>{node}</assignedNode><concurrentBuild>false</concurrentBuild>\
         <builders><hudson.tasks.Shell><command>date +%s%N</command></hudson.tasks.Shell></builders></project>"
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    println!(
        "\n== 1. Dispatch latency: `build {JOB} -s` until the step's first command (`date +%s%N`) runs on idle agent {node}; {} builds one at a time, {} ms apart ==",
        plan.builds,
        plan.gap.as_millis()
    );

    for _ in 0..WARM_UP {
        exec_date(rig, &node).await?;
        build_in_process(rig).await?;
        tokio::time::sleep(plan.gap).await;
    }
    let mut builds = Vec::new();
    let mut execs = Vec::new();
    let mut exec_round_trips = Vec::new();
    for i in 0..plan.builds {
        // Alternate the order so neither always runs right after the other.
        if i % 2 == 0 {
            let (to_date, round_trip) = exec_date(rig, &node).await?;
            execs.push(to_date);
            exec_round_trips.push(round_trip);
            builds.push(build_in_process(rig).await?);
        } else {
            builds.push(build_in_process(rig).await?);
            tokio::time::sleep(plan.gap).await;
            let (to_date, round_trip) = exec_date(rig, &node).await?;
            execs.push(to_date);
            exec_round_trips.push(round_trip);
        }
        tokio::time::sleep(plan.gap).await;
    }

    let mut who_in_process = Vec::new();
    let mut who_binary = Vec::new();
    let mut binary_builds = Vec::new();
    for _ in 0..plan.cli_runs {
        let t0 = now_ns();
        rig.client.ok(&["who-am-i"], b"").await?;
        who_in_process.push(ms(t0, now_ns()));
        let t0 = now_ns();
        let out = rig.cli_command(&["who-am-i"]).output().await?;
        anyhow::ensure!(out.status.success(), "cli who-am-i failed: {}", out.status);
        who_binary.push(ms(t0, now_ns()));
    }
    for _ in 0..plan.cli_runs {
        binary_builds.push(build_with_binary(rig).await?);
        tokio::time::sleep(plan.gap).await;
    }

    let column = |values: Vec<f64>| Summary::new(&values).line();
    let step = Summary::new(&builds.iter().map(|s| s.step).collect::<Vec<_>>());
    println!("times in ms from the request (t0 = just before the client dials):");
    println!(
        "  build -s, in-process client, request -> step's `date`:    {}",
        step.line()
    );
    println!(
        "    request -> `Started {JOB} #N` at the client:            {}",
        column(builds.iter().map(|s| s.started).collect())
    );
    println!(
        "    `Started` at the client -> step's `date`:               {}",
        column(builds.iter().map(|s| s.step - s.started).collect())
    );
    println!(
        "    request -> `Completed` at the client:                   {}",
        column(builds.iter().map(|s| s.completed).collect())
    );
    println!("  baseline, exec-on-node {node} -- date +%s%N (no queue, no store):");
    println!(
        "    request -> the process's `date`:                        {}",
        column(execs)
    );
    println!(
        "    request -> exit code at the client (round trip):        {}",
        column(exec_round_trips)
    );
    println!(
        "  who-am-i, in-process client (a CLI command's floor):      {}",
        column(who_in_process)
    );
    println!(
        "  who-am-i, cli binary (process start + command):           {}",
        column(who_binary)
    );
    println!(
        "  build -s via the cli binary, spawn -> step's `date`:      {}",
        column(binary_builds)
    );
    println!(
        "target: p50 <= {TARGET_P50_MS} ms (in-process client): p50 {:.1} ms, {}",
        step.pct(0.5),
        verdict(step.pct(0.5) <= TARGET_P50_MS)
    );
    Ok(())
}

/// `exec-on-node NODE -- date +%s%N`: ms until the process read the clock, and the round trip.
async fn exec_date(rig: &Rig, node: &str) -> anyhow::Result<(f64, f64)> {
    let t0 = now_ns();
    let out = rig
        .client
        .ok(&["exec-on-node", node, "--", "date", "+%s%N"], b"")
        .await?;
    let t_end = now_ns();
    let t1 = clock_lines(&out)
        .next()
        .with_context(|| format!("exec-on-node printed no time: {out:?}"))?;
    Ok((ms(t0, t1), ms(t0, t_end)))
}

/// One `build JOB -s` through the in-process client.
async fn build_in_process(rig: &Rig) -> anyhow::Result<Sample> {
    let lines = LineClock::default();
    let t0 = now_ns();
    let out = rig.client.run_lines(&["build", JOB, "-s"], &lines).await?;
    if out.code != 0 {
        bail!("build {JOB} -s exited {}: {}", out.code, out.stderr.trim());
    }
    let (started_at, started) = lines
        .find(&format!("Started {JOB} #"))
        .context("no `Started` line")?;
    let (completed_at, _) = lines.find("Completed ").context("no `Completed` line")?;
    let number = build_number(&started)?;
    let t1 = step_clock(rig, number)?;
    Ok(Sample {
        started: ms(t0, started_at),
        step: ms(t0, t1),
        completed: ms(t0, completed_at),
    })
}

/// One `cli … build JOB -s` as a user runs it: ms from spawning the binary to the step's
/// `date`.
async fn build_with_binary(rig: &Rig) -> anyhow::Result<f64> {
    let t0 = now_ns();
    let mut child = rig
        .cli_command(&["build", JOB, "-s"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("cli stdout")?).lines();
    let mut number = None;
    while let Some(line) = lines.next_line().await? {
        if line.starts_with(&format!("Started {JOB} #")) {
            number = Some(build_number(&line)?);
        }
    }
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "cli build {JOB} -s exited {status}");
    let number = number.context("the cli printed no `Started` line")?;
    Ok(ms(t0, step_clock(rig, number)?))
}

/// N from `Started JOB #N`.
pub fn build_number(line: &str) -> anyhow::Result<u64> {
    line.rsplit_once('#')
        .and_then(|(_, n)| n.trim().parse().ok())
        .with_context(|| format!("no build number in {line:?}"))
}

/// The step's `date +%s%N` reading, from the stored console of build `number`.
fn step_clock(rig: &Rig, number: u64) -> anyhow::Result<i128> {
    let path = rig.console_path(JOB, number);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    clock_lines(&text)
        .next()
        .with_context(|| format!("no time in the console of #{number}:\n{text}"))
}

/// Lines that are a `date +%s%N` reading.
pub fn clock_lines(text: &str) -> impl Iterator<Item = i128> + '_ {
    text.lines()
        .filter(|l| l.len() >= 16 && l.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|l| l.parse().ok())
}
