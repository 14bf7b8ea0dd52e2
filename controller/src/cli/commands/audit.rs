//! `audit-log`: the audit log (`crate::audit`), oldest entry first, for administrators.

use futures_util::FutureExt;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::audit::query::{self, PAGE};
use crate::auth::Permission;
use crate::store::audit::page;

pub const COMMANDS: &[&Command] = &[&AUDIT_LOG];

const AUDIT_LOG: Command = Command {
    name: "audit-log",
    summary: "Shows the audit log: who did what, when, from where; one entry a line (time, \
              user, action, target, remote address, details), oldest first.\n\
              -since WHEN: from a time (2026-12-02T13:04:05Z) or a duration back (30m, 1h, \
              2d)\n-user USER: only USER's entries\n-json: as a JSON array",
    usage: "[-since WHEN] [-user USER] [-json]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| audit_log(ctx).boxed(),
};

async fn audit_log(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::OverallAdminister)?;
    let args = Args::parse(&ctx.args, &["-json"], &["-since", "-user"])?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            steward_protocol::shown::Shown(extra)
        )));
    }
    let filter = query::filter(
        args.value("-since"),
        args.value("-user"),
        crate::builds::now_ms(),
    )
    .map_err(CommandError::IllegalArgument)?;
    let json = args.flag("-json");
    if json {
        ctx.out.stdout("[").await;
    }
    // A page at a time: the output queue is bounded, so a slow client slows the reading.
    let (mut after, mut first) = (0, true);
    loop {
        let f = filter.clone();
        let rows = ctx
            .state
            .store
            .call(move |c| page(c, &f, after, PAGE))
            .await
            .map_err(|e| CommandError::unexpected("audit-log", e))?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut text = String::new();
        for row in &rows {
            if json {
                if !std::mem::take(&mut first) {
                    text.push(',');
                }
                text.push_str(&query::json(row).to_string());
            } else {
                text.push_str(&query::line(row));
            }
        }
        ctx.out.stdout(text).await;
        if rows.len() < PAGE || ctx.cancel.is_cancelled() {
            break;
        }
    }
    if json {
        ctx.out.stdout("]\n").await;
    }
    Ok(0)
}
