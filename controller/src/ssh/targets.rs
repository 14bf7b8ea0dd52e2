//! What a forwarded connection reaches: `NODE`, or `JOB#N` while build N runs or is held
//! at a breakpoint; the checks a caller must pass; and the [`SshRequest`] that tells the
//! agent where the session lands.

use std::sync::Arc;

use steward_channel::Channel;
use steward_protocol::services::{Request, Response};
use steward_protocol::shown::Shown;
use steward_protocol::ssh::{BuildSession, SshRequest, SshTarget, TargetName};

use crate::agents::registry::AgentKind;
use crate::auth::{AccessDenied, Identity, Permission};
use crate::builds::RunningBuild;
use crate::jobs::JobError;
use crate::nodes::NodeError;
use crate::state::AppState;
use crate::store::StoreError;

/// Why a target cannot be reached; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 403.
    #[error("{0}")]
    Denied(#[from] AccessDenied),
    /// 503: the node is not connected, or cannot take SSH.
    #[error("{0}")]
    Unavailable(String),
    /// 500.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<JobError> for TargetError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Denied(denied) => TargetError::Denied(denied),
            JobError::Store(e) => TargetError::Store(e),
            other => TargetError::NotFound(other.to_string()),
        }
    }
}

impl From<NodeError> for TargetError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(e) => TargetError::Store(e),
            other => TargetError::NotFound(other.to_string()),
        }
    }
}

/// How long the agent has to answer before a connection is forwarded (its work dir, then
/// the SSH request): it answers at once when it is alive.
pub const AGENT_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A reachable target.
pub struct Resolved {
    /// The node's stored name.
    pub node: String,
    /// For `JOB#N`, the running build.
    pub build: Option<Arc<RunningBuild>>,
    pub channel: Channel,
}

impl Resolved {
    /// `NODE` or `JOB#N`, with the stored names.
    pub fn describe(&self) -> String {
        match &self.build {
            Some(build) => format!("{}#{}", build.row.job, build.row.number),
            None => self.node.clone(),
        }
    }
}

/// The permission a target needs: `Agent/Connect` (Jenkins' `Computer.Connect`) on a node,
/// `Job/Debug` on a build.
pub fn permission(target: &TargetName) -> Permission {
    match target {
        TargetName::Node(_) => Permission::AgentConnect,
        TargetName::Build { .. } => Permission::JobDebug,
    }
}

/// Finds the target, checks the caller's permission on it and that its node is connected
/// with an agent that has an SSH server.
pub async fn resolve(
    state: &AppState,
    identity: &Identity,
    target: &TargetName,
) -> Result<Resolved, TargetError> {
    let (node, build) = match target {
        TargetName::Node(name) => {
            identity.require(permission(target))?;
            (crate::nodes::get(state, name).await?.config.name, None)
        }
        TargetName::Build { job, number } => {
            // Job/Debug on the job, its own grants counted.
            let record = crate::jobs::get_as(state, identity, job, permission(target)).await?;
            let build = running_build(state, &record.name, *number).await?;
            (build.row.node.clone(), Some(build))
        }
    };
    let live = state.agents.live(&node).ok_or_else(|| {
        TargetError::Unavailable(format!(
            "Node ‘{}’ is offline ({}): SSH reaches a node only while its agent is connected",
            Shown(&node),
            state
                .agents
                .offline_reason(&node)
                .unwrap_or_else(|| "not connected".into())
        ))
    })?;
    if live.kind == AgentKind::JavaRemoting {
        return Err(TargetError::Unavailable(format!(
            "Node ‘{}’ runs Jenkins' agent.jar, which has no SSH server: connect it with Steward's agent",
            Shown(&node)
        )));
    }
    let channel = state
        .agents
        .channel(&node)
        .filter(|c| !c.is_closed())
        .ok_or_else(|| {
            TargetError::Unavailable(format!(
                "Node ‘{}’ is still connecting; try again in a moment",
                Shown(&node)
            ))
        })?;
    Ok(Resolved {
        node,
        build,
        channel,
    })
}

