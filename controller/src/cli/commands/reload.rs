//! `reload-job` and `reload-configuration`, as Jenkins has them: configuration read again
//! from where it lives. In Steward that is `steward.db` (`jobs::reload`): jobs are parsed
//! and checked anew and the in-memory copy that builds, REST and triggers use is replaced;
//! `reload-configuration` reads the nodes again too. Views, users, grants and credentials
//! are read from the store on every use and need no reload.

use futures_util::FutureExt;
use steward_protocol::shown::Shown;

use super::args::Args;
use super::nodes::for_each_name;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::jobs::reload::{self, Reloaded};

pub const COMMANDS: &[&Command] = &[&RELOAD_JOB, &RELOAD_CONFIGURATION];

const RELOAD_JOB: Command = Command {
    name: "reload-job",
    summary: "Reload job(s): read their configuration again from the controller's database.",
    usage: "JOB ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| reload_job(ctx).boxed(),
};

const RELOAD_CONFIGURATION: Command = Command {
    name: "reload-configuration",
    summary: "Discard all the loaded data in memory and reload everything from the \
              controller's database. Useful when you modified it directly.",
    usage: "",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| reload_configuration(ctx).boxed(),
};

async fn reload_job(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("JOB")?.to_vec();
    for_each_name(ctx, &names, |ctx, name| {
        async move {
            ctx.require(Permission::JobConfigure)?;
            match reload::reload(&ctx.state, &name).await? {
                Reloaded::Ready(warnings) => {
                    let text: String = warnings.iter().map(|w| format!("{w}\n")).collect();
                    ctx.out.stderr(text).await;
                    Ok(())
                }
                Reloaded::Unreadable(why) => Err(CommandError::unexpected("reload-job", why)),
            }
        }
        .boxed()
    })
    .await
}

async fn reload_configuration(ctx: &mut Context) -> CommandResult {
    Args::none(&ctx.args)?;
    ctx.require(Permission::OverallAdminister)?;
    ctx.state.node_list.invalidate();
    let jobs = reload::reload_all(&ctx.state).await?;
    let mut text = String::new();
    for (name, outcome) in &jobs {
        match outcome {
            Reloaded::Ready(warnings) => {
                for warning in warnings {
                    text.push_str(&format!("{}: {warning}\n", Shown(name)));
                }
            }
            Reloaded::Unreadable(why) => {
                text.push_str(&format!(
                    "WARNING: job {} cannot be read, builds of it are refused: {why}\n",
                    Shown(name)
                ));
            }
        }
    }
    tracing::info!(by = ?ctx.identity.name(), jobs = jobs.len(), "configuration reloaded");
    ctx.out.stderr(text).await;
    Ok(0)
}
