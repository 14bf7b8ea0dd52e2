//! Terminals: `create-terminal`, `get-terminal`, `list-terminals`, `update-terminal`,
//! `delete-terminal`, `start-terminal`, `stop-terminal`, `attach-terminal` (stdin and stdout
//! piped: our `cli` attaches over the WebSocket instead, with a raw terminal and its window
//! size), `replay-terminal` and `list-recordings`.

use std::time::Duration;

use futures_util::FutureExt;
use steward_protocol::duration::utc;
use steward_protocol::shown::Shown;
use steward_protocol::terminals::{ESCAPE_HELP, EscapeReader, Keys};

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::terminals::hub::ToClient;
use crate::terminals::{self, NewTerminal, TerminalChanges, TerminalError, settings};

pub const COMMANDS: &[&Command] = &[
    &CREATE,
    &GET,
    &LIST,
    &UPDATE,
    &DELETE,
    &START,
    &STOP,
    &ATTACH,
    &REPLAY,
    &RECORDINGS,
];

const CREATE: Command = Command {
    name: "create-terminal",
    summary: "Creates a terminal: a long-lived session in a PTY on a node, shared by whoever\n\
              attaches, recorded, and running whether or not anyone is attached.\n\
              -node NODE: where it runs\n\
              -driver cmd: what runs (cmd, the default: a command line, else the login shell)\n\
              -ondemand true|false: start on the first attach and stop 5 minutes after the\n\
              last detach (default false: start now, and again 10 s after the program exits)\n\
              -param K=V: cmd=COMMAND LINE, record-input=true|false (default true),\n\
              keep=N recordings (default 100), keep-days=N",
    usage: "NAME -node NODE [-driver cmd] [-ondemand true|false] [-param K=V]...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| create(ctx).boxed(),
};

const GET: Command = Command {
    name: "get-terminal",
    summary: "Shows a terminal: its node, driver, parameters (secrets as ****), state and clients.\n\
              -json: as JSON",
    usage: "NAME [-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| get(ctx).boxed(),
};

const LIST: Command = Command {
    name: "list-terminals",
    summary: "Lists the terminals: name, node, state, clients and since when, separated by tabs.\n\
              -json: as JSON, with every detail",
    usage: "[-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list(ctx).boxed(),
};

const UPDATE: Command = Command {
    name: "update-terminal",
    summary: "Changes a terminal's settings; a parameter given empty (-param cmd=) is removed.\n\
              A running terminal whose node, driver or command changes starts again with them.",
    usage: "NAME [-node NODE] [-driver cmd] [-ondemand true|false] [-param K=V]...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| update(ctx).boxed(),
};

const DELETE: Command = Command {
    name: "delete-terminal",
    summary: "Deletes terminals: their programs are stopped, their clients disconnected and\n\
              their recordings deleted.",
    usage: "NAME...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete(ctx).boxed(),
};

const START: Command = Command {
    name: "start-terminal",
    summary: "Turns terminals on: they run (an ondemand one on its first attach).",
    usage: "NAME...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| start(ctx).boxed(),
};

const STOP: Command = Command {
    name: "stop-terminal",
    summary: "Turns terminals off: their programs are stopped until start-terminal.",
    usage: "NAME...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| stop(ctx).boxed(),
};

const ATTACH: Command = Command {
    name: "attach-terminal",
    summary: "Attaches to a terminal: its screen, then its output, on stdout; stdin is typed\n\
              into it. ^Ec. detaches, ^Ec? lists the escapes. Our cli attaches over the\n\
              terminal's WebSocket instead, in raw mode with the window's size.\n\
              -read-only: watch only; what you type is dropped",
    usage: "NAME [-read-only]",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| attach(ctx).boxed(),
};

const REPLAY: Command = Command {
    name: "replay-terminal",
    summary: "Plays a terminal's recording on stdout, with its timing (pauses over 2 s cut to 2 s).\n\
              -session ID: which recording (default the latest; list-recordings lists them)\n\
              -speed X: faster (2) or slower (0.5); 0 prints it all at once",
    usage: "NAME [-session ID] [-speed X]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| replay(ctx).boxed(),
};

const RECORDINGS: Command = Command {
    name: "list-recordings",
    summary: "Lists the recordings of a terminal (of all, without NAME): terminal, id, started,\n\
              ended, output bytes and size, separated by tabs.\n\
              -json: as JSON",
    usage: "[NAME] [-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_recordings(ctx).boxed(),
};

impl From<TerminalError> for CommandError {
    fn from(e: TerminalError) -> Self {
        match e {
            TerminalError::Store(s) => CommandError::unexpected("terminal", s),
            TerminalError::Exists(_) => CommandError::IllegalState(e.to_string()),
            other => CommandError::IllegalArgument(other.to_string()),
        }
    }
}

fn params(args: &Args) -> Result<Vec<(String, String)>, CommandError> {
    args.values("-param")
        .into_iter()
        .map(|p| settings::split_param(p).map_err(|e| CommandError::IllegalArgument(e.to_string())))
        .collect()
}

