//! Debug access: users' SSH keys (`add-ssh-key`, `list-ssh-keys`, `remove-ssh-key`), nodes'
//! host keys (`ssh-host-keys`, which `cli ssh` and `cli ssh-config` read), and breakpoints
//! (`list-breakpoints`, `extend-breakpoint`, `resume-breakpoint`).

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::FutureExt;
use steward_protocol::duration::{parse_duration, utc};
use steward_protocol::shown::Shown;
use steward_protocol::ssh::TargetName;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::breakpoints;
use crate::ssh::keys::{self, KeysError};
use crate::ssh::targets::{self, TargetError};

pub const COMMANDS: &[&Command] = &[
    &ADD_SSH_KEY,
    &LIST_SSH_KEYS,
    &REMOVE_SSH_KEY,
    &SSH_HOST_KEYS,
    &LIST_BREAKPOINTS,
    &EXTEND_BREAKPOINT,
    &RESUME_BREAKPOINT,
];

/// Most bytes `add-ssh-key` reads: 64 RSA-16384 keys with long comments fit.
const MAX_KEYS_INPUT: usize = 256 * 1024;

const ADD_SSH_KEY: Command = Command {
    name: "add-ssh-key",
    summary: "Adds SSH public keys, read from stdin (one per line, as in ~/.ssh/*.pub or\n\
              authorized_keys), to your keys: they log you in to nodes and builds over SSH.\n\
              Prints each key's fingerprint. All are checked before any is added.",
    usage: "< id.pub",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| add_ssh_key(ctx).boxed(),
};

const LIST_SSH_KEYS: Command = Command {
    name: "list-ssh-keys",
    summary: "Lists your SSH public keys: fingerprint, type, comment, when added.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_ssh_keys(ctx).boxed(),
};

const REMOVE_SSH_KEY: Command = Command {
    name: "remove-ssh-key",
    summary: "Removes one of your SSH public keys, named by its fingerprint (SHA256:…).",
    usage: "FINGERPRINT",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| remove_ssh_key(ctx).boxed(),
};

const SSH_HOST_KEYS: Command = Command {
    name: "ssh-host-keys",
    summary: "Prints the SSH host key of each target's node, for known_hosts: one line each,\n\
              TARGET, NODE, KEY and FINGERPRINT separated by tabs (KEY and FINGERPRINT are\n\
              `-` until the node's agent has reported one). TARGET is NODE or JOB#N;\n\
              without one, every node.",
    usage: "[TARGET]...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| ssh_host_keys(ctx).boxed(),
};

const LIST_BREAKPOINTS: Command = Command {
    name: "list-breakpoints",
    summary: "Lists the builds held at a breakpoint: job, build, node, expiry and clients,\n\
              separated by tabs.\n\
              -json: as JSON, with every detail",
    usage: "[-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_breakpoints(ctx).boxed(),
};

const EXTEND_BREAKPOINT: Command = Command {
    name: "extend-breakpoint",
    summary: "Extends a build's breakpoint, within the job's maxDuration; prints the new expiry.\n\
              -for DURATION: how much to add, e.g. 30m, 2h (default 30m)",
    usage: "JOB BUILD [-for DURATION]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| extend_breakpoint(ctx).boxed(),
};

const RESUME_BREAKPOINT: Command = Command {
    name: "resume-breakpoint",
    summary: "Ends a build's breakpoint now: its sessions are closed and the build finishes\n\
              with the result it had.",
    usage: "JOB BUILD",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| resume_breakpoint(ctx).boxed(),
};

impl From<KeysError> for CommandError {
    fn from(e: KeysError) -> Self {
        match e {
            KeysError::Store(s) => CommandError::unexpected("ssh key", s),
            KeysError::TakenByOther(_) | KeysError::TooMany => {
                CommandError::IllegalState(e.to_string())
            }
            other => CommandError::IllegalArgument(other.to_string()),
        }
    }
}

impl From<TargetError> for CommandError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::NotFound(why) => CommandError::IllegalArgument(why),
            TargetError::Denied(denied) => CommandError::AccessDenied(denied),
            TargetError::Unavailable(why) => CommandError::IllegalState(why),
            TargetError::Store(s) => CommandError::unexpected("ssh", s),
        }
    }
}

