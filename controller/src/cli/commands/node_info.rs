//! `node-info`: what a node's agent reports about its machine (an `Info` call) and the
//! node's monitors, measured afresh; plus the formatting `list-nodes` shares for monitors.

use std::time::Duration;

use futures_util::FutureExt;
use steward_channel::call;
use steward_protocol::services::{AgentInfo, Request, Response};

use super::args::Args;
use super::remote::{RemoteError, node_channel};
use super::{Command, CommandError, CommandResult, Context};
use crate::agents::monitors::{self, INFO_TIMEOUT, Monitors};
use crate::auth::Permission;

pub const COMMANDS: &[&Command] = &[&NODE_INFO];

const NODE_INFO: Command = Command {
    name: "node-info",
    summary: "Shows a node's OS, CPUs, memory, free disk, agent version, clock offset and round trip (-json for machine-readable output).",
    usage: "[-json] NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| node_info(ctx).boxed(),
};

async fn node_info(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentExtendedRead)?;
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    let node = args.one("NODE")?.to_owned();
    let channel = node_channel(&ctx.state, &node).await?;

    let rtt = channel.ping().await.ok();
    let before = monitors::now_ms();
    let answer = tokio::time::timeout(INFO_TIMEOUT, call::call(&channel, &Request::Info)).await;
    let after = monitors::now_ms();
    let info = match answer {
        Ok(Ok(Response::Info(info))) => info,
        Ok(Ok(other)) => {
            return Ok(RemoteError::Malformed {
                node,
                reason: format!("unexpected answer {other:?}"),
            }
            .report(&ctx.out)
            .await);
        }
        Ok(Err(e)) => return Ok(RemoteError::from_call(&node, e).report(&ctx.out).await),
        Err(_) => {
            return Ok(RemoteError::Failed {
                node,
                reason: format!("no answer within {}s", INFO_TIMEOUT.as_secs()),
            }
            .report(&ctx.out)
            .await);
        }
    };
    let sample = Monitors {
        rtt,
        clock_offset_ms: Some(monitors::clock_offset_ms(&info, before, after)),
        free_disk_bytes: Some(info.work_dir_free_bytes),
        sampled_at: std::time::SystemTime::now(),
    };
    // A fresh sample is as good as the watcher's: keep it for list-nodes too.
    if let Some(live) = ctx.state.agents.live(&node) {
        ctx.state
            .agents
            .set_monitors(&node, live.connection_id, sample.clone());
    }

    let text = if args.flag("-json") {
        let json = info_json(&node, &info, &sample);
        let mut text = serde_json::to_string_pretty(&json)
            .map_err(|e| CommandError::unexpected("node-info", e))?;
        text.push('\n');
        text
    } else {
        info_text(&node, &info, &sample)
    };
    ctx.out.stdout(text).await;
    Ok(0)
}

/// `key: value` lines, aligned.
fn info_text(node: &str, info: &AgentInfo, sample: &Monitors) -> String {
    let rows = [
        ("node", node.to_owned()),
        ("os", info.os.clone()),
        ("arch", info.arch.clone()),
        ("cpus", info.cpus.to_string()),
        (
            "memory",
            format!(
                "{} total, {} available",
                format_bytes(info.memory_total_bytes),
                format_bytes(info.memory_available_bytes)
            ),
        ),
        ("work dir", info.work_dir.clone()),
        ("free disk", format_bytes(info.work_dir_free_bytes)),
        ("agent version", info.agent_version.clone()),
        (
            "clock offset",
            sample
                .clock_offset_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:+} ms")),
        ),
        ("round trip", format_rtt(sample.rtt)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}

fn info_json(node: &str, info: &AgentInfo, sample: &Monitors) -> serde_json::Value {
    let mut json = serde_json::json!({
        "name": node,
        "os": info.os,
        "arch": info.arch,
        "cpus": info.cpus,
        "memoryTotalBytes": info.memory_total_bytes,
        "memoryAvailableBytes": info.memory_available_bytes,
        "workDir": info.work_dir,
        "agentVersion": info.agent_version,
        "agentClockMs": info.clock_ms,
    });
    if let Some(object) = json.as_object_mut() {
        object.extend(monitors_json(Some(sample)));
    }
    json
}

/// The monitor fields of the JSON outputs: `rttMs`, `clockOffsetMs`, `freeDiskBytes`
/// (null when not measured).
pub fn monitors_json(sample: Option<&Monitors>) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let rtt_ms = sample.and_then(|m| m.rtt).map(duration_ms);
    map.insert("rttMs".into(), serde_json::json!(rtt_ms));
    map.insert(
        "clockOffsetMs".into(),
        serde_json::json!(sample.and_then(|m| m.clock_offset_ms)),
    );
    map.insert(
        "freeDiskBytes".into(),
        serde_json::json!(sample.and_then(|m| m.free_disk_bytes)),
    );
    map
}

/// Milliseconds with microsecond precision: loopback round trips are well under 1 ms.
fn duration_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A round trip for people: `0.42 ms`, `12.3 ms`, `-` when unknown.
pub fn format_rtt(rtt: Option<Duration>) -> String {
    match rtt.map(duration_ms) {
        None => "-".into(),
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.1} ms"),
    }
}

pub use crate::units::format_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_round_trips() {
        assert_eq!(format_rtt(None), "-");
        assert_eq!(format_rtt(Some(Duration::from_micros(420))), "0.42 ms");
        assert_eq!(format_rtt(Some(Duration::from_micros(12_345))), "12.3 ms");
    }

    #[test]
    fn text_layout() {
        let info = AgentInfo {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpus: 4,
            memory_total_bytes: 8 << 30,
            memory_available_bytes: 6 << 30,
            work_dir: "/w".into(),
            work_dir_free_bytes: 100 << 30,
            agent_version: "0.1.0".into(),
            clock_ms: 0,
        };
        let sample = Monitors {
            rtt: Some(Duration::from_micros(500)),
            clock_offset_ms: Some(-3),
            free_disk_bytes: Some(100 << 30),
            sampled_at: std::time::SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            info_text("n1", &info, &sample),
            "node:          n1\n\
             os:            linux\n\
             arch:          x86_64\n\
             cpus:          4\n\
             memory:        8.0 GiB total, 6.0 GiB available\n\
             work dir:      /w\n\
             free disk:     100.0 GiB\n\
             agent version: 0.1.0\n\
             clock offset:  -3 ms\n\
             round trip:    0.50 ms\n"
        );
    }
}
