//! The credentials plugin's CLI commands, with its arguments, texts and exit codes, so
//! scripts written for jenkins-cli.jar work: `create-credentials-by-xml`,
//! `update-credentials-by-xml`, `get-credentials-as-xml`, `list-credentials` and
//! `delete-credentials`. The store is `system::system::jenkins`, the domain `_`.

use futures_util::FutureExt;
use steward_protocol::credentials::store::{CommandFailure, StoreError, parse_domain, parse_store};
use steward_protocol::credentials::{Credential, list::render_list};

use super::args::Args;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::credentials::{self, CredentialsError};

pub const COMMANDS: &[&Command] = &[&CREATE, &UPDATE, &GET, &LIST, &DELETE];

const CREATE: Command = Command {
    name: "create-credentials-by-xml",
    summary: "Create Credential by XML\n\
              STORE: system::system::jenkins; DOMAIN: _ (the global domain)",
    usage: "STORE DOMAIN",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| create(ctx).boxed(),
};

const UPDATE: Command = Command {
    name: "update-credentials-by-xml",
    summary: "Updates the Credential identified by its ID with the XML from stdin.\n\
              STORE: system::system::jenkins; DOMAIN: _ (the global domain)",
    usage: "STORE DOMAIN CREDENTIAL",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| update(ctx).boxed(),
};

const GET: Command = Command {
    name: "get-credentials-as-xml",
    summary: "Get a Credentials as XML (secrets redacted)\n\
              STORE: system::system::jenkins; DOMAIN: _ (the global domain)",
    usage: "STORE DOMAIN CREDENTIAL",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| get(ctx).boxed(),
};

const LIST: Command = Command {
    name: "list-credentials",
    summary: "Lists the Credentials in a specific Store\nSTORE: system::system::jenkins",
    usage: "STORE",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list(ctx).boxed(),
};

const DELETE: Command = Command {
    name: "delete-credentials",
    summary: "Deletes a Credential\n\
              STORE: system::system::jenkins; DOMAIN: _ (the global domain)",
    usage: "STORE DOMAIN CREDENTIAL",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete(ctx).boxed(),
};

fn store(id: &str) -> Result<(), CommandError> {
    parse_store(id)
        .map(|_| ())
        .map_err(|e: StoreError| CommandError::BadArgs(format!("{e}\n{}", e.hint())))
}

fn domain(name: &str) -> Result<(), CommandError> {
    parse_domain(name).map(|_| ()).map_err(failure)
}

/// The plugin's failures: `No such domain` is a bad argument (exit 2, with the usage),
/// `No such credential` exit 3, `No change` and `Not deleted` exit 1.
fn failure(f: CommandFailure) -> CommandError {
    match f.exit_code() {
        2 => CommandError::BadArgs(f.to_string()),
        3 => CommandError::IllegalArgument(f.to_string()),
        code => CommandError::Exit(code, f.to_string()),
    }
}

fn from_service(command: &str, e: CredentialsError) -> CommandError {
    match e {
        CredentialsError::Command(f) => failure(f),
        other => CommandError::unexpected(command, other),
    }
}

async fn read_credential(ctx: &mut Context) -> Result<Credential, CommandError> {
    super::nodes::read_xml_stdin(ctx, "credentials", Credential::from_xml).await
}

async fn create(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::CredentialsCreate)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let (store_id, domain_name) = args.two("STORE", "DOMAIN")?;
    store(store_id)?;
    domain(domain_name)?;
    let credential = read_credential(ctx).await?;
    let id = credentials::create(&ctx.state, credential, &ctx.actor())
        .await
        .map_err(|e| from_service("create-credentials-by-xml", e))?;
    tracing::info!(id = ?id, by = ?ctx.identity.name(), "credential created");
    Ok(0)
}

async fn update(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::CredentialsUpdate)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let [store_id, domain_name, id] = three(&args)?;
    store(&store_id)?;
    domain(&domain_name)?;
    // Refused before stdin is read, as the plugin looks the credential up first.
    credentials::get(&ctx.state, &id)
        .await
        .map_err(|e| from_service("update-credentials-by-xml", e))?;
    let credential = read_credential(ctx).await?;
    credentials::update(&ctx.state, &id, credential, &ctx.actor())
        .await
        .map_err(|e| from_service("update-credentials-by-xml", e))?;
    tracing::info!(id = ?id, by = ?ctx.identity.name(), "credential updated");
    Ok(0)
}

async fn get(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::CredentialsView)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let [store_id, domain_name, id] = three(&args)?;
    store(&store_id)?;
    domain(&domain_name)?;
    let credential = credentials::get(&ctx.state, &id)
        .await
        .map_err(|e| from_service("get-credentials-as-xml", e))?;
    ctx.out.stdout(credential.to_xml_redacted()).await;
    Ok(0)
}

async fn list(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::CredentialsView)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    store(args.one("STORE")?)?;
    let all = credentials::list(&ctx.state)
        .await
        .map_err(|e| from_service("list-credentials", e))?;
    ctx.out.stdout(render_list(&all)).await;
    Ok(0)
}

async fn delete(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::CredentialsDelete)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let [store_id, domain_name, id] = three(&args)?;
    store(&store_id)?;
    domain(&domain_name)?;
    credentials::delete(&ctx.state, &id, &ctx.actor())
        .await
        .map_err(|e| from_service("delete-credentials", e))?;
    tracing::info!(id = ?id, by = ?ctx.identity.name(), "credential deleted");
    Ok(0)
}

fn three(args: &Args) -> Result<[String; 3], CommandError> {
    match args.positional.as_slice() {
        [a, b, c] => Ok([a.clone(), b.clone(), c.clone()]),
        [_, _, _, extra, ..] => Err(CommandError::BadArgs(format!(
            "Too many arguments: {}",
            steward_protocol::shown::Shown(extra)
        ))),
        _ => {
            let missing = ["STORE", "DOMAIN", "CREDENTIAL"][args.positional.len()];
            Err(CommandError::BadArgs(format!(
                "Argument \"{missing}\" is required"
            )))
        }
    }
}
