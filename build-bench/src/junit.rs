//! Scenario 7, JUnit: reading a ~50 MB test report, its time and peak memory.
//!
//! A Surefire-style report is generated into the scratch directory ([`report`]). Each
//! reading runs in a child process (this binary again, `--junit-child MODE`), so that its
//! peak RSS (`VmHWM`) is the reading's: `parse` is what the controller's publisher does
//! (`steward_protocol::junit::parse_report` on a 64 KiB `BufReader`, then
//! `TestResult::add_file`; the JSON the build keeps is then written to nowhere, timed
//! apart); the baselines are `read` (the file read and discarded) and `events` (quick-xml
//! reading every event, building nothing). Then once end to end: a build copies the report
//! into its workspace and `JUnitResultArchiver` records it, with the controller's peak RSS
//! reset before and read after.

use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::archive::xml_text;
use crate::client::LineClock;
use crate::dispatch::{build_number, clock_lines};
use crate::rig::{Rig, node_name};
use crate::stats::{Summary, born_and_modified, mbps, ms, reset_peak_rss, status_kib};

mod report;

pub const JOB: &str = "junit";
/// The publisher's read buffer (controller/src/builds/publish.rs).
const READ_BUFFER: usize = 1 << 16;
/// The readings, in the order each run makes them.
const MODES: [&str; 3] = ["read", "events", "parse"];

pub struct Plan {
    /// Test cases in the report.
    pub cases: usize,
    /// Runs of each reading.
    pub runs: usize,
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    let path = rig.scratch.join("TEST-bench.xml");
    let expected = {
        let (path, cases) = (path.clone(), plan.cases);
        tokio::task::spawn_blocking(move || report::write(&path, cases)).await??
    };
    println!(
        "\n== 7. JUnit: a {:.1} MB report ({} cases: {} failed, {} skipped, most with <system-out>), read in a child process, {} run(s) of each reading ==",
        expected.bytes as f64 / 1e6,
        expected.cases,
        expected.failed,
        expected.skipped,
        plan.runs
    );
    let mut figures: Vec<(&str, Vec<Reading>)> = MODES.iter().map(|m| (*m, Vec::new())).collect();
    for _ in 0..plan.runs {
        for (mode, readings) in &mut figures {
            readings.push(child_reading(mode, &path).await?);
        }
    }
    for reading in &figures[2].1 {
        anyhow::ensure!(
            (reading.cases, reading.failed, reading.skipped)
                == (expected.cases, expected.failed, expected.skipped),
            "the parser counted {} cases, {} failed, {} skipped; the report holds {}, {}, {}",
            reading.cases,
            reading.failed,
            reading.skipped,
            expected.cases,
            expected.failed,
            expected.skipped
        );
    }
    println!(
        "median [each run]; peak RSS is the child's VmHWM (the process alone: {} KiB at its start):",
        figures[0].1[0].start_kib
    );
    for (mode, readings) in &figures {
        let secs: Vec<f64> = readings.iter().map(|r| r.secs).collect();
        let median = Summary::new(&secs).pct(0.5);
        let what = match *mode {
            "read" => "baseline: read and discarded   ",
            "events" => "baseline: quick-xml events only",
            _ => "parse_report + add_file        ",
        };
        println!(
            "  {what}  {:.3} s {:?}: {:.0} MB/s; peak RSS {} KiB {:?}",
            median,
            secs.iter()
                .map(|s| (s * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            mbps(expected.bytes, median),
            readings.iter().map(|r| r.hwm_kib).max().unwrap_or(0),
            readings.iter().map(|r| r.hwm_kib).collect::<Vec<_>>()
        );
    }
    let parses = &figures[2].1;
    println!(
        "  counts: {} cases, {} failed, {} skipped, as generated; the result's JSON (written to nowhere) {:.3} s more, peak RSS then {} KiB",
        expected.cases,
        expected.failed,
        expected.skipped,
        Summary::new(&parses.iter().map(|r| r.json_secs).collect::<Vec<_>>()).pct(0.5),
        parses
            .iter()
            .map(|r| r.hwm_after_json_kib)
            .max()
            .unwrap_or(0)
    );
    end_to_end(rig, &path, &expected).await
}

/// What one child printed.
struct Reading {
    secs: f64,
    start_kib: u64,
    hwm_kib: u64,
    cases: usize,
    failed: usize,
    skipped: usize,
    json_secs: f64,
    hwm_after_json_kib: u64,
}

async fn child_reading(mode: &str, path: &Path) -> anyhow::Result<Reading> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args(["--junit-child", mode, "--junit-file"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the {mode} child exited {}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| -> anyhow::Result<f64> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in the child's {text:?}"))
    };
    Ok(Reading {
        secs: field("secs")?,
        start_kib: field("start_kib")? as u64,
        hwm_kib: field("hwm_kib")? as u64,
        cases: field("cases")? as usize,
        failed: field("failed")? as usize,
        skipped: field("skipped")? as usize,
        json_secs: field("json_secs")?,
        hwm_after_json_kib: field("hwm_after_json_kib")? as u64,
    })
}

/// The child: one reading of `path` (`--junit-child MODE --junit-file PATH`), its figures
/// printed as `name=value` words.
pub fn child(mode: &str, path: &Path) -> anyhow::Result<()> {
    let start_kib = status_kib("self", "VmRSS")?;
    let open = || -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(std::io::BufReader::with_capacity(READ_BUFFER, file))
    };
    let t = Instant::now();
    let (mut cases, mut failed, mut skipped) = (0, 0, 0);
    let mut json_secs = 0.0;
    let mut hwm_after_json_kib = 0;
    let secs;
    let hwm_kib;
    match mode {
        "read" => {
            let mut reader = open()?;
            loop {
                let n = reader.fill_buf()?.len();
                if n == 0 {
                    break;
                }
                reader.consume(n);
            }
            secs = t.elapsed().as_secs_f64();
            hwm_kib = status_kib("self", "VmHWM")?;
        }
        "events" => {
            let mut xml = quick_xml::Reader::from_reader(open()?);
            let config = xml.config_mut();
            config.trim_text(false);
            config.check_end_names = true;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                if let quick_xml::events::Event::Eof = xml.read_event_into(&mut buf)? {
                    break;
                }
            }
            secs = t.elapsed().as_secs_f64();
            hwm_kib = status_kib("self", "VmHWM")?;
        }
        "parse" => {
            use steward_protocol::junit::{Limits, TestResult, parse_report};
            let parsed = parse_report(open()?, &Limits::default());
            let mut result = TestResult::new();
            result
                .add_file("r/TEST-bench.xml", parsed)
                .context("the report did not parse")?;
            secs = t.elapsed().as_secs_f64();
            hwm_kib = status_kib("self", "VmHWM")?;
            (cases, failed, skipped) = (result.total(), result.fail_count(), result.skip_count());
            let t = Instant::now();
            serde_json::to_writer(std::io::BufWriter::new(std::io::sink()), &result)?;
            json_secs = t.elapsed().as_secs_f64();
            hwm_after_json_kib = status_kib("self", "VmHWM")?;
        }
        other => bail!("unknown --junit-child mode {other:?}"),
    }
    println!(
        "secs={secs} start_kib={start_kib} hwm_kib={hwm_kib} cases={cases} failed={failed} skipped={skipped} json_secs={json_secs} hwm_after_json_kib={hwm_after_json_kib}"
    );
    Ok(())
}