fn ondemand(args: &Args) -> Result<Option<bool>, CommandError> {
    args.value("-ondemand")
        .map(settings::parse_bool)
        .transpose()
        .map_err(|e| CommandError::IllegalArgument(e.to_string()))
}

async fn create(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &[], &["-node", "-driver", "-ondemand", "-param"])?;
    let name = args.one("NAME")?;
    let node = args
        .value("-node")
        .ok_or_else(|| CommandError::BadArgs("Option \"-node\" is required".into()))?;
    let new = NewTerminal {
        name: name.to_owned(),
        node: node.to_owned(),
        driver: args.value("-driver").unwrap_or("cmd").to_owned(),
        ondemand: ondemand(&args)?.unwrap_or(false),
        params: params(&args)?,
    };
    terminals::create(&ctx.state, new, &ctx.actor()).await?;
    Ok(0)
}

async fn get(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    let terminal = terminals::find(&ctx.state, args.one("NAME")?)?;
    let view = terminals::view(&terminal);
    if args.flag("-json") {
        let json = serde_json::to_string_pretty(&view)
            .map_err(|e| CommandError::unexpected("get-terminal", e))?;
        ctx.out.stdout(format!("{json}\n")).await;
        return Ok(0);
    }
    let mut out = format!(
        "Name: {}\nNode: {}\nDriver: {}\nOn demand: {}\nEnabled: {}\nState: {}\n",
        view.name,
        view.node,
        view.driver,
        view.ondemand,
        view.enabled,
        describe(&view.status)
    );
    out.push_str("Parameters:\n");
    for (key, value) in &view.params {
        out.push_str(&format!("  {key}={value}\n"));
    }
    out.push_str(&format!("Clients: {}\n", view.clients.len()));
    for c in &view.clients {
        let mode = if c.read_only {
            "read-only"
        } else {
            "read-write"
        };
        out.push_str(&format!(
            "  {} from {}, {mode}, since {}\n",
            c.user,
            c.address,
            utc(c.since_ms)
        ));
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

fn describe(status: &terminals::Status) -> String {
    match status {
        terminals::Status::Off => "off".into(),
        terminals::Status::Idle => "idle (starts on the first attach)".into(),
        terminals::Status::Waiting { reason } => format!("waiting: {reason}"),
        terminals::Status::Running { run, since_ms, pid } => {
            format!("on since {} (run {run}, pid {pid})", utc(*since_ms))
        }
        terminals::Status::Restarting { at_ms, exit } => {
            format!("restarting at {} (the program {exit})", utc(*at_ms))
        }
    }
}

fn since(status: &terminals::Status) -> String {
    match status {
        terminals::Status::Running { since_ms, .. } => utc(*since_ms),
        terminals::Status::Restarting { at_ms, .. } => utc(*at_ms),
        _ => "-".into(),
    }
}

async fn list(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {extra}"
        )));
    }
    let views: Vec<_> = ctx
        .state
        .terminals
        .all()
        .iter()
        .map(|t| terminals::view(t))
        .collect();
    if args.flag("-json") {
        let json = serde_json::to_string_pretty(&views)
            .map_err(|e| CommandError::unexpected("list-terminals", e))?;
        ctx.out.stdout(format!("{json}\n")).await;
        return Ok(0);
    }
    let mut out = String::new();
    for v in &views {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            Shown(&v.name),
            Shown(&v.node),
            v.status.word(),
            v.clients.len(),
            since(&v.status)
        ));
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

async fn update(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &[], &["-node", "-driver", "-ondemand", "-param"])?;
    let name = args.one("NAME")?;
    let changes = TerminalChanges {
        node: args.value("-node").map(str::to_owned),
        driver: args.value("-driver").map(str::to_owned),
        ondemand: ondemand(&args)?,
        params: params(&args)?,
    };
    terminals::update(&ctx.state, name, changes, &ctx.actor()).await?;
    Ok(0)
}

/// Checks every name first, so a typo changes nothing.
fn all_found(ctx: &Context, names: &[String]) -> Result<(), CommandError> {
    for name in names {
        terminals::find(&ctx.state, name)?;
    }
    Ok(())
}

async fn delete(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    all_found(ctx, &names)?;
    for name in &names {
        terminals::delete(&ctx.state, name, &ctx.actor()).await?;
    }
    Ok(0)
}

async fn start(ctx: &mut Context) -> CommandResult {
    switch(ctx, true).await
}

async fn stop(ctx: &mut Context) -> CommandResult {
    switch(ctx, false).await
}

async fn switch(ctx: &mut Context, on: bool) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    all_found(ctx, &names)?;
    for name in &names {
        terminals::set_enabled(&ctx.state, name, on, &ctx.actor()).await?;
    }
    Ok(0)
}

