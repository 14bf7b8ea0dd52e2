//! `exec-on-node`: runs a process on a node's agent over the channel, with the CLI's stdin,
//! stdout and stderr streamed end to end, and the pieces the file commands share: finding a
//! node's channel, pumping stdin into a stream, and turning channel failures into messages
//! and exit codes.
//!
//! Flow control is the channel's: stdin waits for the agent's credit, output waits for the
//! CLI client's bounded queue, so a slow side slows the other instead of growing memory.
//! When the CLI client goes away the stream is reset with `Cancelled`, and the agent kills
//! the process group; dropping the stream (the session drops a command whose client left)
//! sends the same reset.

use std::pin::pin;

use bytes::Bytes;
use futures_util::FutureExt;
use steward_channel::call::{self, CallError};
use steward_channel::{Channel, ChannelError, MuxStream, RecvHalf, SendHalf, StreamError};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{self, ExecEvent, ExecRequest, Request, Response};

use super::{Command, CommandError, CommandResult, Context};
use crate::agents::registry::AgentKind;
use crate::auth::Permission;
use crate::cli::io::{Output, Stdin};
use crate::nodes;
use crate::state::AppState;

pub const COMMANDS: &[&Command] = &[&EXEC_ON_NODE];

const EXEC_ON_NODE: Command = Command {
    name: "exec-on-node",
    summary: "Runs a command on a node's agent, streaming stdin, stdout and stderr; exits with its exit code.",
    usage: "NODE [-C DIR] [-e K=V]... [-timeout SECONDS] -- CMD ARGS...",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| exec_on_node(ctx).boxed(),
};

/// Exit code when the process could not be started or waited for, as a shell does for a
/// command it cannot run.
pub const EXIT_CANNOT_RUN: i32 = 127;
/// Exit code when `-timeout` expired and the agent killed the process group, as timeout(1).
pub const EXIT_TIMED_OUT: i32 = 124;
/// Exit codes of processes killed by signal N are this plus N, as in POSIX shells.
pub const EXIT_SIGNAL_BASE: i32 = 128;
/// Exit code of a command whose client went away, as a shell reports Ctrl-C (128 + SIGINT);
/// nobody reads it, but it keeps the session's log meaningful.
const EXIT_CANCELLED: i32 = 130;
/// Reason sent with the RESET when the CLI client went away.
const CLIENT_GONE: &str = "the CLI client went away";

/// Why a command that talks to an agent failed after the node was found.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The channel died mid-command (agent killed, network cut, controller shutdown).
    #[error("connection to agent {node} lost: {reason}")]
    Lost { node: String, reason: String },
    /// The agent does not offer what was asked (an older agent).
    #[error("agent {node} refused the request: {reason}")]
    Refused { node: String, reason: String },
    /// The agent ended the stream with an error.
    #[error("agent {node} failed: {reason}")]
    Failed { node: String, reason: String },
    /// The agent answered the request with an error, e.g. a missing file; the message
    /// names the path and the OS reason.
    #[error("{node}: {message}")]
    Answered { node: String, message: String },
    /// The agent answered something that is not the protocol.
    #[error("malformed answer from agent {node}: {reason}")]
    Malformed { node: String, reason: String },
}

impl RemoteError {
    /// An error answer is exit 3 (a bad argument, like a missing path); refused is exit 4
    /// (the node is in no state to do this); everything else exit 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            RemoteError::Answered { .. } => 3,
            RemoteError::Refused { .. } => 4,
            _ => 1,
        }
    }

    pub fn from_call(node: &str, e: CallError) -> Self {
        let node = node.to_owned();
        match e {
            CallError::Channel(ChannelError::Closed(reason)) => RemoteError::Lost { node, reason },
            CallError::Channel(e) => RemoteError::Failed {
                node,
                reason: e.to_string(),
            },
            CallError::Stream(e) => RemoteError::from_stream(&node, e),
            CallError::BadResponse(reason) => RemoteError::Malformed { node, reason },
        }
    }

    pub fn from_stream(node: &str, e: StreamError) -> Self {
        let node = node.to_owned();
        match e {
            StreamError::ChannelLost(reason) => RemoteError::Lost { node, reason },
            StreamError::Reset {
                code: ResetCode::Refused,
                reason,
            } => RemoteError::Refused { node, reason },
            e => RemoteError::Failed {
                node,
                reason: e.to_string(),
            },
        }
    }

    /// Prints `ERROR: …` and returns the exit code.
    pub async fn report(self, out: &Output) -> i32 {
        out.error(&self.to_string()).await;
        self.exit_code()
    }
}

