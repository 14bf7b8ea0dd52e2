//! The bulk-throughput section: per run, the channel without the disk (`Generate`,
//! `Discard`), the channel with files (`ReadFile`, `WriteFile`), the plain WebSocket in
//! both directions without and with the same files (read and written by the same code as
//! the agent's), and the disk alone, interleaved so that a change in the host's speed
//! touches all of them alike. Each starts on a quiet machine ([`rss::settle`]).

use bytes::Bytes;
use serde_json::json;

use crate::bulk::{self, Transfer};
use crate::plain::Plain;
use crate::report::{Report, gbps, median_range, verdict};
use crate::rig::Rig;
use crate::rss;

/// Target: bulk throughput in each direction, GB/s.
pub const TARGET_GBPS: f64 = 1.0;
/// Target: the channel's share of the plain WebSocket's throughput.
pub const TARGET_SHARE: f64 = 0.80;
/// How long each transfer waits for the machine to be quiet before it starts.
const SETTLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What one run measures, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Generate,
    PlainUp,
    ReadFile,
    PlainFileUp,
    Discard,
    PlainDown,
    WriteFile,
    PlainFileDown,
    DiskWrite,
}

const KINDS: [Kind; 9] = [
    Kind::Generate,
    Kind::PlainUp,
    Kind::ReadFile,
    Kind::PlainFileUp,
    Kind::Discard,
    Kind::PlainDown,
    Kind::DiskWrite,
    Kind::WriteFile,
    Kind::PlainFileDown,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Generate => "channel alone  Generate   agent->controller",
            Kind::PlainUp => "plain WS                  peer->parent     ",
            Kind::ReadFile => "channel + file ReadFile   agent->controller",
            Kind::PlainFileUp => "plain WS + file           peer->parent     ",
            Kind::Discard => "channel alone  Discard    controller->agent",
            Kind::PlainDown => "plain WS                  parent->peer     ",
            Kind::WriteFile => "channel + file WriteFile  controller->agent",
            Kind::PlainFileDown => "plain WS + file           parent->peer     ",
            Kind::DiskWrite => "disk alone     as WriteFile, one thread  ",
        }
    }
}

/// CPU seconds per GB moved: this process and the other one (agent or plain peer).
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub here: f64,
    pub there: f64,
}

pub async fn costed(
    other: Option<u32>,
    transfer: impl std::future::Future<Output = anyhow::Result<Transfer>>,
) -> anyhow::Result<(Transfer, Cost)> {
    let cpu = || {
        (
            rss::cpu_secs(None).unwrap_or(0.0),
            other.and_then(|p| rss::cpu_secs(Some(p))).unwrap_or(0.0),
        )
    };
    let before = cpu();
    let t = transfer.await?;
    let after = cpu();
    let gb = t.bytes as f64 / 1e9;
    Ok((
        t,
        Cost {
            here: (after.0 - before.0) / gb,
            there: (after.1 - before.1) / gb,
        },
    ))
}

pub struct Files<'a> {
    /// An existing file of `size` bytes on the agent, for `ReadFile`.
    pub big: &'a str,
    /// Where `WriteFile` writes.
    pub written: &'a str,
    /// Where the plain peer writes the same bytes, on the same disk.
    pub plain_written: &'a str,
}

