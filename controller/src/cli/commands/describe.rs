//! `set-build-description` and `set-build-display-name`, as Jenkins has them: text written
//! on a build after the fact (`builds::describe`). Both need Run/Update.

use futures_util::FutureExt;
use steward_protocol::shown::Shown;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::builds::describe::{self, DescribeError, MAX_DESCRIPTION_BYTES};
use crate::builds::{self, FindError};
use crate::jobs;
use crate::store::builds::BuildRow;

pub const COMMANDS: &[&Command] = &[&SET_BUILD_DESCRIPTION, &SET_BUILD_DISPLAY_NAME];

const SET_BUILD_DESCRIPTION: Command = Command {
    name: "set-build-description",
    summary: "Sets the description of a build.\n\
              BUILD#: the build's number (or a permalink such as lastBuild)\n\
              DESCRIPTION: the description to be set; '=' to read it from stdin",
    usage: "JOB BUILD# DESCRIPTION",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| set_build_description(ctx).boxed(),
};

const SET_BUILD_DISPLAY_NAME: Command = Command {
    name: "set-build-display-name",
    summary: "Sets the displayName of a build.\n\
              BUILD#: the build's number (or a permalink such as lastBuild)\n\
              DISPLAYNAME: the name shown in place of #N; '-' to read it from stdin; empty: #N again",
    usage: "JOB BUILD# DISPLAYNAME",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| set_build_display_name(ctx).boxed(),
};

impl From<DescribeError> for CommandError {
    fn from(e: DescribeError) -> Self {
        match e {
            DescribeError::NoSuchBuild(_) | DescribeError::TooLong { .. } => {
                CommandError::IllegalArgument(e.to_string())
            }
            DescribeError::Store(s) => CommandError::unexpected("build", s),
        }
    }
}

/// The three arguments (the third named `text` in messages), the job's stored name, and
/// its build they name. `missing` is Jenkins' message for a build that does not exist,
/// which the two commands word apart.
async fn target(
    ctx: &Context,
    text: &str,
    missing: fn(&str) -> String,
) -> Result<(BuildRow, String), CommandError> {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let [job, which, text] = match args.positional.as_slice() {
        [a, b, c] => [a.clone(), b.clone(), c.clone()],
        [] => return Err(CommandError::BadArgs("Argument \"JOB\" is required".into())),
        [_] => {
            return Err(CommandError::BadArgs(
                "Argument \"BUILD#\" is required".into(),
            ));
        }
        [_, _] => {
            return Err(CommandError::BadArgs(format!(
                "Argument \"{text}\" is required"
            )));
        }
        [_, _, _, extra, ..] => {
            return Err(CommandError::BadArgs(format!(
                "Too many arguments: {}",
                Shown(extra)
            )));
        }
    };
    let job = jobs::get(&ctx.state, &job).await?.name.clone();
    let row = match builds::find(&ctx.state, &job, &which).await {
        Ok(row) => row,
        Err(FindError::NoSuchNumber(n)) => return Err(CommandError::IllegalArgument(missing(&n))),
        Err(e @ (FindError::EmptyPermalink(_) | FindError::Unknown(_))) => {
            return Err(CommandError::IllegalArgument(e.to_string()));
        }
        Err(FindError::Store(e)) => return Err(CommandError::unexpected("build", e)),
    };
    Ok((row, text))
}

/// Reads stdin whole as UTF-8, at most `limit` bytes.
async fn read_stdin(ctx: &mut Context, limit: usize) -> Result<String, CommandError> {
    let bytes = ctx
        .stdin
        .read_to_end(limit)
        .await
        .map_err(|e| CommandError::IllegalArgument(e.to_string()))?;
    String::from_utf8(bytes)
        .map_err(|_| CommandError::IllegalArgument("stdin is not UTF-8 text".into()))
}

async fn set_build_description(ctx: &mut Context) -> CommandResult {
    let (row, text) = target(ctx, "DESCRIPTION", |n| format!("No such build #{n}")).await?;
    ctx.require(Permission::RunUpdate)?;
    let description = if text == "=" {
        read_stdin(ctx, MAX_DESCRIPTION_BYTES).await?
    } else {
        text
    };
    describe::set_description(&ctx.state, &row.job, row.number, &description).await?;
    Ok(0)
}

async fn set_build_display_name(ctx: &mut Context) -> CommandResult {
    let (row, text) = target(ctx, "DISPLAYNAME", |n| format!("Build #{n} does not exist")).await?;
    ctx.require(Permission::RunUpdate)?;
    let name = if text == "-" {
        // A little more than the limit, so a name over it is refused by its length.
        read_stdin(ctx, describe::MAX_DISPLAY_NAME_BYTES + 2).await?
    } else {
        text
    };
    describe::set_display_name(&ctx.state, &row.job, row.number, &name).await?;
    Ok(0)
}
