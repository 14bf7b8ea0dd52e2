//! View commands, as Jenkins names them: `get-view`, `create-view`, `update-view`,
//! `delete-view` (`views`). Their XML is Jenkins' list view or all view.

use futures_util::FutureExt;
use steward_protocol::view_xml::{ViewConfig, XML_DECLARATION};

use super::args::Args;
use super::nodes::{for_each_name, read_xml_stdin};
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::{AccessDenied, Permission};
use crate::views::{self, View, ViewError};

pub const COMMANDS: &[&Command] = &[&GET_VIEW, &CREATE_VIEW, &UPDATE_VIEW, &DELETE_VIEW];

const GET_VIEW: Command = Command {
    name: "get-view",
    summary: "Dumps the view definition XML to stdout.",
    usage: "VIEW",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| get_view(ctx).boxed(),
};

const CREATE_VIEW: Command = Command {
    name: "create-view",
    summary: "Creates a new view by reading stdin as a XML configuration.\n\
              NAME: the view's name, instead of the one in the XML\n\
              Views are hudson.model.ListView (<jobNames>, <includeRegex>) or hudson.model.AllView.",
    usage: "[NAME]",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| create_view(ctx).boxed(),
};

const UPDATE_VIEW: Command = Command {
    name: "update-view",
    summary: "Updates the view definition XML from stdin. The opposite of the get-view command.",
    usage: "VIEW",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| update_view(ctx).boxed(),
};

const DELETE_VIEW: Command = Command {
    name: "delete-view",
    summary: "Deletes view(s).",
    usage: "VIEW ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete_view(ctx).boxed(),
};

impl From<ViewError> for CommandError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::NotFound(_)
            | ViewError::Empty
            | ViewError::BadName(_)
            | ViewError::BadXml(_)
            | ViewError::BadRegex { .. }
            | ViewError::KindChange { .. }
            | ViewError::TooLarge(_) => CommandError::IllegalArgument(e.to_string()),
            ViewError::Exists(_) | ViewError::BuiltIn(_) | ViewError::TooMany => {
                CommandError::IllegalState(e.to_string())
            }
            ViewError::Store(s) => CommandError::unexpected("view", s),
        }
    }
}

/// The view, if the caller may read it (`views::readable`).
async fn readable_view(ctx: &Context, name: &str) -> Result<View, CommandError> {
    let view = views::get(&ctx.state, name).await?;
    let names = crate::jobs::readable_names(&ctx.state, &ctx.identity);
    if !views::readable(&ctx.identity, &view, &names) {
        return Err(CommandError::AccessDenied(AccessDenied(format!(
            "{} is missing the {} permission",
            ctx.identity.name(),
            Permission::ViewRead.display_name()
        ))));
    }
    Ok(view)
}

async fn read_view_xml(ctx: &mut Context) -> Result<ViewConfig, CommandError> {
    read_xml_stdin(ctx, "view", ViewConfig::from_xml).await
}

async fn get_view(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let view = readable_view(ctx, args.one("VIEW")?).await?;
    ctx.out
        .stdout(format!("{XML_DECLARATION}\n{}", view.config.to_xml()))
        .await;
    Ok(0)
}

async fn create_view(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = args.optional_one()?.map(str::to_owned);
    ctx.require(Permission::ViewCreate)?;
    let mut config = read_view_xml(ctx).await?;
    if let Some(name) = name {
        config.name = name;
    }
    views::create(&ctx.state, config).await?;
    Ok(0)
}

async fn update_view(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = readable_view(ctx, args.one("VIEW")?)
        .await?
        .config
        .name
        .clone();
    ctx.require(Permission::ViewConfigure)?;
    let config = read_view_xml(ctx).await?;
    views::update(&ctx.state, &name, config).await?;
    Ok(0)
}

async fn delete_view(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("VIEW")?.to_vec();
    for_each_name(ctx, &names, |ctx, name| {
        async move {
            let view = readable_view(ctx, &name).await?;
            ctx.require(Permission::ViewDelete)?;
            views::delete(&ctx.state, view.name()).await?;
            Ok(())
        }
        .boxed()
    })
    .await
}