async fn add_ssh_key(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    let input = ctx.stdin.read_to_end(MAX_KEYS_INPUT).await.map_err(|_| {
        CommandError::IllegalArgument(format!(
            "more than {} KiB of keys on stdin",
            MAX_KEYS_INPUT / 1024
        ))
    })?;
    let text = String::from_utf8(input)
        .map_err(|_| CommandError::IllegalArgument("the keys are not UTF-8 text".into()))?;
    let added = keys::add(&ctx.state, &ctx.actor(), &text).await?;
    let mut out = String::new();
    for key in added {
        let _ = writeln!(
            out,
            "{} {} {}{}",
            key.row.fingerprint,
            keys::type_name(&key.row.public_key),
            Shown(&key.row.comment),
            if key.new { "" } else { " (already yours)" }
        );
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

async fn list_ssh_keys(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    let rows = keys::list(&ctx.state, ctx.identity.name()).await?;
    let mut out = String::new();
    for row in rows {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}",
            row.fingerprint,
            keys::type_name(&row.public_key),
            Shown(&row.comment),
            utc(row.added_ms)
        );
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

async fn remove_ssh_key(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let fingerprint = args.one("FINGERPRINT")?;
    keys::remove(&ctx.state, &ctx.actor(), fingerprint).await?;
    Ok(0)
}

async fn ssh_host_keys(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let targets: Vec<String> = if args.positional.is_empty() {
        crate::nodes::list(&ctx.state)
            .await
            .map_err(CommandError::from)?
            .iter()
            .map(|r| r.config.name.clone())
            .collect()
    } else {
        args.positional.clone()
    };
    let mut out = String::new();
    for text in targets {
        let target = TargetName::parse(&text).map_err(CommandError::IllegalArgument)?;
        let node = targets::node_of(&ctx.state, &target).await?;
        let (key, fingerprint) = match crate::ssh::host_keys::get(&ctx.state, &node)
            .await
            .and_then(|k| k.key)
        {
            Some(key) => {
                let fingerprint = crate::ssh::host_keys::key_fingerprint(&key);
                (key, fingerprint)
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(out, "{text}\t{node}\t{key}\t{fingerprint}");
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

async fn list_breakpoints(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-json"], &[])?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            Shown(extra)
        )));
    }
    let statuses: Vec<_> = ctx
        .state
        .breakpoints
        .all()
        .iter()
        .map(|held| held.status(&ctx.state))
        .collect();
    if args.flag("-json") {
        let json = serde_json::to_string_pretty(&statuses)
            .map_err(|e| CommandError::unexpected("list-breakpoints", e))?;
        ctx.out.stdout(format!("{json}\n")).await;
        return Ok(0);
    }
    let mut out = String::new();
    for status in statuses {
        let clients = if status.clients.is_empty() {
            "-".to_owned()
        } else {
            status
                .clients
                .iter()
                .map(|c| format!("{}@{}", Shown(&c.user), c.address))
                .collect::<Vec<_>>()
                .join(",")
        };
        let expires = status.hold_until_ms.map_or(status.expires_ms, |h| {
            status.expires_ms.max(h.min(status.max_expires_ms))
        });
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{clients}",
            Shown(&status.job),
            status.number,
            Shown(&status.node),
            utc(expires)
        );
    }
    ctx.out.stdout(out).await;
    Ok(0)
}

/// The breakpoint of `JOB BUILD`, once the caller may debug it.
async fn held_build(
    ctx: &Context,
    args: &Args,
) -> Result<std::sync::Arc<breakpoints::Held>, CommandError> {
    let (job, number) = args.two("JOB", "BUILD")?;
    let job = ctx.job(job, Permission::JobDebug).await?.name.clone();
    let number = number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            CommandError::IllegalArgument(format!("‘{}’ is not a build number", Shown(number)))
        })?;
    breakpoints::find(&ctx.state, &job, number).map_err(CommandError::IllegalState)
}

async fn extend_breakpoint(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &["-for"])?;
    let by = match args.value("-for") {
        None => breakpoints::DEFAULT_EXTENSION,
        Some(text) => parse_duration(text)
            .ok()
            .filter(|d| *d > Duration::ZERO)
            .ok_or_else(|| {
                CommandError::BadArgs(format!(
                    "\"{}\" is not a valid value for \"-for\" (a duration such as 30m or 2h)",
                    Shown(text)
                ))
            })?,
    };
    let held = held_build(ctx, &args).await?;
    let line = breakpoints::extend(&ctx.state, &held, by, ctx.identity.name(), &ctx.actor());
    ctx.out.stdout(format!("{line}\n")).await;
    Ok(0)
}

async fn resume_breakpoint(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let held = held_build(ctx, &args).await?;
    breakpoints::resume(&held, ctx.identity.name(), "resume-breakpoint");
    Ok(0)
}
