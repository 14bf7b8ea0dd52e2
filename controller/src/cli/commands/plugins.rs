//! `list-plugins [NAME]`, as Jenkins has it: the plugin features Steward carries
//! (`plugins`), in Jenkins' columns. Needs Overall/Administer, as Jenkins asks.

use futures_util::FutureExt;
use steward_protocol::shown::Shown;

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::plugins::{self, PLUGINS};

pub const COMMANDS: &[&Command] = &[&LIST_PLUGINS];

const LIST_PLUGINS: Command = Command {
    name: "list-plugins",
    summary: "Outputs a list of installed plugins: the Jenkins plugins whose features Steward \
              carries, with the release it follows.\n\
              NAME: only this plugin (its short name)",
    usage: "[NAME]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_plugins(ctx).boxed(),
};

async fn list_plugins(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = args.optional_one()?.map(str::to_owned);
    ctx.require(Permission::OverallAdminister)?;
    let shown: Vec<&plugins::Plugin> = match &name {
        None => PLUGINS.iter().collect(),
        Some(name) => vec![plugins::find(name).ok_or_else(|| {
            CommandError::IllegalArgument(format!(
                "No plugin with the name '{}' found",
                Shown(name)
            ))
        })?],
    };
    ctx.out.stdout(plugins::table(&shown)).await;
    Ok(0)
}