/// The channel to `node`'s agent: exit 3 for an unknown node, exit 4 when it has none.
pub async fn node_channel(state: &AppState, node: &str) -> Result<Channel, CommandError> {
    // The stored name: `node` may be another spelling of it.
    let node = nodes::get(state, node).await?.config.name;
    let node = node.as_str();
    if let Some(channel) = state.agents.channel(node).filter(|c| !c.is_closed()) {
        return Ok(channel);
    }
    Err(CommandError::IllegalState(match state.agents.live(node) {
        Some(live) if live.kind == AgentKind::JavaRemoting => format!(
            "Node '{node}' is connected with a Java agent.jar, which cannot run commands; use the agent binary from /jnlpJars/agent"
        ),
        Some(_) => format!("Node '{node}' is still connecting; try again in a moment"),
        None => format!("Node '{node}' is offline"),
    }))
}

/// Opens a stream carrying `request` on `node`'s channel.
pub async fn open(
    channel: &Channel,
    node: &str,
    request: &Request,
) -> Result<MuxStream, RemoteError> {
    call::open(channel, request)
        .await
        .map_err(|e| RemoteError::from_call(node, e))
}

/// Sends the CLI's stdin into `send` chunk by chunk, then EOF; returns the bytes sent.
pub async fn pump_stdin(stdin: &mut Stdin, send: &mut SendHalf) -> Result<u64, StreamError> {
    let mut sent = 0u64;
    while let Some(chunk) = stdin.read_chunk().await {
        sent += chunk.len() as u64;
        send.send(chunk).await?;
    }
    send.finish().await?;
    Ok(sent)
}

/// Reads one [`Response`] message, the first DATA of the stream.
pub async fn read_response(recv: &mut RecvHalf) -> Result<Response, CallError> {
    match recv.recv().await {
        Some(Ok(bytes)) => services::decode(&bytes).map_err(CallError::BadResponse),
        Some(Err(e)) => Err(e.into()),
        None => Err(CallError::BadResponse(
            "stream ended before the response".into(),
        )),
    }
}

/// `exec-on-node`'s arguments.
#[derive(Debug, Default, PartialEq, Eq)]
struct ExecArgs {
    node: String,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    timeout_ms: Option<u64>,
    argv: Vec<String>,
}

impl ExecArgs {
    /// Options come before the command; the command starts after `--`, or at the first
    /// word after NODE (so `-e` in a command's own arguments is left alone).
    fn parse(args: &[String]) -> Result<ExecArgs, CommandError> {
        let mut parsed = ExecArgs::default();
        let mut node = None;
        let mut iter = args.iter();
        let value = |iter: &mut std::slice::Iter<'_, String>, option: &str| {
            iter.next().cloned().ok_or_else(|| {
                CommandError::BadArgs(format!("Option \"{option}\" takes an operand"))
            })
        };
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--" => break,
                "-C" | "--C" => parsed.cwd = Some(value(&mut iter, "-C")?),
                "-e" | "--e" => {
                    let pair = value(&mut iter, "-e")?;
                    let (k, v) = pair
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| {
                            CommandError::BadArgs(format!("\"-e {pair}\" is not K=V"))
                        })?;
                    parsed.env.push((k.to_owned(), v.to_owned()));
                }
                "-timeout" | "--timeout" => {
                    let text = value(&mut iter, "-timeout")?;
                    let seconds: u64 = text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        CommandError::BadArgs(format!(
                            "\"-timeout {text}\" is not a positive number of seconds"
                        ))
                    })?;
                    parsed.timeout_ms = Some(seconds.saturating_mul(1000));
                }
                option if option.starts_with('-') && option.len() > 1 => {
                    return Err(CommandError::BadArgs(format!(
                        "\"{option}\" is not a valid option"
                    )));
                }
                word if node.is_none() => node = Some(word.to_owned()),
                word => {
                    parsed.argv.push(word.to_owned());
                    break;
                }
            }
        }
        parsed.argv.extend(iter.cloned());
        parsed.node =
            node.ok_or_else(|| CommandError::BadArgs("Argument \"NODE\" is required".into()))?;
        if parsed.argv.is_empty() {
            return Err(CommandError::BadArgs("Argument \"CMD\" is required".into()));
        }
        Ok(parsed)
    }
}

/// How the remote process ended, as far as the CLI can tell.
enum Ended {
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    Failed(String),
}