async fn attach(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalAttach)?;
    let args = Args::parse(&ctx.args, &["-read-only"], &[])?;
    let terminal = terminals::find(&ctx.state, args.one("NAME")?)?;
    let read_only = args.flag("-read-only");
    let mut client = terminal.attach(ctx.identity.name(), "cli", read_only);
    ctx.out.stdout("[Enter '^Ec?' for help]\r\n").await;
    if read_only {
        ctx.out
            .stdout("=== Attached to read-only session ===\r\n")
            .await;
    }
    let mut escapes = EscapeReader::default();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            next = client.queue.next() => match next {
                Some(ToClient::Output(data)) => ctx.out.stdout(data).await,
                Some(ToClient::Message(text)) => ctx.out.stdout(format!("\r\n{text}\r\n")).await,
                Some(ToClient::Closed(why)) => {
                    ctx.out.stdout(format!("\r\n{why}\r\n")).await;
                    return Ok(1);
                }
                None => return Ok(1),
            },
            chunk = ctx.stdin.read_chunk(), if stdin_open => match chunk {
                Some(chunk) => {
                    for keys in escapes.feed(&chunk) {
                        match keys {
                            Keys::Data(data) => client.input(&data).await,
                            Keys::Detach => {
                                ctx.out.stdout("\r\n[detached]\r\n").await;
                                return Ok(0);
                            }
                            Keys::Help => ctx.out.stdout(format!("\r\n{ESCAPE_HELP}\r\n")).await,
                            Keys::Replay => ctx.out.stdout(format!("\r\n{}\r\n", client.replay())).await,
                            Keys::Who => ctx.out.stdout(format!("\r\n{}\r\n", client.who())).await,
                        }
                    }
                }
                // Input ended: stay attached, watching, until the client goes.
                None => stdin_open = false,
            },
            () = ctx.cancel.cancelled() => return Ok(0),
        }
    }
}

async fn list_recordings(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    let name = args.optional_one()?;
    let rows = terminals::recordings(&ctx.state, name).await?;
    if args.flag("-json") {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "terminal": r.terminal, "id": r.id, "run": r.run,
                    "startedMs": r.started_ms, "endedMs": r.ended_ms,
                    "outputBytes": r.output_bytes, "width": r.width, "height": r.height,
                })
            })
            .collect();
        let json = serde_json::to_string_pretty(&list)
            .map_err(|e| CommandError::unexpected("list-recordings", e))?;
        ctx.out.stdout(format!("{json}\n")).await;
        return Ok(0);
    }
    let mut out = String::new();
    for r in &rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}x{}\n",
            r.terminal,
            r.id,
            utc(r.started_ms),
            r.ended_ms.map(utc).unwrap_or_else(|| "-".into()),
            r.output_bytes,
            r.width,
            r.height
        ));
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

/// Longest pause `replay-terminal` keeps.
const MAX_PAUSE: f64 = 2.0;

async fn replay(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::TerminalConfigure)?;
    let args = Args::parse(&ctx.args, &[], &["-session", "-speed"])?;
    let terminal = terminals::find(&ctx.state, args.one("NAME")?)?;
    let speed = match args.value("-speed") {
        None => 1.0,
        Some(text) => match text.parse::<f64>() {
            Ok(speed) if speed.is_finite() && speed >= 0.0 => speed,
            _ => {
                return Err(CommandError::IllegalArgument(format!(
                    "-speed ‘{text}’ is not a number of 0 or more"
                )));
            }
        },
    };
    let rows = terminals::recordings(&ctx.state, Some(&terminal.name)).await?;
    let row = match args.value("-session") {
        Some(id) => rows.iter().find(|r| r.id == id).ok_or_else(|| {
            CommandError::IllegalArgument(format!(
                "Terminal {} has no recording {id}",
                terminal.name
            ))
        })?,
        None => rows.last().ok_or_else(|| {
            CommandError::IllegalArgument(format!("Terminal {} has no recordings", terminal.name))
        })?,
    };
    let path = terminals::recording_path(&terminal, &row.id)
        .ok_or_else(|| CommandError::IllegalArgument(format!("bad recording id {}", row.id)))?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        CommandError::unexpected("replay-terminal", format!("{}: {e}", path.display()))
    })?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(file));
    let mut last = 0.0f64;
    let mut first = true;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| CommandError::unexpected("replay-terminal", e))?
    {
        if std::mem::take(&mut first) {
            continue;
        }
        let Ok(serde_json::Value::Array(event)) = serde_json::from_str::<serde_json::Value>(&line)
        else {
            continue;
        };
        let (Some(time), Some("o"), Some(data)) = (
            event.first().and_then(|t| t.as_f64()),
            event.get(1).and_then(|c| c.as_str()),
            event.get(2).and_then(|d| d.as_str()),
        ) else {
            continue;
        };
        if speed > 0.0 {
            let pause = (time - last).clamp(0.0, MAX_PAUSE) / speed;
            if pause > 0.0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(pause)) => {}
                    () = ctx.cancel.cancelled() => return Ok(0),
                }
            }
        }
        last = time;
        ctx.out.stdout(data.to_owned()).await;
    }
    Ok(0)
}
