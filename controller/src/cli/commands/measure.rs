//! `measure-node`: the round trip and the throughput of a node's channel in both
//! directions, without the disk (the agent's `Generate` and `Discard` services). For a
//! user who wonders whether a proxy or the network slows an agent down.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use steward_channel::{Channel, call};
use steward_protocol::channel::MAX_DATA_PAYLOAD;
use steward_protocol::services::{Request, Response};

use super::args::Args;
use super::node_info::{format_bytes, format_rtt};
use super::remote::{RemoteError, node_channel, open, read_response};
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;

pub const COMMANDS: &[&Command] = &[&MEASURE_NODE];

/// Bytes moved each way unless `-size` says otherwise.
const DEFAULT_SIZE_MIB: u64 = 64;
/// The most `-size` may ask for: a measurement, not a load test.
const MAX_SIZE_MIB: u64 = 4096;
/// Pings for the round trip.
const PINGS: usize = 20;

const MEASURE_NODE: Command = Command {
    name: "measure-node",
    summary: "Measures a node's channel: the round trip, and the throughput each way without the disk (-size MiB, default 64; -json for machine-readable output).",
    usage: "[-size MIB] [-json] NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| measure_node(ctx).boxed(),
};

async fn measure_node(ctx: &mut Context) -> CommandResult {
    // It loads the agent's link as a copy would, so it takes what copies take.
    ctx.require(Permission::AgentExec)?;
    let args = Args::parse(&ctx.args, &["-json"], &["-size"])?;
    let node = args.one("NODE")?.to_owned();
    let size_mib = match args.value("-size") {
        None => DEFAULT_SIZE_MIB,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=MAX_SIZE_MIB).contains(&n) => n,
            _ => {
                return Err(CommandError::BadArgs(format!(
                    "-size must be a whole number of MiB from 1 to {MAX_SIZE_MIB}, not \"{text}\""
                )));
            }
        },
    };
    let channel = node_channel(&ctx.state, &node).await?;
    let measured = match measure(&channel, &node, size_mib * 1024 * 1024).await {
        Ok(measured) => measured,
        Err(e) => return Ok(e.report(&ctx.out).await),
    };
    let text = if args.flag("-json") {
        let mut text = serde_json::to_string_pretty(&measured.json(&node))
            .map_err(|e| CommandError::unexpected("measure-node", e))?;
        text.push('\n');
        text
    } else {
        measured.text(&node)
    };
    ctx.out.stdout(text).await;
    Ok(0)
}

struct Measured {
    rtts: Vec<Duration>,
    bytes: u64,
    to_agent: Duration,
    from_agent: Duration,
}

async fn measure(channel: &Channel, node: &str, bytes: u64) -> Result<Measured, RemoteError> {
    let mut rtts = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let rtt = channel
            .ping()
            .await
            .map_err(|e| RemoteError::from_call(node, e.into()))?;
        rtts.push(rtt);
    }
    rtts.sort();
    let to_agent = to_agent(channel, node, bytes).await?;
    let from_agent = from_agent(channel, node, bytes).await?;
    Ok(Measured {
        rtts,
        bytes,
        to_agent,
        from_agent,
    })
}

/// Sends `bytes` for the agent to discard; timed to its answer.
async fn to_agent(channel: &Channel, node: &str, bytes: u64) -> Result<Duration, RemoteError> {
    let chunk = Bytes::from(vec![0x5a; MAX_DATA_PAYLOAD]);
    let started = Instant::now();
    let stream = open(channel, node, &Request::Discard).await?;
    let (mut send, mut recv) = stream.into_split();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        send.send(chunk.slice(..n))
            .await
            .map_err(|e| RemoteError::from_stream(node, e))?;
        left -= n as u64;
    }
    send.finish()
        .await
        .map_err(|e| RemoteError::from_stream(node, e))?;
    match read_response(&mut recv).await {
        Ok(Response::Discarded { bytes: got }) if got == bytes => Ok(started.elapsed()),
        Ok(Response::Discarded { bytes: got }) => Err(RemoteError::Malformed {
            node: node.to_owned(),
            reason: format!("the agent received {got} of {bytes} bytes"),
        }),
        Ok(other) => Err(unexpected(node, &other)),
        Err(e) => Err(RemoteError::from_call(node, e)),
    }
}

/// Asks the agent to send `bytes`; timed to the last one.
async fn from_agent(channel: &Channel, node: &str, bytes: u64) -> Result<Duration, RemoteError> {
    let started = Instant::now();
    let mut stream = call::open(channel, &Request::Generate { bytes })
        .await
        .map_err(|e| RemoteError::from_call(node, e))?;
    stream
        .finish()
        .await
        .map_err(|e| RemoteError::from_stream(node, e))?;
    let mut got = 0u64;
    while let Some(chunk) = stream.recv().await {
        got += chunk.map_err(|e| RemoteError::from_stream(node, e))?.len() as u64;
    }
    if got != bytes {
        return Err(RemoteError::Malformed {
            node: node.to_owned(),
            reason: format!("the agent sent {got} of {bytes} bytes"),
        });
    }
    Ok(started.elapsed())
}

fn unexpected(node: &str, answer: &Response) -> RemoteError {
    match answer {
        Response::Error { message } => RemoteError::Answered {
            node: node.to_owned(),
            message: message.clone(),
        },
        other => RemoteError::Malformed {
            node: node.to_owned(),
            reason: format!("unexpected answer {other:?}"),
        },
    }
}

impl Measured {
    fn rate(&self, took: Duration) -> f64 {
        self.bytes as f64 / took.as_secs_f64().max(1e-9)
    }

    fn median_rtt(&self) -> Duration {
        self.rtts[self.rtts.len() / 2]
    }

    fn text(&self, node: &str) -> String {
        let max = self.rtts.last().copied();
        let rows = [
            ("node", node.to_owned()),
            (
                "round trip",
                format!(
                    "{} median of {} pings, {} max",
                    format_rtt(Some(self.median_rtt())),
                    self.rtts.len(),
                    format_rtt(max)
                ),
            ),
            ("controller -> agent", self.throughput(self.to_agent)),
            ("agent -> controller", self.throughput(self.from_agent)),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        rows.iter()
            .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
            .collect()
    }

    fn throughput(&self, took: Duration) -> String {
        format!(
            "{}/s ({} in {:.3} s)",
            format_bytes(self.rate(took) as u64),
            format_bytes(self.bytes),
            took.as_secs_f64()
        )
    }

    fn json(&self, node: &str) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        serde_json::json!({
            "name": node,
            "rttMedianMs": ms(self.median_rtt()),
            "rttMaxMs": self.rtts.last().copied().map(ms),
            "bytes": self.bytes,
            "toAgentBytesPerSecond": self.rate(self.to_agent).round(),
            "fromAgentBytesPerSecond": self.rate(self.from_agent).round(),
        })
    }
}