pub async fn measure(
    runs: u32,
    size: u64,
    rig: &Rig,
    plain: &mut Plain,
    files: Files<'_>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let ch = &rig.channel;
    let chunk: Bytes = bulk::chunk();
    let agent = Some(rig.agent_pid);
    let peer = plain.peer_pid();
    let disk_path = rig.work_dir().join("disk.bin");
    // The first disk-alone run replaces a file of the same size, as WriteFile does.
    bulk::local_disk(disk_path.clone(), size, true).await?;
    let mut results: Vec<Vec<(Transfer, Cost)>> = vec![Vec::new(); KINDS.len()];
    let mut unsettled = 0;
    for run in 0..runs {
        report.line(format!("run {}:", run + 1));
        for (i, kind) in KINDS.into_iter().enumerate() {
            if !rss::settle(SETTLE_DEADLINE).await {
                unsettled += 1;
            }
            let measured = match kind {
                Kind::Generate => costed(agent, bulk::generate(ch, size)).await?,
                Kind::PlainUp => costed(peer, plain.peer_to_parent(size)).await?,
                Kind::ReadFile => costed(agent, bulk::read_file(ch, files.big, 0, None)).await?,
                Kind::PlainFileUp => {
                    costed(peer, plain.peer_file_to_parent(files.big, size)).await?
                }
                Kind::Discard => costed(agent, bulk::discard(ch, size, &chunk)).await?,
                Kind::PlainDown => costed(peer, plain.parent_to_peer(size, &chunk)).await?,
                Kind::WriteFile => {
                    costed(agent, bulk::write_file(ch, files.written, size, &chunk)).await?
                }
                Kind::PlainFileDown => {
                    let written = plain.parent_to_peer_file(files.plain_written, size, &chunk);
                    costed(peer, written).await?
                }
                Kind::DiskWrite => {
                    let t = bulk::local_disk(disk_path.clone(), size, true).await?;
                    (t, Cost::default())
                }
            };
            report.line(line(kind, &measured));
            results[i].push(measured);
        }
    }

    report.line(format!(
        "each transfer started once the machine was quiet (<= 10% busy over 200 ms){}",
        if unsettled == 0 {
            String::new()
        } else {
            format!(
                "; {unsettled} of {} did not settle within {SETTLE_DEADLINE:?} and ran anyway",
                runs as usize * KINDS.len()
            )
        }
    ));
    let of = |kind: Kind| &results[KINDS.iter().position(|k| *k == kind).expect("listed")];
    let mut json = serde_json::Map::new();
    report.line(format!(
        "summary, median [range] of {runs} runs; targets: >= {TARGET_GBPS} GB/s and >= {:.0}% of plain",
        TARGET_SHARE * 100.0
    ));
    for (name, alone, with_file, baseline) in [
        (
            "agent_to_controller",
            Kind::Generate,
            Kind::ReadFile,
            Kind::PlainUp,
        ),
        (
            "controller_to_agent",
            Kind::Discard,
            Kind::WriteFile,
            Kind::PlainDown,
        ),
    ] {
        let plain_rate = rates(of(baseline));
        report.line(format!(
            "{}: plain WS {}",
            name.replace('_', " "),
            show(plain_rate)
        ));
        let mut entry = json!({
            "plain_gbps": plain_rate.0,
            "plain_runs_gbps": runs_gbps(of(baseline)),
            "plain_cpu_secs_per_gb": cpu_per_gb(of(baseline)),
        });
        for (key, kind) in [("channel_alone", alone), ("channel_file", with_file)] {
            let rate = rates(of(kind));
            let share = rate.0 / plain_rate.0;
            report.line(format!(
                "  {:<26} {}  = {:>3.0}% of plain  CPU/GB {:.2} s (plain {:.2} s)  >= 1 GB/s: {}, >= 80%: {}",
                kind.label().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
                show(rate),
                share * 100.0,
                cpu_per_gb(of(kind)),
                cpu_per_gb(of(baseline)),
                verdict(rate.0 >= TARGET_GBPS),
                verdict(share >= TARGET_SHARE),
            ));
            entry[format!("{key}_gbps")] = json!(rate.0);
            entry[format!("{key}_runs_gbps")] = json!(runs_gbps(of(kind)));
            entry[format!("{key}_share")] = json!(share);
            entry[format!("{key}_cpu_secs_per_gb")] = json!(cpu_per_gb(of(kind)));
        }
        // The plain peer moving the same file the same way: what the file costs any
        // sender or receiver, so the share is the channel's own.
        let plain_with_file = if with_file == Kind::ReadFile {
            Kind::PlainFileUp
        } else {
            Kind::PlainFileDown
        };
        let plain_file = rates(of(plain_with_file));
        let rate = rates(of(with_file));
        let share = rate.0 / plain_file.0;
        report.line(format!(
            "  plain WS + the same file  {}; channel + file = {:>3.0}% of it  CPU/GB {:.2} s (plain + file {:.2} s)  >= 80%: {}",
            show(plain_file),
            share * 100.0,
            cpu_per_gb(of(with_file)),
            cpu_per_gb(of(plain_with_file)),
            verdict(share >= TARGET_SHARE),
        ));
        entry["plain_file_gbps"] = json!(plain_file.0);
        entry["plain_file_runs_gbps"] = json!(runs_gbps(of(plain_with_file)));
        entry["plain_file_cpu_secs_per_gb"] = json!(cpu_per_gb(of(plain_with_file)));
        entry["channel_file_share_of_plain_file"] = json!(share);
        if with_file == Kind::WriteFile {
            let disk = rates(of(Kind::DiskWrite));
            let write = rates(of(Kind::WriteFile));
            report.line(format!(
                "  the disk alone in the same runs (new file, fsync, rename over the last one): {}; WriteFile = {:.0}% of it",
                show(disk),
                write.0 / disk.0 * 100.0
            ));
            entry["disk_write_fsync_gbps"] = json!(disk.0);
            entry["disk_write_fsync_runs_gbps"] = json!(runs_gbps(of(Kind::DiskWrite)));
        }
        json.insert(name.to_owned(), entry);
    }
    let _ = std::fs::remove_file(&disk_path);
    let _ = std::fs::remove_file(files.plain_written);
    json.insert("bytes".into(), json!(size));
    json.insert("unsettled".into(), json!(unsettled));
    report.value("bulk", serde_json::Value::Object(json));
    Ok(())
}

fn line(kind: Kind, (t, cost): &(Transfer, Cost)) -> String {
    let mut line = format!("  {} {:.3} GB/s", kind.label(), t.gbps());
    if kind != Kind::DiskWrite {
        line += &format!(
            "  CPU per GB: here {:.2} s + other process {:.2} s = {:.2} s",
            cost.here,
            cost.there,
            cost.here + cost.there
        );
    }
    if let Some(sent) = t.sent_secs {
        line += &format!(
            "; last byte queued at {sent:.3} s ({:.3} GB/s), answered at {:.3} s",
            gbps(t.bytes, sent),
            t.secs
        );
    }
    line
}

fn runs_gbps(list: &[(Transfer, Cost)]) -> Vec<f64> {
    list.iter().map(|(t, _)| t.gbps()).collect()
}

fn rates(list: &[(Transfer, Cost)]) -> (f64, f64, f64) {
    median_range(&runs_gbps(list))
}

fn show((median, lo, hi): (f64, f64, f64)) -> String {
    format!("{median:.3} GB/s [{lo:.3}-{hi:.3}]")
}

fn cpu_per_gb(list: &[(Transfer, Cost)]) -> f64 {
    median_range(
        &list
            .iter()
            .map(|(_, c)| c.here + c.there)
            .collect::<Vec<_>>(),
    )
    .0
}
