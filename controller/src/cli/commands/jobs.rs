//! Job configuration commands, as Jenkins names them (compat §7.3): `create-job`, `get-job`,
//! `update-job`, `delete-job`, `copy-job`, `list-jobs`, `enable-job`, `disable-job`.

use futures_util::FutureExt;
use steward_protocol::job_xml::JOB_XML_DECLARATION;
use steward_protocol::job_xml::JobConfig;

use super::args::Args;
use super::nodes::{for_each_name, read_xml_stdin};
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;
use crate::jobs::{self, JobError};

pub const COMMANDS: &[&Command] = &[
    &CREATE_JOB,
    &GET_JOB,
    &UPDATE_JOB,
    &DELETE_JOB,
    &COPY_JOB,
    &LIST_JOBS,
    &ENABLE_JOB,
    &DISABLE_JOB,
];

const CREATE_JOB: Command = Command {
    name: "create-job",
    summary: "Creates a new job by reading stdin as a configuration XML file.",
    usage: "NAME",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| create_job(ctx).boxed(),
};

const GET_JOB: Command = Command {
    name: "get-job",
    summary: "Dumps the job definition XML to stdout.",
    usage: "JOB",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| get_job(ctx).boxed(),
};

const UPDATE_JOB: Command = Command {
    name: "update-job",
    summary: "Updates the job definition XML from stdin. The opposite of the get-job command.",
    usage: "JOB",
    needs_overall_read: true,
    reads_stdin: true,
    run: |ctx| update_job(ctx).boxed(),
};

const DELETE_JOB: Command = Command {
    name: "delete-job",
    summary: "Deletes job(s).",
    usage: "NAME ...",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| delete_job(ctx).boxed(),
};

const COPY_JOB: Command = Command {
    name: "copy-job",
    summary: "Copies a job.",
    usage: "SRC DST",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| copy_job(ctx).boxed(),
};

const LIST_JOBS: Command = Command {
    name: "list-jobs",
    summary: "Lists all jobs in a specific view or item group.\n\
              VIEW: only the jobs of this view (default: all)",
    usage: "[VIEW]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_jobs(ctx).boxed(),
};

const ENABLE_JOB: Command = Command {
    name: "enable-job",
    summary: "Enables a job.",
    usage: "NAME",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| enable_job(ctx).boxed(),
};

const DISABLE_JOB: Command = Command {
    name: "disable-job",
    summary: "Disables a job.",
    usage: "NAME",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| disable_job(ctx).boxed(),
};

impl From<JobError> for CommandError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound { .. }
            | JobError::BadName(_)
            | JobError::TooLarge(_)
            | JobError::Ignored(_)
            | JobError::BadTrigger(_) => CommandError::IllegalArgument(e.to_string()),
            JobError::Exists(_)
            | JobError::LooksLike { .. }
            | JobError::Building
            | JobError::NumberTooLow { .. } => CommandError::IllegalState(e.to_string()),
            JobError::Denied(denied) => CommandError::AccessDenied(denied),
            JobError::Store(s) => CommandError::unexpected("job", s),
        }
    }
}

/// Reads and parses job XML from stdin.
async fn read_job_xml(ctx: &mut Context) -> Result<JobConfig, CommandError> {
    read_xml_stdin(ctx, "job", JobConfig::from_xml).await
}

async fn create_job(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::JobCreate)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    // Refuse a bad or taken name (or one like a taken one) before reading stdin, as Jenkins
    // does; the name to use is in NFC.
    let name = jobs::check_new_name(&ctx.state, args.one("NAME")?).await?;
    let config = read_job_xml(ctx).await?;
    let warnings = warnings(&config);
    jobs::create(&ctx.state, &name, config, &ctx.actor()).await?;
    ctx.out.stderr(warnings).await;
    Ok(0)
}

/// One `WARNING: Steward ignores …` line for each element the job holds that builds run
/// without.
fn warnings(config: &JobConfig) -> String {
    config
        .ignored()
        .iter()
        .map(|i| format!("{}\n", i.warning()))
        .collect()
}

async fn get_job(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let record = ctx
        .job(args.one("JOB")?, Permission::JobExtendedRead)
        .await?;
    ctx.out
        .stdout(format!("{JOB_XML_DECLARATION}\n{}", record.xml))
        .await;
    Ok(0)
}

async fn update_job(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = ctx
        .job(args.one("JOB")?, Permission::JobConfigure)
        .await?
        .name
        .clone();
    let config = read_job_xml(ctx).await?;
    let warnings = warnings(&config);
    jobs::update(&ctx.state, &name, config, &ctx.actor()).await?;
    ctx.out.stderr(warnings).await;
    Ok(0)
}

async fn delete_job(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let names = args.at_least_one("NAME")?.to_vec();
    for_each_name(ctx, &names, |ctx, name| {
        async move {
            // Jenkins' delete-job names the job it did not find, and suggests none.
            let name =
                match jobs::get_as(&ctx.state, &ctx.identity, &name, Permission::JobDelete).await {
                    Ok(record) => record.name.clone(),
                    Err(JobError::NotFound { name, .. }) => {
                        return Err(JobError::not_found(&name).into());
                    }
                    Err(e) => return Err(e.into()),
                };
            Ok(jobs::delete(&ctx.state, &name, &ctx.actor()).await?)
        }
        .boxed()
    })
    .await
}

async fn copy_job(ctx: &mut Context) -> CommandResult {
    ctx.require(Permission::JobCreate)?;
    let args = Args::parse(&ctx.args, &[], &[])?;
    let (from, to) = args.two("SRC", "DST")?;
    // Jenkins asks to read the source's configuration too.
    let from = ctx
        .job(from, Permission::JobExtendedRead)
        .await?
        .name
        .clone();
    jobs::copy(&ctx.state, &from, to, &ctx.actor()).await?;
    Ok(0)
}

async fn list_jobs(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    // Only the jobs the caller may read, as Jenkins lists them.
    let all = jobs::readable_names(&ctx.state, &ctx.identity);
    // Jenkins takes a view name (or a folder's, which Steward has none of).
    let listed: Vec<&String> = match args.optional_one()? {
        None => all.iter().collect(),
        Some(name) => match crate::views::get(&ctx.state, name).await {
            Ok(view) if crate::views::readable(&ctx.identity, &view, &all) => view.jobs(&all),
            Ok(_) | Err(crate::views::ViewError::NotFound(_) | crate::views::ViewError::Empty) => {
                return Err(CommandError::IllegalArgument(format!(
                    "No view or item group with the given name '{}' found.",
                    steward_protocol::shown::Shown(name)
                )));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let mut listing = String::new();
    for name in listed {
        listing.push_str(name);
        listing.push('\n');
    }
    ctx.out.stdout(listing).await;
    Ok(0)
}

async fn enable_job(ctx: &mut Context) -> CommandResult {
    set_disabled(ctx, false).await
}

async fn disable_job(ctx: &mut Context) -> CommandResult {
    set_disabled(ctx, true).await
}

async fn set_disabled(ctx: &mut Context, disabled: bool) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &[])?;
    let name = ctx
        .job(args.one("NAME")?, Permission::JobConfigure)
        .await?
        .name
        .clone();
    jobs::set_disabled(&ctx.state, &name, disabled, &ctx.actor()).await?;
    Ok(0)
}
