//! `/job/NAME/N/…`: one build as Jenkins' REST API shows it, its console text (streamed
//! from the file, never read whole) and the post that stops it. `N` is a build number or
//! a permalink (`lastBuild`, `lastSuccessfulBuild`, …).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};
use steward_protocol::job_xml::JobConfig;
use tokio_util::io::ReaderStream;

use super::actions::actions;
use super::{ApiError, ApiQuery, job_caller, redirect};
use crate::auth::Permission;
use crate::builds::history::{duration_ms, estimate};
use crate::builds::{self, build_url, console};
use crate::state::AppState;
use crate::store::builds::BuildRow;

/// Jenkins' class for a build of a freestyle job.
pub const FREESTYLE_BUILD: &str = "hudson.model.FreeStyleBuild";

/// `{"_class", "number", "url"}`: how Jenkins points at a build from a job or queue item.
pub fn build_ref(root: &url::Url, job: &str, number: u64) -> Value {
    json!({"_class": FREESTYLE_BUILD, "number": number, "url": build_url(root, job, number)})
}

/// A build as `/job/NAME/N/api/json` shows it.
fn build_json(root: &url::Url, row: &BuildRow, estimated_ms: i64) -> Value {
    // The definitions the build started with type its parameter values.
    let config = JobConfig::from_xml(&row.config_xml).ok();
    json!({
        "_class": FREESTYLE_BUILD,
        "actions": actions(config.as_ref(), &row.params, row.cause, &row.cause_user),
        "artifacts": [],
        "building": row.result.is_none(),
        "builtOn": row.node,
        "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": null},
        "culprits": [],
        "description": null,
        "displayName": format!("#{}", row.number),
        // Jenkins says 0 until the build has ended.
        "duration": duration_ms(row).unwrap_or(0),
        "estimatedDuration": estimated_ms,
        "fullDisplayName": format!("{} #{}", row.job, row.number),
        "id": row.number.to_string(),
        "keepLog": false,
        "number": row.number,
        // Jenkins' "unknown" queue id, for builds recorded before queue ids were kept.
        "queueId": row.queue_id.map_or(-1, |id| id as i64),
        "result": row.result.map(|r| r.as_str()),
        "timestamp": row.started_at_ms,
        "url": build_url(root, &row.job, row.number),
    })
}

/// `GET /job/NAME/N/api/json`; unknown job or build → 404.
pub async fn show(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let row = builds::find(&state, &name, &which).await?;
    let estimated = estimate(&state, &name).await?;
    Ok(query.answer(build_json(&state.config.root_url, &row, estimated)))
}

/// `GET /job/NAME/N/`: where a stop redirects; the build's state for people.
pub async fn page(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let row = builds::find(&state, &name, &which).await?;
    let result = row.result.map_or("RUNNING", |r| r.as_str());
    Ok(format!("{name} #{}\t{result}\n", row.number).into_response())
}

/// `GET /job/NAME/N/consoleText`: the console as it is now (a running build's grows
/// later), streamed a chunk at a time from the file.
pub async fn console_text(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let row = builds::find(&state, &name, &which).await?;
    let len = state.builds.console_len(&name, row.number).await;
    let path = state.builds.console_path(&name, row.number);
    let body = match console::read_up_to(&path, len).await {
        Ok(Some(reader)) => {
            Body::from_stream(ReaderStream::with_capacity(reader, console::READ_CHUNK))
        }
        Ok(None) => Body::empty(),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot read the console of {name} #{}: {e}",
                row.number
            )));
        }
    };
    Ok(([(CONTENT_TYPE, "text/plain;charset=UTF-8")], body).into_response())
}

/// `POST /job/NAME/N/stop`: aborts the build if it runs; 302 to the build either way, as
/// Jenkins answers.
pub async fn stop(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, _) = job_caller(&state, &headers, &name, Permission::JobCancel).await?;
    let row = builds::find(&state, &name, &which).await?;
    if let Some(build) = state.builds.running_build(&name, row.number) {
        tracing::info!(job = %name, number = row.number, by = identity.name(), "build stopped over the REST API");
        build.abort(identity.name());
    }
    Ok(redirect(&build_url(
        &state.config.root_url,
        &name,
        row.number,
    )))
}
