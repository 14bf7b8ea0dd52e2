//! `who-am-i`, `help` and `version`.

use futures_util::FutureExt;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;

pub const COMMANDS: &[&Command] = &[&WHO_AM_I, &HELP, &VERSION];

const WHO_AM_I: Command = Command {
    name: "who-am-i",
    summary: "Reports your credential and permissions.",
    usage: "",
    needs_overall_read: false,
    reads_stdin: false,
    run: |ctx| who_am_i(ctx).boxed(),
};

const HELP: Command = Command {
    name: "help",
    summary: "Lists all the available commands or a detailed description of single command.",
    usage: "[COMMAND]",
    needs_overall_read: false,
    reads_stdin: false,
    run: |ctx| help(ctx).boxed(),
};

const VERSION: Command = Command {
    name: "version",
    summary: "Outputs the current version: the Jenkins version Steward answers as (X-Jenkins).\n\
              -v: also Steward's own version (X-Steward-Version)",
    usage: "[-v]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| version(ctx).boxed(),
};

async fn who_am_i(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    let mut text = format!("Authenticated as: {}\nAuthorities:\n", ctx.identity.name());
    for authority in ctx.identity.authorities() {
        text.push_str(&format!("  {authority}\n"));
    }
    ctx.out.stdout(text).await;
    Ok(0)
}

/// How to call the CLI with credentials, for `help` without them.
const SIGN_IN_USAGE: &str = "\
Usage: cli [-s URL] -auth USER:TOKEN COMMAND [ARGS...]
   or: java -jar jenkins-cli.jar -s URL -auth USER:TOKEN COMMAND [ARGS...]
Credentials: -auth USER:TOKEN or USER:PASSWORD (@FILE reads them from a file),
-bearer TOKEN, or the JENKINS_USER_ID and JENKINS_API_TOKEN variables.
Tokens come from create-api-token; admin's first one is in HOME/secrets/initialAdminToken.
Run 'help' with credentials for the list of commands.";

async fn help(ctx: &mut Context) -> CommandResult {
    if !ctx.identity.has(Permission::OverallRead) {
        // As Jenkins' `help`: the refusal, then how to call with credentials.
        return Err(CommandError::AccessDenied(crate::auth::AccessDenied(
            format!("You must authenticate to access this Jenkins.\n{SIGN_IN_USAGE}"),
        )));
    }
    let args = Args::parse(&ctx.args, &[], &[])?;
    let every_command = || -> String {
        super::all()
            .iter()
            .map(|c| format!("  {}\n    {}\n", c.name, c.short_description()))
            .collect()
    };
    let text = match args.optional_one()? {
        Some(name) => match super::find(name) {
            Some(command) => format!(
                "cli {} {}\n{}\n",
                command.name, command.usage, command.summary
            ),
            None => {
                // As Jenkins' `help`: the list, then the error under it, exit 5.
                ctx.out.stderr(every_command()).await;
                return Err(CommandError::Aborted(format!(
                    "No such command {}. Available commands are above.",
                    steward_protocol::shown::Shown(name)
                )));
            }
        },
        None => every_command(),
    };
    ctx.out.stderr(text).await;
    Ok(0)
}

/// The Jenkins version, as `X-Jenkins` says (clients compare it); `-v` adds Steward's own.
async fn version(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &["-v"], &[])?;
    if let Some(extra) = args.positional.first() {
        return Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            steward_protocol::shown::Shown(extra)
        )));
    }
    let mut text = format!("{}\n", crate::http::JENKINS_COMPAT_VERSION);
    if args.flag("-v") {
        text.push_str(&format!("Steward {}\n", steward_protocol::STEWARD_VERSION));
    }
    ctx.out.stdout(text).await;
    Ok(0)
}
