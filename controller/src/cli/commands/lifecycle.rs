//! `session-id`, `restart`, `safe-restart`, `shutdown` and `safe-shutdown`, as Jenkins has
//! them (`lifecycle`). Each answers at once; the controller goes once the answer is out
//! (the safe forms: once no build runs, too). Ending the controller needs
//! Overall/Administer.

use futures_util::FutureExt;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::lifecycle::{self, Exit};

pub const COMMANDS: &[&Command] = &[
    &SESSION_ID,
    &RESTART,
    &SAFE_RESTART,
    &SHUTDOWN,
    &SAFE_SHUTDOWN,
];

const SESSION_ID: Command = Command {
    name: "session-id",
    summary: "Outputs the session ID, which changes every time Steward restarts.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| session_id(ctx).boxed(),
};

const RESTART: Command = Command {
    name: "restart",
    summary: "Restart Steward.\n\
              The controller runs again in place (same arguments, environment and port); \
              running builds go on on their agents and are followed again after the restart.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| end(ctx, Exit::Restart, false).boxed(),
};

const SAFE_RESTART: Command = Command {
    name: "safe-restart",
    summary: "Safely restart Steward: quiet down, wait for running builds to finish, restart.\n\
              -message TEXT: why, shown as the wait reason of queued builds\n\
              cancel-quiet-down before the builds finish cancels the restart.",
    usage: "[-message TEXT]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| end(ctx, Exit::Restart, true).boxed(),
};

const SHUTDOWN: Command = Command {
    name: "shutdown",
    summary: "Immediately shuts down Steward.\n\
              Running builds go on on their agents and are followed again at the next start.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| end(ctx, Exit::Shutdown, false).boxed(),
};

const SAFE_SHUTDOWN: Command = Command {
    name: "safe-shutdown",
    summary: "Puts Steward into the quiet mode, wait for existing builds to be completed, and \
              then shut down Steward.\n\
              cancel-quiet-down before the builds finish cancels the shutdown.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| end(ctx, Exit::Shutdown, true).boxed(),
};

async fn session_id(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    ctx.out
        .stdout(format!("{}\n", ctx.state.lifecycle.session_id()))
        .await;
    Ok(0)
}

/// Asks for `exit` (after a quiet-down when `safe`) once this command's answer is out.
async fn end(ctx: &mut Context, exit: Exit, safe: bool) -> CommandResult {
    // Only safe-restart takes a message, as in Jenkins.
    let options: &[&'static str] = if safe && exit == Exit::Restart {
        &["-message"]
    } else {
        &[]
    };
    let args = Args::parse(&ctx.args, &[], options)?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            steward_protocol::shown::Shown(extra)
        )));
    }
    ctx.require(Permission::OverallAdminister)?;
    lifecycle::end_after(
        &ctx.state,
        exit,
        safe,
        ctx.identity.name(),
        args.value("-message"),
        ctx.answered.clone(),
    );
    Ok(0)
}
