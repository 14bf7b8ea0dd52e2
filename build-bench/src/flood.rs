//! Scenario 3, a queue of short builds: N builds of `sleep SECS` queued as fast as the
//! controller takes them (`build flood -p I=k`, distinct parameters so none are merged, by
//! a few concurrent in-process clients) over every agent's executors; the total time from
//! the first request to the last build's end against the ideal ⌈N / executors⌉ × SECS.
//!
//! Completion is watched with `list-builds` every [`POLL`]; the exact times come from the
//! stored consoles afterwards: a console file is created when its build starts and last
//! written by its `Finished:` line, so its birth and modification times are the build's
//! start and end as the controller saw them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::dispatch::clock_lines;
use crate::rig::{POOL_LABEL, Rig};
use crate::stats::{Summary, cpu_secs, ms, now_ns};

pub const JOB: &str = "flood";
/// How often `list-builds` is read while the builds run.
const POLL: Duration = Duration::from_millis(500);
/// Concurrent clients queueing builds.
const QUEUERS: usize = 4;

pub struct Plan {
    pub builds: usize,
    pub secs: u32,
    pub repeat: usize,
    /// Read the clock around the sleep (`date +%s%N`), to split each build's time into
    /// dispatch, the sleep, and noticing its end. Off for the figures of record, which run
    /// `sleep` alone.
    pub stamps: bool,
}

