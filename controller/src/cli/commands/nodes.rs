//! Node configuration commands: `create-node`, `get-node`, `update-node`, `delete-node`,
//! and our own `list-nodes` (with each node's monitors) and `agent-command`.

use futures_util::FutureExt;
use steward_protocol::node_xml::{NodeConfig, XML_DECLARATION};
use steward_protocol::shown::{Shown, shown, shown_lines};
use steward_protocol::xml::MAX_XML_BYTES;

use super::args::Args;
use super::node_info::{format_bytes, format_rtt, monitors_json};
use super::{Command, CommandError, CommandResult, Context};
use crate::agents::disk_space;
use crate::agents::monitors::Monitors;
use crate::auth::Permission;
use crate::nodes;

pub const COMMANDS: &[&Command] = &[
    &CREATE_NODE,
    &GET_NODE,
    &UPDATE_NODE,
    &DELETE_NODE,
    &LIST_NODES,
    &AGENT_COMMAND,
];

const CREATE_NODE: Command = Command {
    name: "create-node",
    summary: "Creates a new node by reading stdin as a XML configuration.",
    usage: "[NODE]",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| create_node(ctx).boxed(),
};

const GET_NODE: Command = Command {
    name: "get-node",
    summary: "Dumps the node definition XML to stdout.",
    usage: "NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| get_node(ctx).boxed(),
};

const UPDATE_NODE: Command = Command {
    name: "update-node",
    summary: "Updates the node definition XML from stdin. The opposite of the get-node command.",
    usage: "NODE",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| update_node(ctx).boxed(),
};

const DELETE_NODE: Command = Command {
    name: "delete-node",
    summary: "Deletes node(s)",
    usage: "NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete_node(ctx).boxed(),
};

const LIST_NODES: Command = Command {
    name: "list-nodes",
    summary: "Lists nodes with their state, labels and executors (-json for machine-readable output).",
    usage: "[-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_nodes(ctx).boxed(),
};

const AGENT_COMMAND: Command = Command {
    name: "agent-command",
    summary: "Prints the command that starts the agent for a node, secret included.",
    usage: "NODE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| agent_command(ctx).boxed(),
};

/// Reads an XML document of at most [`MAX_XML_BYTES`] from stdin and parses it with
/// `parse`; bad input is exit 3 as `Invalid WHAT XML: reason`.
pub async fn read_xml_stdin<T: Send + 'static, E: std::fmt::Display>(
    ctx: &mut Context,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, E> + Send + 'static,
) -> Result<T, CommandError> {
    let invalid = |why: String| CommandError::IllegalArgument(format!("Invalid {what} XML: {why}"));
    let bytes = ctx
        .stdin
        .read_to_end(MAX_XML_BYTES)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
    // Reading up to MAX_XML_BYTES is CPU work: on the blocking pool, not an async thread.
    tokio::task::spawn_blocking(move || parse(&text).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(format!("the reader stopped: {e}")))
        .map_err(invalid)
}

/// Reads and parses node XML from stdin.
async fn read_node_xml(ctx: &mut Context) -> Result<NodeConfig, CommandError> {
    read_xml_stdin(ctx, "node", NodeConfig::from_xml).await
}

async fn create_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentCreate)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name_override = args.optional_one()?.map(str::to_owned);
    let mut config = read_node_xml(ctx).await?;
    if let Some(name) = name_override {
        config.name = name;
    }
    nodes::create(&ctx.state, config, &ctx.actor()).await?;
    Ok(0)
}

async fn get_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentExtendedRead)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let record = nodes::get(&ctx.state, args.one("NODE")?).await?;
    ctx.out
        .stdout(format!("{XML_DECLARATION}\n{}", record.config.to_xml()))
        .await;
    Ok(0)
}

async fn update_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentConfigure)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = args.one("NODE")?.to_owned();
    nodes::get(&ctx.state, &name).await?;
    let mut config = read_node_xml(ctx).await?;
    if config.name.is_empty() {
        config.name = name.clone();
    }
    nodes::update(&ctx.state, &name, config, &ctx.actor()).await?;
    Ok(0)
}

async fn delete_node(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentDelete)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    for_each_name(ctx, &names, |ctx, name| {
        async move { Ok(nodes::delete(&ctx.state, &name, &ctx.actor()).await?) }.boxed()
    })
    .await
}

/// Runs `action` for each name. With one name its error is the command's; with several,
/// each failure prints `NAME: message` and the command ends with exit 5.
pub async fn for_each_name<'c>(
    ctx: &'c Context,
    names: &[String],
    action: impl Fn(
        &'c Context,
        String,
    ) -> futures_util::future::BoxFuture<'c, Result<(), CommandError>>,
) -> CommandResult {
    // Jenkins takes the names as a set: `delete-node a a` deletes `a` once.
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(name) {
            unique.push(name.clone());
        }
    }
    let names = unique.as_slice();
    if let [only] = names {
        action(ctx, only.clone()).await?;
        return Ok(0);
    }
    let mut failed = false;
    for name in names {
        if let Err(e) = action(ctx, name.clone()).await {
            failed = true;
            ctx.out
                .stderr(format!(
                    "{}: {}\n",
                    Shown(name),
                    shown_lines(&e.to_string())
                ))
                .await;
        }
    }
    if failed {
        Err(CommandError::Partial)
    } else {
        Ok(0)
    }
}

