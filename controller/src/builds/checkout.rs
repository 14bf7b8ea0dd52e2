//! A build's Git checkout ([`steward_protocol::job_xml::git`]): the script of its checkout
//! step, and what the step checked out, read back from the agent and recorded.
//!
//! The checkout is a durable step like any other: its script is `#!/usr/bin/env
//! steward-git` and the checkout in JSON, which the agent's git runner carries out. It
//! writes what it checked out to `scm.json` in the step's directory; once the step has
//! ended well, the runner reads that file here and the store keeps it ([`record`]), before
//! the next step starts: its environment then has `GIT_COMMIT` and the rest.

use steward_channel::Channel;
use steward_channel::call::{open, read_response};
use steward_protocol::job_xml::GitScm;
use steward_protocol::job_xml::git::{
    CHECKOUT_RESULT_FILE, CHECKOUT_SHEBANG, CheckoutResult, MAX_CHECKOUT_RESULT_BYTES,
};
use steward_protocol::services::{Request, Response};

use crate::state::AppState;
use crate::store::builds::BuildRow;
use crate::store::scm;

/// The checkout step's script for build `row`, and the variables carrying its credential.
pub async fn script(
    state: &AppState,
    row: &BuildRow,
    git: &GitScm,
) -> Result<(Vec<u8>, Vec<(String, String)>), String> {
    let (job, number) = (row.job.clone(), row.number);
    let (previous, _) = state
        .store
        .call(move |c| scm::previous(c, &job, number))
        .await
        .map_err(|e| format!("cannot read the previous build's revision: {e}"))?;
    let mut checkout = git.checkout(previous);
    let mut env = Vec::new();
    if let Some(id) = git.remotes.iter().find_map(|r| r.credentials_id.clone()) {
        let (kind, secrets) = crate::credentials::for_git(state, &id).await?;
        checkout.credential = Some((id, kind));
        env = secrets;
    }
    let json = serde_json::to_string(&checkout).map_err(|e| e.to_string())?;
    Ok((format!("{CHECKOUT_SHEBANG}\n{json}\n").into_bytes(), env))
}

/// Reads what the checkout step in `step_dir` on the agent checked out, and records it for
/// build `id`.
pub async fn record(
    state: &AppState,
    channel: &Channel,
    id: u64,
    step_dir: &str,
) -> Result<CheckoutResult, String> {
    let path = format!("{step_dir}/{CHECKOUT_RESULT_FILE}");
    let bytes = read_file(channel, &path).await?;
    let result: CheckoutResult = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the checkout's record {path} is malformed: {e}"))?;
    let stored = result.clone();
    state
        .store
        .call(move |c| scm::set(c, id, &stored))
        .await
        .map_err(|e| format!("cannot record the checked-out revision: {e}"))?;
    Ok(result)
}

/// A small file of the agent's, whole.
async fn read_file(channel: &Channel, path: &str) -> Result<Vec<u8>, String> {
    let request = Request::ReadFile {
        path: path.to_owned(),
        offset: 0,
    };
    let mut stream = open(channel, &request)
        .await
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    stream
        .finish()
        .await
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    match read_response(&mut stream).await {
        Ok(Response::FileStart { size }) if size as usize <= MAX_CHECKOUT_RESULT_BYTES => {}
        Ok(Response::FileStart { size }) => {
            return Err(format!(
                "{path} is {size} bytes, over the limit of {MAX_CHECKOUT_RESULT_BYTES}"
            ));
        }
        Ok(Response::Error { message }) => return Err(message),
        Ok(other) => return Err(format!("unexpected answer to reading {path}: {other:?}")),
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.recv().await {
        let chunk = chunk.map_err(|e| format!("cannot read {path}: {e}"))?;
        if bytes.len() + chunk.len() > MAX_CHECKOUT_RESULT_BYTES {
            return Err(format!(
                "{path} grew over {MAX_CHECKOUT_RESULT_BYTES} bytes"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The variables the Git plugin gives a build's steps, from what the build checked out.
pub async fn variables(state: &AppState, row: &BuildRow, env: &mut Vec<(String, String)>) {
    let (id, job, number) = (row.id, row.job.clone(), row.number);
    let found = state
        .store
        .call(move |c| Ok((scm::of_build(c, id)?, scm::previous(c, &job, number)?)))
        .await;
    let (Some(result), (previous, previous_success)) = (match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(job = ?row.job, number = row.number, error = ?e.to_string(), "cannot read the build's checkout");
            return;
        }
    }) else {
        return;
    };
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("GIT_COMMIT", result.commit);
    set("GIT_BRANCH", result.branch);
    set("GIT_URL", result.url);
    if let Some(branch) = result.local_branch {
        set("GIT_LOCAL_BRANCH", branch);
    }
    if let Some(commit) = previous {
        set("GIT_PREVIOUS_COMMIT", commit);
    }
    if let Some(commit) = previous_success {
        set("GIT_PREVIOUS_SUCCESSFUL_COMMIT", commit);
    }
}
