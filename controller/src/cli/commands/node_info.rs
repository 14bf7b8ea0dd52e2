//! `node-info`: what a node's agent reports about its machine (an `InfoV2` call, `Info` for
//! an older agent) and the node's monitors, measured afresh and kept as the node's latest
//! sample; plus the formatting `list-nodes` shares for monitors.

use crate::ssh::host_keys::key_fingerprint;
use crate::store::host_keys::HostKey;
use std::time::Duration;

use futures_util::FutureExt;
use steward_channel::call::CallError;

use super::args::Args;
use super::remote::{RemoteError, node_channel};
use super::{Command, CommandError, CommandResult, Context};
use crate::agents::disk_space;
use crate::agents::monitors::{self, Facts, INFO_TIMEOUT, Monitors};
use crate::auth::Permission;
use crate::nodes::{self, NodeStatus};
pub use crate::units::format_bytes;

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
    // The stored name: the argument may be another spelling of it.
    let node = nodes::get(&ctx.state, args.one("NODE")?).await?.config.name;
    let channel = node_channel(&ctx.state, &node).await?;

    let rtt = channel.ping().await.ok();
    let before = monitors::now_ms();
    let answer = tokio::time::timeout(INFO_TIMEOUT, monitors::ask(&channel, &mut false)).await;
    let after = monitors::now_ms();
    let facts = match answer {
        Ok(Ok(facts)) => facts,
        Ok(Err(CallError::BadResponse(reason))) => {
            return Ok(RemoteError::Malformed { node, reason }
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
    let sample = Monitors::from_facts(rtt, &facts, before, after);
    // A fresh sample is as good as the watcher's: keep it for list-nodes and the node's
    // state too (a node low on disk space goes offline or comes back by it).
    if let Some(live) = ctx.state.agents.live(&node) {
        monitors::record(&ctx.state, &node, live.connection_id, sample.clone()).await;
    }
    let record = nodes::get(&ctx.state, &node).await?;
    let status = nodes::status(&ctx.state, &record);
    let host_key = crate::ssh::host_keys::get(&ctx.state, &node)
        .await
        .unwrap_or_default();
    let shown = Shown {
        host_key: &host_key,
        node: &node,
        facts: &facts,
        sample: &sample,
        state: status.describe(),
        threshold: sample
            .disk
            .as_ref()
            .map(|d| disk_space::threshold(&record.config, d)),
    };

    let text = if args.flag("-json") {
        let json = info_json(&shown, &status);
        let mut text = serde_json::to_string_pretty(&json)
            .map_err(|e| CommandError::unexpected("node-info", e))?;
        text.push('\n');
        text
    } else {
        info_text(&shown)
    };
    ctx.out.stdout(text).await;
    Ok(0)
}

/// What `node-info` prints.
struct Shown<'a> {
    node: &'a str,
    facts: &'a Facts,
    sample: &'a Monitors,
    /// The node's state, as `list-nodes` shows it.
    state: String,
    /// The disk-space threshold in effect.
    threshold: Option<u64>,
    /// The agent's SSH host key, and its last change.
    host_key: &'a HostKey,
}

/// `ssh-ed25519 AAAA… (SHA256:…)`, flagged when it changed; `-` when unknown.
fn host_key_text(host_key: &HostKey) -> String {
    let Some(key) = &host_key.key else {
        return "-".to_owned();
    };
    let mut text = format!("{key} ({})", key_fingerprint(key));
    if let (Some(previous), Some(at)) = (&host_key.previous, host_key.changed_ms) {
        text.push_str(&format!(
            " CHANGED at {} (was {}): clients that pinned the old key refuse it",
            steward_protocol::duration::utc(at),
            key_fingerprint(previous)
        ));
    }
    text
}

/// `key: value` lines, aligned.
fn info_text(shown: &Shown<'_>) -> String {
    let info = &shown.facts.info;
    let sample = shown.sample;
    let mut free_disk = format_bytes(info.work_dir_free_bytes);
    if let Some(total) = shown.facts.work_dir_total_bytes {
        free_disk.push_str(&format!(" of {}", format_bytes(total)));
    }
    if let Some(threshold) = shown.threshold {
        free_disk.push_str(&format!(" (threshold {})", format_bytes(threshold)));
    }
    let rows = [
        ("node", shown.node.to_owned()),
        ("state", shown.state.clone()),
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
        ("free disk", free_disk),
        ("agent version", info.agent_version.clone()),
        (
            "clock offset",
            sample
                .clock_offset_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:+} ms")),
        ),
        ("round trip", format_rtt(sample.rtt)),
        ("ssh host key", host_key_text(shown.host_key)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}

fn info_json(shown: &Shown<'_>, status: &NodeStatus) -> serde_json::Value {
    let info = &shown.facts.info;
    let mut json = serde_json::json!({
        "name": shown.node,
        "online": status.online,
        "state": shown.state,
        "offlineReason": if status.online { None } else { status.reason.clone() },
        "os": info.os,
        "arch": info.arch,
        "cpus": info.cpus,
        "memoryTotalBytes": info.memory_total_bytes,
        "memoryAvailableBytes": info.memory_available_bytes,
        "workDir": info.work_dir,
        "agentVersion": info.agent_version,
        "agentClockMs": info.clock_ms,
        "freeDiskThresholdBytes": shown.threshold,
        "sshHostKey": shown.host_key.key,
        "sshHostKeyFingerprint": shown.host_key.key.as_deref().map(key_fingerprint),
        "sshHostKeyPrevious": shown.host_key.previous,
        "sshHostKeyChangedMs": shown.host_key.changed_ms,
    });
    if let Some(object) = json.as_object_mut() {
        object.extend(monitors_json(Some(shown.sample)));
    }
    json
}

/// The monitor fields of the JSON outputs: `rttMs`, `clockOffsetMs`, `freeDiskBytes`,
/// `diskTotalBytes` (null when not measured, or from an agent too old to say).
pub fn monitors_json(sample: Option<&Monitors>) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    let rtt_ms = sample.and_then(|m| m.rtt).map(duration_ms);
    map.insert("rttMs".into(), serde_json::json!(rtt_ms));
    map.insert(
        "clockOffsetMs".into(),
        serde_json::json!(sample.and_then(|m| m.clock_offset_ms)),
    );
    let disk = sample.and_then(|m| m.disk.as_ref());
    map.insert(
        "freeDiskBytes".into(),
        serde_json::json!(disk.map(|d| d.free_bytes)),
    );
    map.insert(
        "diskTotalBytes".into(),
        serde_json::json!(disk.and_then(|d| d.total_bytes)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(format_rtt(None), "-");
        assert_eq!(format_rtt(Some(Duration::from_micros(420))), "0.42 ms");
        assert_eq!(format_rtt(Some(Duration::from_micros(12_345))), "12.3 ms");
    }

    #[test]
    fn text_layout() {
        let facts = Facts {
            info: steward_protocol::services::AgentInfo {
                os: "linux".into(),
                arch: "x86_64".into(),
                cpus: 4,
                memory_total_bytes: 8 << 30,
                memory_available_bytes: 6 << 30,
                work_dir: "/w".into(),
                work_dir_free_bytes: 100 << 30,
                agent_version: "0.1.0".into(),
                clock_ms: 0,
            },
            work_dir_total_bytes: Some(500 << 30),
        };
        let mut sample = Monitors::from_facts(Some(Duration::from_micros(500)), &facts, 0, 0);
        sample.clock_offset_ms = Some(-3);
        let unknown = HostKey::default();
        let mut shown = Shown {
            node: "n1",
            facts: &facts,
            sample: &sample,
            state: "online".into(),
            threshold: Some(1 << 30),
            host_key: &unknown,
        };
        assert_eq!(
            info_text(&shown),
            "node:          n1\n\
             state:         online\n\
             os:            linux\n\
             arch:          x86_64\n\
             cpus:          4\n\
             memory:        8.0 GiB total, 6.0 GiB available\n\
             work dir:      /w\n\
             free disk:     100.0 GiB of 500.0 GiB (threshold 1.0 GiB)\n\
             agent version: 0.1.0\n\
             clock offset:  -3 ms\n\
             round trip:    0.50 ms\n\
             ssh host key:  -\n"
        );
        // A key that changed is flagged, with the one before.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlbW8ta2V5LWZvci1zdGV3YXJkLXRlc3RzLW9ubHk=";
        let changed = HostKey {
            key: Some(key.into()),
            previous: Some(key.into()),
            changed_ms: Some(0),
        };
        shown.host_key = &changed;
        let text = info_text(&shown);
        assert!(
            text.contains(&format!(
                "ssh host key:  {key} ({}) CHANGED at 1970-01-01T00:00:00Z (was {})",
                key_fingerprint(key),
                key_fingerprint(key)
            )),
            "{text}"
        );
        shown.host_key = &unknown;
        // An older agent does not say how big its disk is.
        let older = Facts {
            work_dir_total_bytes: None,
            ..facts.clone()
        };
        shown.facts = &older;
        assert!(
            info_text(&shown).contains("free disk:     100.0 GiB (threshold 1.0 GiB)\n"),
            "{}",
            info_text(&shown)
        );
    }
}