async fn list_nodes(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    Args::none(&args.positional)?;
    let records = nodes::list(&ctx.state).await?;
    let rows: Vec<_> = records
        .iter()
        .map(|r| (r, nodes::status(&ctx.state, r)))
        .collect();
    if args.flag("-json") {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, s)| {
                let mut node = serde_json::json!({
                    "name": r.config.name,
                    "online": s.online,
                    "connected": s.connected,
                    "state": s.describe(),
                    "offlineReason": if s.online { None } else { s.reason.clone() },
                    "status": s.reason,
                    "temporarilyOffline": r.temporarily_offline.is_some(),
                    "labels": r.config.label_list(),
                    "executors": r.config.num_executors,
                    "busyExecutors": ctx.state.builds.busy_on(&r.config.name).len(),
                    "mode": r.config.mode.as_str(),
                    "description": r.config.description,
                    "agentVersion": s.live.as_ref().and_then(|l| l.agent_version.clone()),
                    "remoteAddress": s.live.as_ref().map(|l| l.remote.to_string()),
                    "freeDiskThresholdBytes": s
                        .live
                        .as_ref()
                        .and_then(|l| l.monitors.as_ref()?.disk.as_ref())
                        .map(|d| disk_space::threshold(&r.config, d)),
                });
                if let Some(object) = node.as_object_mut() {
                    object.extend(monitors_json(
                        s.live.as_ref().and_then(|l| l.monitors.as_ref()),
                    ));
                }
                node
            })
            .collect();
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| CommandError::unexpected("list-nodes", e))?;
        ctx.out.stdout(format!("{text}\n")).await;
        return Ok(0);
    }
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|(r, s)| {
            let monitors = s.live.as_ref().and_then(|l| l.monitors.as_ref());
            // Names, labels and offline messages are users' text: shown, not obeyed.
            [
                shown(&r.config.name).into_owned(),
                shown(&s.describe()).into_owned(),
                shown(&r.config.label_list().join(" ")).into_owned(),
                format!(
                    "{}/{}",
                    ctx.state.builds.busy_on(&r.config.name).len(),
                    r.config.num_executors
                ),
                format_rtt(monitors.and_then(|m| m.rtt)),
                monitors
                    .and_then(Monitors::free_disk_bytes)
                    .map_or_else(|| "-".into(), format_bytes),
            ]
        })
        .collect();
    ctx.out
        .stdout(render_table(
            ["NAME", "STATE", "LABELS", "BUSY", "RTT", "FREE DISK"],
            &table,
        ))
        .await;
    Ok(0)
}

/// Left-aligned columns separated by two spaces, by display width (a CJK character takes
/// two columns); the last column is not padded.
fn render_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    use unicode_width::UnicodeWidthStr;
    let mut widths = header.map(|h| h.width());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    // Written straight into one buffer: a fleet's table has tens of thousands of cells.
    let line_len = widths.iter().sum::<usize>() + 2 * N;
    let mut out = String::with_capacity((rows.len() + 1) * line_len);
    let mut line = |cells: [&str; N]| {
        let start = out.len();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.width() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

async fn agent_command(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::AgentConnect)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let record = nodes::get(&ctx.state, args.one("NODE")?).await?;
    if !record.config.is_inbound() {
        return Err(CommandError::IllegalState(format!(
            "{} is not an inbound agent",
            record.config.name
        )));
    }
    ctx.out
        .stdout(agent_command_text(&ctx.state, &record.config))
        .await;
    Ok(0)
}

/// Where the lines [`agent_command_text`] prints keep the node secret, beside the agent.
pub const SECRET_FILE: &str = "secret-file";

/// The lines a user pastes on the agent machine: download, write the secret to a file only
/// its owner reads, run.
///
/// The secret is never an argument of a program: every local user, and every build step,
/// reads a process's arguments (`ps`, `/proc/PID/cmdline`). `printf` is built into every
/// POSIX shell, so writing the file starts no process with it either (as Jenkins' own
/// `echo SECRET > secret-file`); the agent reads it with `-secret @secret-file`. The umask
/// makes a new file private; `chmod` one that was there already.
pub fn agent_command_text(state: &crate::state::AppState, config: &NodeConfig) -> String {
    let root = state.config.root_url.as_str();
    let secret = state.secret_key.node_secret(&config.name);
    let mut run = format!(
        "./agent -webSocket -url {} -name {} -secret @{SECRET_FILE}",
        shell_quote(root),
        shell_quote(&config.name),
    );
    if !config.remote_fs.is_empty() && !config.work_dir_disabled {
        run.push_str(&format!(" -workDir {}", shell_quote(&config.remote_fs)));
    }
    format!(
        "curl -fsSLo agent {} && chmod +x agent\n\
         (umask 077 && printf '%s\\n' {} > {SECRET_FILE}) && chmod 600 {SECRET_FILE}\n\
         {run}\n",
        shell_quote(&format!("{root}jnlpJars/agent")),
        secret.expose()
    )
}

/// Quotes for POSIX shells when needed.
pub fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = [[
            "a".to_string(),
            "online".to_string(),
            "".to_string(),
            "1".to_string(),
        ]];
        assert_eq!(
            render_table(["NAME", "STATE", "LABELS", "EXECUTORS"], &rows),
            "NAME  STATE   LABELS  EXECUTORS\na     online          1\n"
        );
    }

    #[test]
    fn table_aligns_wide_characters_by_display_width() {
        let rows = [
            ["构建机".to_string(), "online".to_string()],
            ["ab".to_string(), "offline".to_string()],
        ];
        // 构建机 takes six columns, as a terminal draws it.
        assert_eq!(
            render_table(["NAME", "STATE"], &rows),
            "NAME    STATE\n构建机  online\nab      offline\n"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("linux-1"), "linux-1");
        assert_eq!(shell_quote("build box"), "'build box'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