async fn exec_on_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentExec)?;
    let args = ExecArgs::parse(&ctx.args)?;
    let node = args.node.clone();
    let channel = node_channel(&ctx.state, &node).await?;
    let request = Request::Exec(ExecRequest {
        argv: args.argv,
        env: args.env,
        cwd: args.cwd,
        stdin: true,
        timeout_ms: args.timeout_ms,
    });
    let stream = match open(&channel, &node, &request).await {
        Ok(stream) => stream,
        Err(e) => return Ok(e.report(&ctx.out).await),
    };
    let (mut send, mut recv) = stream.into_split();
    let Context {
        stdin, out, cancel, ..
    } = ctx;
    let ended = {
        let mut pump = pin!(pump_stdin(stdin, &mut send));
        let mut events = pin!(relay_events(&mut recv, out));
        let mut pumping = true;
        loop {
            tokio::select! {
                ended = &mut events => break Some(ended),
                sent = &mut pump, if pumping => {
                    pumping = false;
                    // A process that exits without reading its stdin resets our direction;
                    // how it ended comes on the event side either way.
                    if let Err(e) = sent {
                        tracing::debug!(node = ?node, error = ?e.to_string(), "exec stdin stopped");
                    }
                }
                () = cancel.cancelled() => break None,
            }
        }
    };
    let ended = match ended {
        None => {
            send.reset(ResetCode::Cancelled, CLIENT_GONE);
            return Ok(EXIT_CANCELLED);
        }
        Some(Ok(ended)) => ended,
        Some(Err(e)) => return Ok(RemoteError::from_stream(&node, e).report(out).await),
    };
    Ok(match ended {
        Ended::Exited {
            timed_out: true, ..
        } => {
            out.error(&format!(
                "timed out on {node}: the process group was killed"
            ))
            .await;
            EXIT_TIMED_OUT
        }
        Ended::Exited {
            code: Some(code), ..
        } => code,
        Ended::Exited {
            signal: Some(signal),
            ..
        } => EXIT_SIGNAL_BASE + signal,
        Ended::Exited { .. } => {
            return Ok(RemoteError::Malformed {
                node,
                reason: "exit without a code or a signal".into(),
            }
            .report(out)
            .await);
        }
        Ended::Failed(error) => {
            out.error(&format!("cannot run the command on {node}: {error}"))
                .await;
            EXIT_CANNOT_RUN
        }
    })
}

/// Copies the process's output to the CLI as it arrives, until it ends.
async fn relay_events(recv: &mut RecvHalf, out: &Output) -> Result<Ended, StreamError> {
    while let Some(message) = recv.recv().await {
        let message = message?;
        let event =
            services::decode::<ExecEvent>(&message).map_err(|reason| StreamError::Reset {
                code: ResetCode::ProtocolError,
                reason: format!("undecodable exec event: {reason}"),
            })?;
        match event {
            ExecEvent::Started { pid } => tracing::debug!(pid, "remote process started"),
            ExecEvent::Stdout(data) => out.stdout(Bytes::from(data)).await,
            ExecEvent::Stderr(data) => out.stderr(Bytes::from(data)).await,
            ExecEvent::Exited {
                code,
                signal,
                timed_out,
            } => {
                return Ok(Ended::Exited {
                    code,
                    signal,
                    timed_out,
                });
            }
            ExecEvent::Failed { error } => return Ok(Ended::Failed(error)),
        }
    }
    Err(StreamError::Reset {
        code: ResetCode::ProtocolError,
        reason: "the exec stream ended without an exit status".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exec_arguments() {
        let a = ExecArgs::parse(&v(&[
            "n1", "-C", "/tmp", "-e", "A=1=2", "--", "sh", "-c", "echo -e",
        ]))
        .unwrap();
        assert_eq!(
            a,
            ExecArgs {
                node: "n1".into(),
                cwd: Some("/tmp".into()),
                env: vec![("A".into(), "1=2".into())],
                timeout_ms: None,
                argv: v(&["sh", "-c", "echo -e"]),
            }
        );
        let b = ExecArgs::parse(&v(&["-timeout", "5", "n1", "ls", "-e", "x"])).unwrap();
        assert_eq!(b.argv, v(&["ls", "-e", "x"]));
        assert_eq!(b.timeout_ms, Some(5000));
    }

    #[test]
    fn bad_exec_arguments() {
        for args in [
            &["n1"][..],
            &["--", "ls"],
            &["n1", "-e", "novalue", "--", "ls"],
            &["n1", "-e", "=1", "--", "ls"],
            &["n1", "-x", "--", "ls"],
            &["n1", "-timeout", "0", "ls"],
            &["n1", "-C"],
        ] {
            assert!(
                matches!(ExecArgs::parse(&v(args)), Err(CommandError::BadArgs(_))),
                "{args:?}"
            );
        }
    }
}