/// Build `number` of `job` while it runs (a build held at a breakpoint still runs).
async fn running_build(
    state: &AppState,
    job: &str,
    number: u64,
) -> Result<Arc<RunningBuild>, TargetError> {
    let record = crate::jobs::get(state, job)
        .await
        .map_err(|e| TargetError::NotFound(e.to_string()))?;
    let name = record.name.clone();
    if let Some(build) = state.builds.running_build(&name, number) {
        return Ok(build);
    }
    match crate::builds::get(state, &name, number).await? {
        Some(_) => Err(TargetError::NotFound(format!(
            "Build {}#{number} has ended: SSH reaches a build only while it runs or is held at a breakpoint",
            Shown(&name)
        ))),
        None => Err(TargetError::NotFound(format!(
            "No such build {}#{number}",
            Shown(&name)
        ))),
    }
}

/// The node a target is on, for its host key: any build of the job's history, ended or not.
pub async fn node_of(state: &AppState, target: &TargetName) -> Result<String, TargetError> {
    match target {
        TargetName::Node(name) => Ok(crate::nodes::get(state, name).await?.config.name),
        TargetName::Build { job, number } => {
            let record = crate::jobs::get(state, job)
                .await
                .map_err(|e| TargetError::NotFound(e.to_string()))?;
            match crate::builds::get(state, &record.name, *number).await? {
                Some(row) => Ok(row.node),
                None => Err(TargetError::NotFound(format!(
                    "No such build {}#{number}",
                    Shown(&record.name)
                ))),
            }
        }
    }
}

/// The request that forwards connection `connection` of `user` to `resolved`.
pub async fn request(
    state: &AppState,
    resolved: &Resolved,
    connection: u64,
    user: &str,
    client_address: &str,
) -> Result<SshRequest, TargetError> {
    let target = match &resolved.build {
        None => SshTarget::Node,
        Some(build) => {
            let work_dir = work_dir(&resolved.channel, &resolved.node).await?;
            let row = &build.row;
            // The build's own configuration (as it started) says which SSH user names its
            // sessions may use; one that cannot be read lets nobody in, rather than anyone.
            let config = steward_protocol::job_xml::JobConfig::from_stored_xml(&row.config_xml)
                .map_err(|e| {
                    TargetError::Unavailable(format!(
                        "Build {}#{}'s stored configuration cannot be read ({e}), so who may log in to it is not known",
                        Shown(&row.job),
                        row.number
                    ))
                })?;
            let allowed_users = config
                .breakpoint()
                .map(|b| b.allowed_ssh_users.clone())
                .unwrap_or_default();
            SshTarget::Build(BuildSession {
                job: row.job.clone(),
                number: row.number,
                workspace: crate::builds::environment::workspace(&work_dir, &row.workspace),
                env: crate::builds::environment::variables(state, row, &work_dir).await,
                allowed_users,
            })
        }
    };
    let allowed_keys = super::keys::allowed_for(state, user)
        .await
        .map_err(|e| match e {
            super::keys::KeysError::Store(e) => TargetError::Store(e),
            other => TargetError::Unavailable(other.to_string()),
        })?;
    Ok(SshRequest {
        connection,
        target,
        allowed_keys,
        client_address: client_address.to_owned(),
        steward_user: user.to_owned(),
    })
}

/// The agent's work dir.
async fn work_dir(channel: &Channel, node: &str) -> Result<String, TargetError> {
    let asked = steward_channel::call::call(channel, &Request::Info);
    let answer = tokio::time::timeout(AGENT_ANSWER_TIMEOUT, asked)
        .await
        .map_err(|_| {
            TargetError::Unavailable(format!(
                "Node ‘{}’ did not answer within {} s",
                Shown(node),
                AGENT_ANSWER_TIMEOUT.as_secs()
            ))
        })?;
    match answer {
        Ok(Response::Info(info)) => Ok(info.work_dir.trim_end_matches('/').to_owned()),
        Ok(other) => Err(TargetError::Unavailable(format!(
            "Node ‘{}’ answered {other:?} when asked for its work dir",
            Shown(node)
        ))),
        Err(e) => Err(TargetError::Unavailable(format!(
            "Node ‘{}’ did not answer: {e}",
            Shown(node)
        ))),
    }
}
