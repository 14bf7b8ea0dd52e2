//! `quiet-down` and `cancel-quiet-down`, as Jenkins has them: stop starting builds before a
//! restart, and start them again.

use futures_util::FutureExt;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::builds::quiet::{QuietDown, Quieted, parse_timeout};

pub const COMMANDS: &[&Command] = &[&QUIET_DOWN, &CANCEL_QUIET_DOWN];

const QUIET_DOWN: Command = Command {
    name: "quiet-down",
    summary: "Quiet down Steward, in preparation for a restart. Don't start any builds.\n\
              -block: wait until no build runs\n\
              -timeout MS: with -block, wait at most this many milliseconds (0 or less: no limit)\n\
              -reason TEXT: why, shown as the wait reason of queued builds",
    usage: "[-block] [-timeout MS] [-reason TEXT]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| quiet_down(ctx).boxed(),
};

const CANCEL_QUIET_DOWN: Command = Command {
    name: "cancel-quiet-down",
    summary: "Cancel the effect of the \"quiet-down\" command.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| cancel_quiet_down(ctx).boxed(),
};

async fn quiet_down(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-block"], &["-timeout", "-reason"])?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {extra}"
        )));
    }
    let timeout = match args.value("-timeout") {
        None => None,
        Some(ms) => parse_timeout(ms).ok_or_else(|| {
            CommandError::BadArgs(format!(
                "\"{ms}\" is not a valid value for \"-timeout\" (milliseconds)"
            ))
        })?,
    };
    ctx.require(Permission::OverallAdminister)?;
    let builds = &ctx.state.builds;
    crate::builds::quiet::quiet_down_by(
        &ctx.state,
        QuietDown::new(ctx.identity.name(), args.value("-reason")),
        &ctx.actor(),
    );
    if !args.flag("-block") {
        return Ok(0);
    }
    let quieted = tokio::select! {
        quieted = builds.wait_until_quiet(timeout) => quieted,
        // The client left: stop waiting; the quiet-down stays.
        _ = ctx.cancel.cancelled() => return Ok(0),
    };
    match quieted {
        Quieted::Idle => Ok(0),
        Quieted::TimedOut(running) => {
            ctx.out
                .stderr(format!(
                    "Timed out with {running} build(s) still running; still quieting down\n"
                ))
                .await;
            Ok(0)
        }
        Quieted::Cancelled => Err(CommandError::IllegalState(
            "Quiet-down was cancelled before the running builds ended".into(),
        )),
    }
}

async fn cancel_quiet_down(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    ctx.require(Permission::OverallAdminister)?;
    crate::builds::quiet::cancel_quiet_down_by(&ctx.state, &ctx.actor());
    Ok(0)
}
