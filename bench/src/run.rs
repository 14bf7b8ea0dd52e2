//! The order of the measurements, and their printing.
//!
//! Peak RSS goes first (the smaller transfer before the larger one, in case the kernel
//! does not let us reset the peak), then the interleaved bulk runs against the baseline,
//! then small-call latency idle and under load, then the concurrent transfers.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;

use crate::bulk;
use crate::latency::{self, Load, Probe, Summary};
use crate::plain::Plain;
use crate::report::{Report, gbps, mib, verdict};
use crate::rig::{self, Rig};
use crate::{fairness, rss, throughput};

const MIB: u64 = 1024 * 1024;
/// Target: p99 of a small call while a bulk transfer runs, milliseconds.
const TARGET_P99_MS: f64 = 5.0;
/// Concurrent transfers, each a fair share.
const CONCURRENT: usize = 16;
/// Peak RSS counts as flat when the larger transfer's peak exceeds the smaller one's by at
/// most this many bytes or this fraction, whichever is larger (allocator noise).
const RSS_SLACK_BYTES: u64 = 8 * MIB;
const RSS_SLACK_FRACTION: f64 = 0.10;

/// Sizes and counts for one run.
pub struct Plan {
    pub bulk: u64,
    pub small: u64,
    pub fair_each: u64,
    pub samples: usize,
    pub repeat: u32,
    pub quick: bool,
}

impl Plan {
    pub fn new(size_mib: u64, quick: bool, repeat: u32) -> anyhow::Result<Plan> {
        let size_mib = if quick { size_mib.min(64) } else { size_mib };
        anyhow::ensure!(size_mib >= 8, "--size-mib must be at least 8");
        anyhow::ensure!(repeat >= 1, "--repeat must be at least 1");
        let bulk = size_mib * MIB;
        Ok(Plan {
            bulk,
            small: bulk / 4,
            fair_each: bulk / 8,
            samples: if quick { 200 } else { 2000 },
            repeat: if quick { 1 } else { repeat },
            quick,
        })
    }
}

pub struct Settings {
    pub plan: Plan,
    pub work_parent: Option<PathBuf>,
    pub controller_nodelay: bool,
    pub agent_bin: PathBuf,
    pub self_exe: PathBuf,
}

pub async fn run(settings: &Settings, report: &mut Report) -> anyhow::Result<()> {
    let plan = &settings.plan;
    machine(report);
    report.line(format!(
        "plan: bulk {} MiB x{} runs, RSS {} MiB vs {} MiB, {CONCURRENT} x {} MiB concurrent, {} latency samples{}",
        plan.bulk / MIB,
        plan.repeat,
        plan.small / MIB,
        plan.bulk / MIB,
        plan.fair_each / MIB,
        plan.samples,
        if plan.quick { " (--quick)" } else { "" },
    ));

    let rig = Rig::start(&settings.agent_bin, settings.work_parent.as_deref()).await?;
    report.line(format!(
        "agent: pid {}, version {}, {} {}, {} CPUs; work dir {}",
        rig.agent_pid,
        rig.info.agent_version,
        rig.info.os,
        rig.info.arch,
        rig.info.cpus,
        rig.work_dir().display()
    ));
    if settings.controller_nodelay {
        let n = rig.set_controller_nodelay();
        report.line(format!(
            "EXPERIMENT --controller-nodelay: TCP_NODELAY set on {n} controller sockets"
        ));
        report.value("controller_nodelay", json!(n));
    }
    let mut plain = Plain::start(&settings.self_exe).await?;
    report.line(format!(
        "baseline: plain WebSocket to plain-peer pid {}",
        plain.peer_pid().unwrap_or(0)
    ));

    let measured = measure(plan, &rig, &mut plain, report).await;
    let measured = measured.map_err(|e| {
        e.context(format!(
            "measuring failed; the agent's log ends with:\n{}",
            rig.agent_log_tail()
        ))
    });
    plain.stop().await;
    rig.stop().await?;
    report.line(format!("load average at the end: {}", loadavg()));
    measured
}