/// A build copying the report into its workspace and recording it.
async fn end_to_end(rig: &Rig, report: &Path, expected: &report::Expected) -> anyhow::Result<()> {
    let node = node_name(1);
    let script = format!(
        "set +x\nrm -rf r\nmkdir r\ncp '{}' r/TEST-bench.xml\ndate +%s%N",
        report.display()
    );
    let xml = format!(
        "<project><assignedNode>{node}</assignedNode>\
         <builders><hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell></builders>\
         <publishers><hudson.tasks.junit.JUnitResultArchiver><testResults>r/*.xml</testResults></hudson.tasks.junit.JUnitResultArchiver></publishers></project>",
        xml_text(&script)
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    let pid = rig.controller.pid.to_string();
    let rss_before = status_kib(&pid, "VmRSS")?;
    let peak_before = status_kib(&pid, "VmHWM")?;
    reset_peak_rss(rig.controller.pid)?;
    let lines = LineClock::default();
    let out = rig.client.run_lines(&["build", JOB, "-s"], &lines).await?;
    let peak = status_kib(&pid, "VmHWM")?;
    let rss_after = status_kib(&pid, "VmRSS")?;
    let (_, started) = lines
        .find(&format!("Started {JOB} #"))
        .context("no `Started` line")?;
    let number = build_number(&started)?;
    let console_path = rig.console_path(JOB, number);
    let console = std::fs::read_to_string(&console_path)?;
    // UNSTABLE (1): the report has failures.
    let (completed, line) = lines.find("Completed ").context("no `Completed` line")?;
    anyhow::ensure!(
        out.code == 1 && line.contains("UNSTABLE"),
        "build {JOB} -s exited {} ({line}), not UNSTABLE: {}\n{console}",
        out.code,
        out.stderr.trim()
    );
    let step_end = clock_lines(&console)
        .last()
        .context("no clock reading in the console")?;
    let result_path = console_path
        .parent()
        .context("console path")?
        .join("junitResult.json");
    let (_, saved) = born_and_modified(&result_path)?;
    let json_bytes = std::fs::metadata(&result_path)?.len();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&result_path)?)?;
    let counts = (
        json["failCount"].as_u64(),
        json["skipCount"].as_u64(),
        json["passCount"].as_u64(),
    );
    let want = (
        Some(expected.failed as u64),
        Some(expected.skipped as u64),
        Some((expected.cases - expected.failed - expected.skipped) as u64),
    );
    anyhow::ensure!(
        counts == want,
        "junitResult.json counts {counts:?}, expected {want:?}"
    );
    println!(
        "end to end: build #{number} on {node} copies the report into r/ and JUnitResultArchiver records it: UNSTABLE, junitResult.json ({:.1} MB) counts as generated",
        json_bytes as f64 / 1e6
    );
    println!(
        "  step's end -> junitResult.json written {:.2} s ({:.0} MB/s of report: copied from the agent, parsed, compared, saved); -> `Completed` {:.2} s",
        ms(step_end, saved) / 1000.0,
        mbps(expected.bytes, ms(step_end, saved) / 1000.0),
        ms(step_end, completed) / 1000.0
    );
    println!(
        "  controller RSS {rss_before} KiB before, {rss_after} KiB after; peak during the build {peak} KiB (+{} KiB; peak reset before it, was {peak_before} KiB)",
        peak.saturating_sub(rss_before)
    );
    Ok(())
}