pub async fn run(rig: &Rig, plan: &Plan, executors: u32) -> anyhow::Result<()> {
    let slots = rig.agents.len() * executors as usize;
    let xml = format!(
        "<project><assignedNode>{POOL_LABEL}</assignedNode><concurrentBuild>true</concurrentBuild>\
         <properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>\
         <hudson.model.StringParameterDefinition><name>I</name><defaultValue>0</defaultValue></hudson.model.StringParameterDefinition>\
         </parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>\
         <builders><hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell></builders></project>",
        if plan.stamps {
            format!("date +%s%N\nsleep {}\ndate +%s%N", plan.secs)
        } else {
            format!("sleep {}", plan.secs)
        }
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    let ideal = plan.builds.div_ceil(slots) as f64 * f64::from(plan.secs);
    println!(
        "\n== 3. {} queued builds of `sleep {}` over {} agents x {executors} executors ({slots} at once); ideal {ideal:.0} s; {} run(s) ==",
        plan.builds,
        plan.secs,
        rig.agents.len(),
        plan.repeat
    );
    let mut totals = Vec::new();
    for run in 1..=plan.repeat {
        println!("run {run}:");
        let first = (run - 1) * plan.builds;
        totals.push(one_flood(rig, plan, slots, ideal, first).await?);
    }
    if plan.repeat > 1 {
        println!(
            "totals: {:?} s against the ideal {ideal:.0} s",
            totals
                .iter()
                .map(|t| (t * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// One flood, parameters `I=first…`; prints its figures and returns the total seconds.
async fn one_flood(
    rig: &Rig,
    plan: &Plan,
    slots: usize,
    ideal: f64,
    first: usize,
) -> anyhow::Result<f64> {
    let pids: Vec<u32> = rig.agents.iter().map(|a| a.proc.pid).collect();
    let agents_cpu =
        |pids: &[u32]| -> anyhow::Result<f64> { pids.iter().map(|p| cpu_secs(*p)).sum() };
    let cpu_before = (cpu_secs(rig.controller.pid)?, agents_cpu(&pids)?);

    // Queue them all.
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = now_ns();
    let mut queuers = tokio::task::JoinSet::new();
    for _ in 0..QUEUERS {
        let (client, next, n) = (rig.client.clone(), next.clone(), plan.builds);
        queuers.spawn(async move {
            let mut acks = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(acks);
                }
                let param = format!("I={}", first + k);
                client.ok(&["build", JOB, "-p", &param], b"").await?;
                acks.push((first + k, now_ns()));
            }
        });
    }
    let mut acked: BTreeMap<usize, i128> = BTreeMap::new();
    while let Some(joined) = queuers.join_next().await {
        acked.extend(joined??);
    }
    let t_queued = acked.values().copied().max().unwrap_or(t0);
    println!(
        "  queued {} builds in {:.2} s ({:.0} per second, {QUEUERS} clients)",
        plan.builds,
        ms(t0, t_queued) / 1000.0,
        plan.builds as f64 / (ms(t0, t_queued) / 1000.0)
    );

    // Wait for all to end.
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs_f64(ideal * 4.0 + 60.0 + plan.builds as f64 * 0.05);
    let rows = loop {
        let rows = list(rig, plan.builds, first).await?;
        let ended = rows.iter().filter(|r| r.result != "RUNNING").count();
        if ended == plan.builds {
            break rows;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "only {ended} of {} builds ended in time ({} listed)",
                plan.builds,
                rows.len()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let t_seen = now_ns();
    let cpu_after = (cpu_secs(rig.controller.pid)?, agents_cpu(&pids)?);
    let queue_left = rig.client.ok(&["queue"], b"").await?;
    anyhow::ensure!(
        queue_left.trim().is_empty(),
        "the queue is not empty: {queue_left}"
    );

    // Exact times from the consoles.
    let mut durations = Vec::new();
    let mut waits = Vec::new();
    let mut to_step = Vec::new();
    let mut after_step = Vec::new();
    let mut last_end = i128::MIN;
    let mut first_start = i128::MAX;
    for row in &rows {
        let path = rig.console_path(JOB, row.number);
        let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
        let born = ns(meta
            .created()
            .context("the file system keeps no creation times")?);
        let modified = ns(meta.modified()?);
        first_start = first_start.min(born);
        last_end = last_end.max(modified);
        durations.push(ms(born, modified) / 1000.0);
        if let Some(acked_at) = acked.get(&row.param) {
            waits.push(ms(*acked_at, born) / 1000.0);
        }
        if plan.stamps {
            let text = std::fs::read_to_string(&path)?;
            let clocks: Vec<i128> = clock_lines(&text).collect();
            let [first, last] = clocks[..] else {
                bail!("expected two clock lines in {}", path.display());
            };
            to_step.push(ms(born, first));
            after_step.push(ms(last, modified));
        }
    }
    let successes = rows.iter().filter(|r| r.result == "SUCCESS").count();
    let total = ms(t0, last_end) / 1000.0;
    let busy: f64 = durations.iter().sum();
    let durations = Summary::new(&durations);
    let waits = Summary::new(&waits);
    println!(
        "  results (list-builds): {} builds listed, {successes} SUCCESS, {} other; queue empty",
        rows.len(),
        rows.len() - successes
    );
    println!(
        "  first build started {:.3} s after the first request; last ended {total:.2} s after it (seen by polling at {:.2} s)",
        ms(t0, first_start) / 1000.0,
        ms(t0, t_seen) / 1000.0
    );
    println!(
        "  total {total:.2} s against the ideal {ideal:.0} s: {:.0}% over; executors busy {:.0}% of the time",
        (total / ideal - 1.0) * 100.0,
        busy / (slots as f64 * total) * 100.0
    );
    println!(
        "  build duration (console created -> `Finished:` written), s: p50 {:.3}  p90 {:.3}  max {:.3}  mean {:.3}",
        durations.pct(0.5),
        durations.pct(0.9),
        durations.max(),
        durations.mean()
    );
    if plan.stamps {
        println!(
            "  console created -> the step's first `date`, ms:       {}",
            Summary::new(&to_step).line()
        );
        println!(
            "  the step's last `date` -> `Finished:` written, ms:    {}",
            Summary::new(&after_step).line()
        );
    }
    println!(
        "  time in the queue (request acknowledged -> build started), s: p50 {:.2}  p90 {:.2}  max {:.2}",
        waits.pct(0.5),
        waits.pct(0.9),
        waits.max()
    );
    println!(
        "  CPU over the run: controller {:.1} s, agents {:.1} s in all (their steps not counted)",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1
    );
    for row in rows.iter().filter(|r| r.result != "SUCCESS") {
        report_unsuccessful(rig, row);
    }
    anyhow::ensure!(
        successes == plan.builds,
        "{} of {} builds did not end SUCCESS",
        plan.builds - successes,
        plan.builds
    );
    Ok(total)
}

/// One `list-builds` row of this flood.
struct Row {
    number: u64,
    result: String,
    param: usize,
}

/// The flood's builds from `list-builds` (only those with `I >= first`).
async fn list(rig: &Rig, n: usize, first: usize) -> anyhow::Result<Vec<Row>> {
    let limit = (first + n).min(10_000).to_string();
    let text = rig
        .client
        .ok(&["list-builds", JOB, "-n", &limit], b"")
        .await?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(number), Some(result), Some(params)) =
            (fields.first(), fields.get(1), fields.get(6))
        else {
            bail!("unexpected list-builds line {line:?}");
        };
        let number = number
            .trim_start_matches('#')
            .parse()
            .with_context(|| format!("build number in {line:?}"))?;
        let param = params
            .split(' ')
            .find_map(|p| p.strip_prefix("I="))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no I=… in {line:?}"))?;
        if param >= first {
            rows.push(Row {
                number,
                result: (*result).to_owned(),
                param,
            });
        }
    }
    Ok(rows)
}

fn ns(t: std::time::SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Prints an unsuccessful build's number, result and the end of its console, so a failed
/// run says why without `--keep`.
fn report_unsuccessful(rig: &Rig, row: &Row) {
    const TAIL_LINES: usize = 15;
    let path = rig.console_path(JOB, row.number);
    println!(
        "  build #{} (I={}) ended {}; the end of {}:",
        row.number,
        row.param,
        row.result,
        path.display()
    );
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
                println!("    | {line}");
            }
        }
        Err(e) => println!("    (cannot read it: {e})"),
    }
}