async fn measure(
    plan: &Plan,
    rig: &Rig,
    plain: &mut Plain,
    report: &mut Report,
) -> anyhow::Result<()> {
    let ch = &rig.channel;
    let big = rig.path("big.bin");
    let fair = rig.path("fair.bin");
    let small_file = rig.path("small.txt");
    let written = rig.path("written.bin");
    report.line("preparing files (not timed)…");
    rig::create_file(big.clone().into(), plan.bulk).await?;
    rig::create_file(fair.clone().into(), plan.fair_each).await?;
    rig::create_file(small_file.clone().into(), 100).await?;
    let chunk = bulk::chunk();

    // ---- Peak RSS.
    report.line("");
    let agent = Some(rig.agent_pid);
    let before = (mem(None)?, mem(agent)?);
    let reset = rss::reset_peak(None) && rss::reset_peak(agent);
    report.line(format!(
        "== Peak RSS (VmHWM) during one ReadFile + one WriteFile; peak reset before each phase: {} ==",
        if reset { "yes (clear_refs)" } else { "NO, peaks only grow" }
    ));
    report.line(format!(
        "{:<22} {:>30} {:>24}",
        "phase", "controller peak (now) MiB", "agent peak (now) MiB"
    ));
    let row = |what: &str, c: rss::Mem, a: rss::Mem| {
        format!(
            "{what:<22} {:>21.1} ({:>6.1}) {:>15.1} ({:>6.1})",
            mib(c.peak),
            mib(c.now),
            mib(a.peak),
            mib(a.now)
        )
    };
    report.line(row("idle, before", before.0, before.1));
    let mut phases = Vec::new();
    for size in [plan.small, plan.bulk] {
        if reset {
            rss::reset_peak(None);
            rss::reset_peak(agent);
        }
        let read = bulk::read_file(ch, &big, plan.bulk - size, None).await?;
        let write = bulk::write_file(ch, &written, size, &chunk).await?;
        let peaks = (mem(None)?, mem(agent)?);
        report.line(format!(
            "{}   (read {:.2} GB/s, write {:.2} GB/s)",
            row(&format!("{} MiB transfer", size / MIB), peaks.0, peaks.1),
            read.gbps(),
            write.gbps()
        ));
        phases.push((size, peaks));
    }
    let (small_peaks, big_peaks) = (phases[0].1, phases[1].1);
    let flat = |small: u64, big: u64| {
        big <= small + RSS_SLACK_BYTES.max((small as f64 * RSS_SLACK_FRACTION) as u64)
    };
    let controller_flat = flat(small_peaks.0.peak, big_peaks.0.peak);
    let agent_flat = flat(small_peaks.1.peak, big_peaks.1.peak);
    report.line(format!(
        "growth {} MiB -> {} MiB: controller {:+.1} MiB, agent {:+.1} MiB; flat (within max(8 MiB, 10%)): controller {}, agent {}",
        plan.small / MIB,
        plan.bulk / MIB,
        mib(big_peaks.0.peak) - mib(small_peaks.0.peak),
        mib(big_peaks.1.peak) - mib(small_peaks.1.peak),
        verdict(controller_flat),
        verdict(agent_flat),
    ));
    report.value(
        "rss",
        json!({
            "peak_reset": reset,
            "before": { "controller_bytes": before.0.peak, "agent_bytes": before.1.peak },
            "small": { "size": plan.small, "controller_bytes": small_peaks.0.peak, "agent_bytes": small_peaks.1.peak },
            "big": { "size": plan.bulk, "controller_bytes": big_peaks.0.peak, "agent_bytes": big_peaks.1.peak },
            "flat": controller_flat && agent_flat,
        }),
    );

    // ---- Bulk throughput, channel and baseline interleaved.
    report.line("");
    report.line(format!(
        "== Bulk throughput: {} MiB, {} runs; channel alone, channel + file, plain WebSocket and the disk interleaved ==",
        plan.bulk / MIB,
        plan.repeat
    ));
    let plain_written = rig.path("plain-written.bin");
    let files = throughput::Files {
        big: &big,
        written: &written,
        plain_written: &plain_written,
    };
    throughput::measure(plan.repeat, plan.bulk, rig, plain, files, report).await?;
    let disk_read = bulk::local_disk(big.clone().into(), plan.bulk, false).await?;
    report.line(format!(
        "reference, same work dir, no network, one thread: read {:.3} GB/s (page cache)",
        disk_read.gbps(),
    ));
    report.value("local_disk", json!({ "read_gbps": disk_read.gbps() }));

    // ---- Small-call round trips.
    report.line("");
    report.line(format!(
        "== Small-call round trip: {} samples each, one at a time ==",
        plan.samples
    ));
    report.line(format!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "", "p50 ms", "p99 ms", "max ms", "mean ms"
    ));
    let line = |what: &str, s: &Summary| {
        format!(
            "{what:<34} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            s.p50, s.p99, s.max, s.mean
        )
    };
    let mut latency_json = serde_json::Map::new();
    let mut under_load = Vec::new();
    for loaded in [false, true] {
        for probe in [Probe::Stat, Probe::Ping] {
            let load = if loaded {
                Some(Load::start(ch, &big).await?)
            } else {
                None
            };
            let samples = latency::sample(ch, probe, &small_file, plan.samples).await?;
            let summary = Summary::of(&samples);
            let name = format!(
                "{:?}, {}",
                probe,
                if loaded {
                    "under ReadFile load"
                } else {
                    "idle"
                }
            );
            let mut entry = summary.json();
            let mut text = line(&name, &summary);
            if let Some(load) = load {
                let (moved, secs) = load.stop().await?;
                text.push_str(&format!(
                    "   (load moved {:.2} GB/s meanwhile)",
                    gbps(moved, secs)
                ));
                entry["load_gbps"] = json!(gbps(moved, secs));
                under_load.push((probe, summary));
            }
            report.line(text);
            latency_json.insert(name.replace([',', ' '], "_"), entry);
        }
    }
    for (probe, s) in &under_load {
        report.line(format!(
            "{probe:?} p99 under load {:.3} ms, target <= {TARGET_P99_MS} ms: {}",
            s.p99,
            verdict(s.p99 <= TARGET_P99_MS)
        ));
    }
    report.value("latency", serde_json::Value::Object(latency_json));

    // ---- Concurrent transfers.
    report.line("");
    report.line(format!(
        "== {CONCURRENT} concurrent ReadFile streams of {} MiB on one channel ==",
        plan.fair_each / MIB
    ));
    let outcome = fairness::run(ch, &fair, CONCURRENT).await?;
    let (rates, fair_share) = outcome.shares();
    report.line(format!(
        "{:>6} {:>16} {:>18} {:>12} {:>14}",
        "stream", "MiB while all ran", "MB/s while all ran", "finished s", "overall MB/s"
    ));
    for (i, (s, rate)) in outcome.streams.iter().zip(&rates).enumerate() {
        report.line(format!(
            "{:>6} {:>16.1} {:>18.1} {:>12.3} {:>14.1}",
            i + 1,
            mib(s.bytes_while_all_ran),
            rate / 1e6,
            s.secs,
            s.bytes as f64 / s.secs / 1e6
        ));
    }
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let fair_ok = slowest >= fair_share / 2.0;
    report.line(format!(
        "total {:.0} MiB in {:.3} s = {:.3} GB/s; all {CONCURRENT} ran together for {:.3} s; fair share then {:.1} MB/s, slowest {:.1} MB/s ({:.0}% of fair); none below half: {}",
        mib(outcome.total_bytes),
        outcome.total_secs,
        gbps(outcome.total_bytes, outcome.total_secs),
        outcome.all_ran_secs,
        fair_share / 1e6,
        slowest / 1e6,
        slowest / fair_share * 100.0,
        verdict(fair_ok)
    ));
    report.value(
        "concurrent",
        json!({
            "streams": CONCURRENT,
            "bytes_each": plan.fair_each,
            "total_gbps": gbps(outcome.total_bytes, outcome.total_secs),
            "rates_while_all_ran_bytes_per_s": rates,
            "fair_share_bytes_per_s": fair_share,
            "none_below_half": fair_ok,
        }),
    );
    Ok(())
}

fn mem(pid: Option<u32>) -> anyhow::Result<rss::Mem> {
    rss::read(pid).with_context(|| {
        format!(
            "reading /proc/{}/status",
            pid.map_or("self".into(), |p| p.to_string())
        )
    })
}

/// Prints the machine: CPUs, CPU model, memory, load, date.
fn machine(report: &mut Report) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let date = utc_now();
    report.line(format!(
        "channel-bench {} at {date}",
        steward_protocol::STEWARD_VERSION
    ));
    report.line(format!(
        "machine: {cpus} CPUs (nproc), {model}, {:.1} GiB memory; load average {}",
        mem_kib as f64 / (1024.0 * 1024.0),
        loadavg()
    ));
    report.value(
        "machine",
        json!({ "cpus": cpus, "cpu_model": model, "memory_bytes": mem_kib * 1024, "date": date }),
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS UTC` now.
fn utc_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis()) as i64;
    steward_protocol::duration::utc(ms)
        .replace('T', " ")
        .replace('Z', " UTC")
}
