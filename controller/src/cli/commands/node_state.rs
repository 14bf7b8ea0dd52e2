//! Connection and availability commands: `connect-node`, `disconnect-node`, `offline-node`,
//! `online-node`, `wait-node-online`, `wait-node-offline`.

use futures_util::FutureExt;
use steward_protocol::names;
use steward_protocol::shown::Shown;

use super::args::Args;
use super::nodes::for_each_name;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::nodes::{self, NodeError, built_in};
use crate::store::nodes::OfflineMark;

pub const COMMANDS: &[&Command] = &[
    &CONNECT_NODE,
    &DISCONNECT_NODE,
    &OFFLINE_NODE,
    &ONLINE_NODE,
    &WAIT_ONLINE,
    &WAIT_OFFLINE,
];

const CONNECT_NODE: Command = Command {
    name: "connect-node",
    summary: "Reconnect to a node(s)",
    usage: "[-f] NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| connect_node(ctx).boxed(),
};

const DISCONNECT_NODE: Command = Command {
    name: "disconnect-node",
    summary: "Disconnects from a node.",
    usage: "[-m MESSAGE] NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| disconnect_node(ctx).boxed(),
};

const OFFLINE_NODE: Command = Command {
    name: "offline-node",
    summary: "Stop using a node for performing builds temporarily, until the next \"online-node\" command.",
    usage: "[-m MESSAGE] NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| offline_node(ctx).boxed(),
};

const ONLINE_NODE: Command = Command {
    name: "online-node",
    summary: "Resume using a node for performing builds, to cancel out the earlier \"offline-node\" command.",
    usage: "NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| online_node(ctx).boxed(),
};

const WAIT_ONLINE: Command = Command {
    name: "wait-node-online",
    summary: "Wait for a node to become online.",
    usage: "NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| wait(ctx, true).boxed(),
};

const WAIT_OFFLINE: Command = Command {
    name: "wait-node-offline",
    summary: "Wait for a node to become offline.",
    usage: "NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| wait(ctx, false).boxed(),
};

/// What a NAME of these commands names, as Jenkins resolves a computer.
enum Computer {
    /// The empty name, `(built-in)` or `(master)`.
    BuiltIn,
    /// A node, by its stored name.
    Node(String),
}

/// Resolves `name`; an unknown one is Jenkins' `No such agent "x" exists. Did you mean
/// "y"?`, the nearest node name suggested.
async fn computer(ctx: &Context, name: &str) -> Result<Computer, CommandError> {
    if built_in::is_built_in(name) {
        return Ok(Computer::BuiltIn);
    }
    match nodes::get(&ctx.state, name).await {
        Ok(record) => Ok(Computer::Node(record.config.name)),
        Err(NodeError::NotFound(_)) => {
            let all = nodes::list(&ctx.state).await?;
            let nearest = names::nearest(name, all.iter().map(|r| r.config.name.as_str()));
            Err(CommandError::IllegalArgument(match nearest {
                Some(near) => format!(
                    "No such agent \"{}\" exists. Did you mean \"{}\"?",
                    Shown(name),
                    Shown(near)
                ),
                None => format!("No such agent \"{}\" exists.", Shown(name)),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Inbound agents dial in by themselves, so there is nothing to launch: the command checks
/// the node exists; `-f` drops a live connection so the agent reconnects afresh.
async fn connect_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentConnect)?;
    let args = Args::parse(&ctx.args, &["-f"], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    let force = args.flag("-f");
    for_each_name(ctx, &names, |ctx, name| {
        async move {
            // The built-in node is always connected.
            if let Computer::Node(name) = computer(ctx, &name).await? {
                nodes::connect(&ctx.state, &name, force, &ctx.actor()).await?;
            }
            Ok(())
        }
        .boxed()
    })
    .await
}

async fn disconnect_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentDisconnect)?;
    let args = Args::parse(&ctx.args, &[], &["-m"])?;
    let names = args.at_least_one("NAME")?.to_vec();
    let message = args.value("-m").map(str::to_owned);
    for_each_name(ctx, &names, |ctx, name| {
        let message = message.clone();
        async move {
            // The built-in node has no connection to drop.
            if let Computer::Node(name) = computer(ctx, &name).await? {
                nodes::disconnect(&ctx.state, &name, message.as_deref(), &ctx.actor()).await?;
            }
            Ok(())
        }
        .boxed()
    })
    .await
}

async fn offline_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentDisconnect)?;
    let args = Args::parse(&ctx.args, &[], &["-m"])?;
    let names = args.at_least_one("NAME")?.to_vec();
    let mark = OfflineMark {
        message: args.value("-m").unwrap_or("").to_owned(),
        by: ctx.identity.name().to_owned(),
    };
    for_each_name(ctx, &names, |ctx, name| {
        let mark = mark.clone();
        async move {
            match computer(ctx, &name).await? {
                Computer::BuiltIn => ctx.state.built_in.set_offline(Some(mark)),
                Computer::Node(name) => {
                    nodes::set_temporarily_offline(&ctx.state, &name, Some(mark), &ctx.actor())
                        .await?
                }
            }
            Ok(())
        }
        .boxed()
    })
    .await
}

async fn online_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentConnect)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    for_each_name(ctx, &names, |ctx, name| {
        async move {
            match computer(ctx, &name).await? {
                Computer::BuiltIn => ctx.state.built_in.set_offline(None),
                Computer::Node(name) => {
                    nodes::set_temporarily_offline(&ctx.state, &name, None, &ctx.actor()).await?
                }
            }
            Ok(())
        }
        .boxed()
    })
    .await
}

async fn wait(ctx: &mut Context, online: bool) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = args.one("NODE")?.to_owned();
    match computer(ctx, &name).await? {
        Computer::BuiltIn => {
            if !ctx.state.built_in.wait(online, &ctx.cancel).await {
                return Err(NodeError::Interrupted(name).into());
            }
        }
        Computer::Node(name) => nodes::wait_for(&ctx.state, &name, online, &ctx.cancel).await?,
    }
    Ok(0)
}
