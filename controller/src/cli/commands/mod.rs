//! CLI commands, one file per group, and the dispatcher that applies Jenkins' rules:
//! unknown command → exit 2; bad credentials → exit 7; no Overall/Read → exit 6; then each
//! command checks its own permission.

pub mod args;
pub mod audit;
pub mod builds;
pub mod changes;
pub mod credentials;
pub mod debug;
pub mod describe;
pub mod files;
pub mod info;
pub mod jobs;
pub mod lifecycle;
pub mod measure;
pub mod node_info;
pub mod node_state;
pub mod nodes;
pub mod plugins;
pub mod quiet;
pub mod reload;
pub mod remote;
pub mod scripts;
pub mod terminals;
pub mod users;
pub mod views;

use futures_util::future::BoxFuture;
use steward_protocol::shown::Shown;
use tokio_util::sync::CancellationToken;

use super::io::{Output, Stdin};
use super::stop::StopCause;
use crate::audit::Actor;
use crate::auth::{AccessDenied, AuthError, Identity, Permission};
use crate::nodes::NodeError;
use crate::state::AppState;

/// Everything a running command gets.
pub struct Invocation {
    pub state: AppState,
    pub auth: Result<Identity, AuthError>,
    /// The client's address, for the audit log.
    pub remote: Option<std::net::IpAddr>,
    /// The command line, command name first.
    pub args: Vec<String>,
    pub stdin: Stdin,
    pub out: Output,
    /// Cancelled when the client goes away.
    pub cancel: CancellationToken,
    /// Why the session stopped the command, once it has; read by what a dropped command
    /// leaves behind.
    pub stop: StopCause,
    /// Cancelled once the session has sent its answer and closed.
    pub answered: CancellationToken,
}

/// What the caller is, once the dispatcher has checked the credentials.
pub struct Context {
    pub state: AppState,
    pub identity: Identity,
    /// The client's address.
    pub remote: Option<std::net::IpAddr>,
    /// Arguments after the command name.
    pub args: Vec<String>,
    pub stdin: Stdin,
    pub out: Output,
    pub cancel: CancellationToken,
    pub stop: StopCause,
    /// Cancelled once the session has sent the command's answer and closed: what a command
    /// that ends the controller waits for, so its client hears back first.
    pub answered: CancellationToken,
}

impl Context {
    pub fn require(&self, permission: Permission) -> Result<(), CommandError> {
        self.identity
            .require(permission)
            .map_err(CommandError::from)
    }

    /// The job `name` if the caller may read it and has `permission` on it, the job's own
    /// grants counted: see [`crate::jobs::get_as`].
    pub async fn job(
        &self,
        name: &str,
        permission: Permission,
    ) -> Result<std::sync::Arc<crate::store::jobs::JobRecord>, CommandError> {
        Ok(crate::jobs::get_as(&self.state, &self.identity, name, permission).await?)
    }

    /// Who runs the command, from where, as the audit log records them.
    pub fn actor(&self) -> Actor {
        Actor::new(self.identity.name(), self.remote)
    }
}

/// A command's failure, mapped to Jenkins' exit codes (compat §7.2).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Exit 2, with the command's usage.
    #[error("{0}")]
    BadArgs(String),
    /// Exit 3.
    #[error("{0}")]
    IllegalArgument(String),
    /// Exit 4.
    #[error("{0}")]
    IllegalState(String),
    /// Exit 5: some of several items failed; their errors are already printed.
    #[error("Error occurred while performing this command, see previous stderr output.")]
    Partial,
    /// Exit 5: the command was interrupted.
    #[error("{0}")]
    Aborted(String),
    /// Exit 6.
    #[error("{0}")]
    AccessDenied(#[from] AccessDenied),
    /// Exit 1.
    #[error("Unexpected exception occurred while performing {command} command: {reason}")]
    Unexpected { command: String, reason: String },
    /// A plugin command's own failure: its message and exit code (the credentials
    /// commands' `No change`, exit 1).
    #[error("{1}")]
    Exit(i32, String),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::BadArgs(_) => 2,
            CommandError::IllegalArgument(_) => 3,
            CommandError::IllegalState(_) => 4,
            CommandError::Partial | CommandError::Aborted(_) => 5,
            CommandError::AccessDenied(_) => 6,
            CommandError::Unexpected { .. } => 1,
            CommandError::Exit(code, _) => *code,
        }
    }

    pub fn unexpected(command: &str, reason: impl std::fmt::Display) -> Self {
        CommandError::Unexpected {
            command: command.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<NodeError> for CommandError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NotFound(_)
            | NodeError::BadName(_)
            | NodeError::TooLarge(_)
            | NodeError::BadSetting(_) => CommandError::IllegalArgument(e.to_string()),
            NodeError::Exists(_) | NodeError::LooksLike { .. } => {
                CommandError::IllegalState(e.to_string())
            }
            NodeError::Store(s) => CommandError::unexpected("node", s),
            NodeError::Interrupted(_) => CommandError::Aborted(e.to_string()),
        }
    }
}

