//! `copy-to-node` and `copy-from-node`: stream a file between the CLI and a node's agent.
//!
//! Bytes flow through without being gathered: stdin chunks go out as the agent grants
//! credit, and file chunks go to the CLI's bounded output queue as they arrive, so a copy
//! of any size holds at most a window and a few queue slots in memory. The agent writes
//! atomically (a temp file, then rename), so an interrupted `copy-to-node` leaves the old
//! file in place.

use std::pin::pin;

use futures_util::FutureExt;
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{Request, Response};

use super::args::Args;
use super::remote::{RemoteError, node_channel, open, pump_stdin, read_response};
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;

pub const COMMANDS: &[&Command] = &[&COPY_TO_NODE, &COPY_FROM_NODE];

const COPY_TO_NODE: Command = Command {
    name: "copy-to-node",
    summary: "Writes stdin to a file on a node's agent (atomically: a temp file, then rename).",
    usage: "NODE REMOTE_PATH",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| copy_to_node(ctx).boxed(),
};

const COPY_FROM_NODE: Command = Command {
    name: "copy-from-node",
    summary: "Writes a file from a node's agent to stdout.",
    usage: "NODE REMOTE_PATH",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| copy_from_node(ctx).boxed(),
};

/// Reason sent with the RESET when the CLI client went away mid-copy.
const CLIENT_GONE: &str = "the CLI client went away";
/// Exit code of a copy whose client went away; nobody reads it.
const EXIT_CANCELLED: i32 = 130;

/// `NODE REMOTE_PATH`.
fn node_and_path(args: &[String]) -> Result<(String, String), CommandError> {
    let parsed = Args::parse(args, &[], &[])?;
    match parsed.positional.as_slice() {
        [node, path] => Ok((node.clone(), path.clone())),
        [] => Err(CommandError::BadArgs(
            "Argument \"NODE\" is required".into(),
        )),
        [_] => Err(CommandError::BadArgs(
            "Argument \"REMOTE_PATH\" is required".into(),
        )),
        [_, _, extra @ ..] => Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            extra.join(" ")
        ))),
    }
}

/// An answer that is not the one hoped for: the agent's `Error`, or a protocol failure.
fn unwanted(node: &str, response: Response) -> RemoteError {
    match response {
        Response::Error { message } => RemoteError::Answered {
            node: node.to_owned(),
            message,
        },
        other => RemoteError::Malformed {
            node: node.to_owned(),
            reason: format!("unexpected answer {other:?}"),
        },
    }
}

async fn copy_to_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentExec)?;
    let (node, path) = node_and_path(&ctx.args)?;
    let channel = node_channel(&ctx.state, &node).await?;
    let request = Request::WriteFile { path, mode: None };
    let stream = match open(&channel, &node, &request).await {
        Ok(stream) => stream,
        Err(e) => return Ok(e.report(&ctx.out).await),
    };
    let (mut send, mut recv) = stream.into_split();
    let outcome = {
        let mut pump = pin!(pump_stdin(&mut ctx.stdin, &mut send));
        let mut response = pin!(read_response(&mut recv));
        let mut pumping = true;
        loop {
            tokio::select! {
                // The agent answers after our EOF, or early when it cannot write the file.
                answer = &mut response => break Some(answer),
                sent = &mut pump, if pumping => {
                    pumping = false;
                    match sent {
                        Ok(bytes) => tracing::debug!(node = ?node, bytes, "copy-to-node sent"),
                        // A refusal resets our direction; the answer before it explains.
                        Err(e) => tracing::debug!(node = ?node, error = ?e.to_string(), "copy-to-node send stopped"),
                    }
                }
                () = ctx.cancel.cancelled() => break None,
            }
        }
    };
    let result = match outcome {
        None => {
            send.reset(ResetCode::Cancelled, CLIENT_GONE);
            return Ok(EXIT_CANCELLED);
        }
        Some(Ok(Response::Written { .. })) => Ok(0),
        Some(Ok(other)) => Err(unwanted(&node, other)),
        Some(Err(e)) => Err(RemoteError::from_call(&node, e)),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            // Stop a transfer the agent already gave up on.
            send.reset(ResetCode::Cancelled, "copy failed");
            Ok(e.report(&ctx.out).await)
        }
    }
}

async fn copy_from_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentExec)?;
    let (node, path) = node_and_path(&ctx.args)?;
    let channel = node_channel(&ctx.state, &node).await?;
    let request = Request::ReadFile { path, offset: 0 };
    let mut stream = match open(&channel, &node, &request).await {
        Ok(stream) => stream,
        Err(e) => return Ok(e.report(&ctx.out).await),
    };
    // Nothing to send: the request is the whole question.
    if let Err(e) = stream.finish().await {
        return Ok(RemoteError::from_stream(&node, e).report(&ctx.out).await);
    }
    let (send, mut recv) = stream.into_split();
    let copied = {
        let copy = async {
            let size = match read_response(&mut recv).await {
                Ok(Response::FileStart { size }) => size,
                Ok(other) => return Err(unwanted(&node, other)),
                Err(e) => return Err(RemoteError::from_call(&node, e)),
            };
            let mut received = 0u64;
            while let Some(chunk) = recv.recv().await {
                let chunk = chunk.map_err(|e| RemoteError::from_stream(&node, e))?;
                received += chunk.len() as u64;
                ctx.out.stdout(chunk).await;
            }
            tracing::debug!(node = ?node, size, received, "copy-from-node done");
            Ok(received)
        };
        tokio::select! {
            copied = copy => Some(copied),
            () = ctx.cancel.cancelled() => None,
        }
    };
    match copied {
        None => {
            send.reset(ResetCode::Cancelled, CLIENT_GONE);
            Ok(EXIT_CANCELLED)
        }
        Some(Ok(_)) => Ok(0),
        Some(Err(e)) => Ok(e.report(&ctx.out).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn node_and_path_arguments() {
        assert_eq!(
            node_and_path(&v(&["n", "/tmp/x"])).unwrap(),
            ("n".into(), "/tmp/x".into())
        );
        for bad in [&[][..], &["n"], &["n", "a", "b"]] {
            assert!(matches!(
                node_and_path(&v(bad)),
                Err(CommandError::BadArgs(_))
            ));
        }
    }
}