pub type CommandResult = Result<i32, CommandError>;
type Runner = for<'a> fn(&'a mut Context) -> BoxFuture<'a, CommandResult>;

/// A command as `help` lists it.
pub struct Command {
    pub name: &'static str,
    /// The first line is the short description `help` lists; `help NAME` and usage errors
    /// print all of it (the options, one a line).
    pub summary: &'static str,
    /// Arguments after the name, as usage prints them.
    pub usage: &'static str,
    /// `help` and `who-am-i` run without Overall/Read; everything else needs it.
    pub needs_overall_read: bool,
    /// Whether the command reads stdin; the others get a closed stdin, so a client's input
    /// never stalls the session's reading of the transport.
    pub reads_stdin: bool,
    pub run: Runner,
}

impl Command {
    /// The summary's first line, as `help` lists it.
    pub fn short_description(&self) -> &'static str {
        self.summary.lines().next().unwrap_or_default()
    }
}

/// Every command, sorted by name.
pub fn all() -> Vec<&'static Command> {
    let mut all: Vec<&'static Command> = [
        info::COMMANDS,
        jobs::COMMANDS,
        builds::COMMANDS,
        changes::COMMANDS,
        credentials::COMMANDS,
        debug::COMMANDS,
        nodes::COMMANDS,
        node_state::COMMANDS,
        remote::COMMANDS,
        files::COMMANDS,
        node_info::COMMANDS,
        measure::COMMANDS,
        quiet::COMMANDS,
        terminals::COMMANDS,
        users::COMMANDS,
        audit::COMMANDS,
        describe::COMMANDS,
        lifecycle::COMMANDS,
        plugins::COMMANDS,
        reload::COMMANDS,
        scripts::COMMANDS,
        views::COMMANDS,
    ]
    .concat();
    all.sort_by_key(|c| c.name);
    all
}

pub fn find(name: &str) -> Option<&'static Command> {
    all().into_iter().find(|c| c.name == name)
}

/// Runs the command line of `invocation` and returns its exit code; errors are printed.
pub async fn dispatch(invocation: Invocation) -> i32 {
    let Invocation {
        state,
        auth,
        remote,
        mut args,
        stdin,
        out,
        cancel,
        stop,
        answered,
    } = invocation;
    let name = args.remove(0);
    let Some(command) = find(&name) else {
        out.stderr(format!("No such command {}\n", Shown(&name)))
            .await;
        return 2;
    };
    let identity = match auth {
        Ok(identity) => identity,
        Err(e) => {
            out.error(&e.to_string()).await;
            return 7;
        }
    };
    if command.needs_overall_read
        && let Err(denied) = identity.require(Permission::OverallRead)
    {
        out.error(&denied.0).await;
        return 6;
    }
    let mut ctx = Context {
        state,
        identity,
        remote,
        args,
        stdin,
        out: out.clone(),
        cancel,
        stop,
        answered,
    };
    let result = (command.run)(&mut ctx).await.map_err(|e| match e {
        // Helpers deep down do not know which command they serve; name it here.
        CommandError::Unexpected { reason, .. } => CommandError::unexpected(command.name, reason),
        other => other,
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&e.to_string()).await;
            if let CommandError::BadArgs(_) = e {
                out.stderr(format!(
                    "cli {} {}\n{}\n",
                    command.name, command.usage, command.summary
                ))
                .await;
            }
            e.exit_code()
        }
    }
}
