//! `/job/NAME/N/…`: one build as Jenkins' REST API shows it, its console text (streamed
//! from the file, never read whole), and the posts that stop and delete it. `N` is a build number or
//! a permalink (`lastBuild`, `lastSuccessfulBuild`, …).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::job_xml::git::CheckoutResult;
use tokio_util::io::ReaderStream;

use super::actions::actions;
use super::{ApiError, ApiQuery, Remote, job_caller, redirect};
use crate::auth::Permission;
use crate::builds::delete::{DeleteError, delete_ranges, keep_forever};
use crate::builds::describe::{self, DescribeError};
use crate::builds::history::{duration_ms, estimate};
use crate::builds::{self, build_url, console, job_url};
use crate::jobs;
use crate::state::AppState;
use crate::store::builds::BuildRow;
use crate::store::jobs::JobRecord;

/// Jenkins' class for a build of a freestyle job.
pub const FREESTYLE_BUILD: &str = "hudson.model.FreeStyleBuild";

/// `{"_class", "number", "url"}`: how Jenkins points at a build from a job or queue item.
pub fn build_ref(root: &url::Url, job: &str, number: u64) -> Value {
    json!({"_class": FREESTYLE_BUILD, "number": number, "url": build_url(root, job, number)})
}

/// A build as `/job/NAME/N/api/json` shows it; `config` is the configuration it started
/// with ([`started_with`]).
fn build_json(
    root: &url::Url,
    row: &BuildRow,
    config: Option<&JobConfig>,
    estimated_ms: i64,
    extras: &BuildExtras,
) -> Value {
    let change_set = change_set_json(root, extras.checkout.as_ref());
    let checkout = extras.checkout.as_ref();
    let mut actions = actions(config, &row.params, row.cause, &row.cause_user);
    if let Some((total, failed, skipped)) = extras.tests {
        actions.push(json!({
            "_class": "hudson.tasks.junit.TestResultAction",
            "failCount": failed,
            "skipCount": skipped,
            "totalCount": total,
            "urlName": "testReport",
        }));
    }
    let artifacts: Vec<Value> = extras
        .artifacts
        .iter()
        .map(|path| {
            let file_name = path.rsplit('/').next().unwrap_or(path);
            json!({"displayPath": file_name, "fileName": file_name, "relativePath": path})
        })
        .collect();
    json!({
        "_class": FREESTYLE_BUILD,
        "actions": actions,
        "artifacts": artifacts,
        "building": row.result.is_none(),
        "builtOn": row.node,
        "changeSet": change_set.clone(),
        // A freestyle build's `changeSet`, also as the list that builds of other kinds of
        // job (and clients written for them) read.
        "changeSets": if checkout.is_some() { vec![change_set] } else { Vec::new() },
        "culprits": [],
        "description": row.description,
        "displayName": describe::shown_name(row),
        // Jenkins says 0 until the build has ended.
        "duration": duration_ms(row).unwrap_or(0),
        "estimatedDuration": estimated_ms,
        "fullDisplayName": format!("{} {}", row.job, describe::shown_name(row)),
        "id": row.number.to_string(),
        "keepLog": row.keep_log,
        "number": row.number,
        // Jenkins' "unknown" queue id, for builds recorded before queue ids were kept.
        "queueId": row.queue_id.map_or(-1, |id| id as i64),
        "result": row.result.map(|r| r.as_str()),
        "timestamp": row.started_at_ms,
        "url": build_url(root, &row.job, row.number),
    })
}

/// Most artifacts a build's REST lists (all stay downloadable, and in the ZIP).
const MAX_LISTED_ARTIFACTS: usize = 10_000;

/// What a build's REST shows besides its record.
struct BuildExtras {
    checkout: Option<CheckoutResult>,
    /// `(total, failed, skipped)`.
    tests: Option<(u64, u64, u64)>,
    artifacts: Vec<String>,
}

/// A build's change log as the Git plugin's `GitChangeSetList` shows it; Jenkins' empty
/// change log for a build that did not check out.
fn change_set_json(root: &url::Url, checkout: Option<&CheckoutResult>) -> Value {
    let Some(checkout) = checkout else {
        return json!({"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": null});
    };
    let items: Vec<Value> = checkout
        .changes
        .iter()
        .rev() // oldest first, as the plugin lists them
        .map(|change| {
            let date = steward_protocol::duration::utc(change.timestamp.saturating_mul(1000))
                .replace('T', " ")
                .replace('Z', " +0000");
            let user = url::form_urlencoded::byte_serialize(change.author.as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            json!({
                "_class": "hudson.plugins.git.GitChangeSet",
                "affectedPaths": change.paths.iter().map(|(_, p)| p).collect::<Vec<_>>(),
                "commitId": change.commit,
                "timestamp": change.timestamp.saturating_mul(1000),
                "author": {
                    "absoluteUrl": format!("{root}user/{user}"),
                    "fullName": change.author,
                },
                "authorEmail": change.author_email,
                "comment": format!("{}\n", change.message),
                "date": date,
                "id": change.commit,
                "msg": change.title(),
                "paths": change.paths.iter().map(|(kind, file)| json!({"editType": kind, "file": file})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"_class": "hudson.plugins.git.GitChangeSetList", "items": items, "kind": "git"})
}

/// `GET /job/NAME/N/api/json`; unknown job or build → 404.
pub async fn show(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    let estimated = estimate(&state, &name).await?;
    let config = started_with(&job, &row).await;
    let id = row.id;
    let (checkout, tests) = state
        .store
        .call(move |c| {
            Ok((
                crate::store::scm::of_build(c, id)?,
                crate::store::builds::test_counts(c, id)?,
            ))
        })
        .await?;
    let build_dir = state.builds.build_dir(&name, row.number);
    let artifacts = tokio::task::spawn_blocking(move || {
        crate::builds::publish::artifacts(&build_dir, MAX_LISTED_ARTIFACTS)
    })
    .await
    .unwrap_or_default();
    let extras = BuildExtras {
        checkout,
        tests,
        artifacts,
    };
    let shown = build_json(
        &state.config.root_url,
        &row,
        config.as_deref(),
        estimated,
        &extras,
    );
    Ok(query.answer(shown))
}

/// The configuration a build started with, whose definitions type its parameter values:
/// none needed for a build without parameters; the job's own, as kept parsed, while the
/// build's snapshot is what the job holds now; else the snapshot, parsed off the async
/// threads.
async fn started_with<'a>(job: &'a JobRecord, row: &BuildRow) -> Option<Cow<'a, JobConfig>> {
    if row.params.is_empty() {
        None
    } else if row.config_xml == job.xml {
        Some(Cow::Borrowed(&job.config))
    } else {
        jobs::parse_snapshot(row.config_xml.clone())
            .await
            .map(Cow::Owned)
    }
}

/// `GET /job/NAME/N/`: where a stop redirects; the build's state for people.
pub async fn page(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    let result = row.result.map_or("RUNNING", |r| r.as_str());
    Ok(format!("{name} #{}\t{result}\n", row.number).into_response())
}

/// `?timestamps=FORMAT` of `consoleText`.
#[derive(Debug, serde::Deserialize)]
pub struct ConsoleQuery {
    timestamps: Option<String>,
}

/// `GET /job/NAME/N/consoleText`: the console as it is now (a running build's grows
/// later), streamed a chunk at a time from the file. `?timestamps=time|elapsed|iso` puts
/// each line's start time in front of it, for a build whose job keeps them.
pub async fn console_text(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    Query(query): Query<ConsoleQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    let len = state.builds.console_len(&name, row.number).await;
    let body = match query.timestamps {
        None => console_body(&state, &row, 0, len).await?,
        Some(format) => {
            let format = builds::timestamps::Format::parse(&format).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "timestamps={} is not a format: use time, elapsed or iso",
                    steward_protocol::shown::shown(&format)
                ))
            })?;
            timestamped_body(&state, &row, len, format).await?
        }
    };
    Ok(([(CONTENT_TYPE, "text/plain;charset=UTF-8")], body).into_response())
}

/// The console up to `len` with each line's time before it.
async fn timestamped_body(
    state: &AppState,
    row: &BuildRow,
    len: u64,
    format: builds::timestamps::Format,
) -> Result<Body, ApiError> {
    use tokio::io::AsyncReadExt;
    let dir = state.builds.build_dir(&row.job, row.number);
    let started = row.started_at_ms;
    let annotator = tokio::task::spawn_blocking(move || {
        builds::timestamps::Annotator::open(&dir, 0, format, started)
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "{} #{} kept no timestamps: its job has no TimestamperBuildWrapper",
            row.job, row.number
        ))
    })?;
    let path = state.builds.console_path(&row.job, row.number);
    let Some(mut reader) = console::read_range(&path, 0, len)
        .await
        .map_err(|e| console_error(row, e))?
    else {
        return Ok(Body::empty());
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut annotator = annotator;
        loop {
            let mut buffer = vec![0u8; console::READ_CHUNK];
            match reader.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => {
                    let shown = annotator.annotate(&buffer[..n]);
                    if tx.send(Ok(bytes::Bytes::from(shown))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    Ok(Body::from_stream(futures_util::stream::poll_fn(
        move |cx| rx.poll_recv(cx),
    )))
}

/// Bytes `from..to` of the build's console as a streamed body.
async fn console_body(
    state: &AppState,
    row: &BuildRow,
    from: u64,
    to: u64,
) -> Result<Body, ApiError> {
    let path = state.builds.console_path(&row.job, row.number);
    match console::read_range(&path, from, to).await {
        Ok(Some(reader)) => Ok(Body::from_stream(ReaderStream::with_capacity(
            reader,
            console::READ_CHUNK,
        ))),
        Ok(None) => Ok(Body::empty()),
        Err(e) => Err(console_error(row, e)),
    }
}

fn console_error(row: &BuildRow, e: std::io::Error) -> ApiError {
    ApiError::internal(format!(
        "cannot read the console of {} #{}: {e}",
        row.job, row.number
    ))
}

/// `?start=OFFSET` of `progressiveText`.
#[derive(Debug, serde::Deserialize)]
pub struct ProgressiveQuery {
    start: Option<String>,
}

/// `GET /job/NAME/N/logText/progressiveText?start=OFFSET`: the console from byte `OFFSET`
/// (0 by default) to its current end (its last whole line while the build runs), with
/// Jenkins' headers: `X-Text-Size`, the offset to ask from next, and `X-More-Data: true`
/// while the build runs. An offset past the end
/// starts again from 0, as Jenkins does for a log that was cut.
pub async fn progressive_text(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    Query(query): Query<ProgressiveQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = job.name.clone();
    let start = match query.start.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "start must be a byte offset (a whole number of 0 or more), not {:?}",
                text.chars().take(40).collect::<String>()
            ))
        })?,
    };
    let row = builds::find(&state, &name, &which).await?;
    // Whether it runs is decided before the length is read: a build that ends meanwhile
    // says "more data", and the next request reads the rest.
    let running = state.builds.running_build(&name, row.number).is_some();
    let mut len = state.builds.console_len(&name, row.number).await;
    let start = if start > len { 0 } else { start };
    if running {
        // As Jenkins: while the log grows, only whole lines, so no answer ends in the
        // middle of a line (or of a UTF-8 character).
        let path = state.builds.console_path(&name, row.number);
        len = console::last_line_end(&path, start, len)
            .await
            .map_err(|e| console_error(&row, e))?;
    }
    let body = console_body(&state, &row, start, len).await?;
    let mut response = ([(CONTENT_TYPE, "text/plain;charset=UTF-8")], body).into_response();
    let answer = response.headers_mut();
    answer.insert("X-Text-Size", HeaderValue::from(len));
    if running {
        answer.insert("X-More-Data", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `POST /job/NAME/N/stop`: aborts the build if it runs; 302 to the build either way, as
/// Jenkins answers.
pub async fn stop(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobCancel).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    if let Some(build) = state.builds.running_build(&name, row.number) {
        tracing::info!(job = ?name, number = row.number, by = ?identity.name(), "build stopped over the REST API");
        builds::abort::asked_by(&state, &build, &remote.actor(&identity));
    }
    Ok(redirect(&build_url(
        &state.config.root_url,
        &name,
        row.number,
    )))
}

/// `POST /job/NAME/N/toggleLogKeep`: "Keep this build forever", or no longer; 302 to the
/// build, as Jenkins answers. As in Jenkins, keeping needs Run/Update and no longer
/// keeping (which lets the discarder delete it) Run/Delete.
pub async fn toggle_log_keep(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::RunUpdate).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    let keep = !row.keep_log;
    if !keep {
        identity
            .require_on(job.config.authorization(), Permission::RunDelete)
            .map_err(|denied| ApiError(http::StatusCode::FORBIDDEN, denied.0))?;
    }
    if !keep_forever(&state, &name, row.number, keep, &remote.actor(&identity)).await? {
        return Err(ApiError::not_found(format!(
            "No such build #{}",
            row.number
        )));
    }
    tracing::info!(job = ?name, number = row.number, keep, by = ?identity.name(), "build keep-forever changed over the REST API");
    Ok(redirect(&build_url(
        &state.config.root_url,
        &name,
        row.number,
    )))
}

/// `POST /job/NAME/N/submitDescription` with the form field `description` (in the query
/// or a form body), as Jenkins' build page posts it: sets the build's description; 302 to
/// the build. Needs Run/Update.
pub async fn submit_description(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::RunUpdate).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    let fields = super::jobs::form_fields(query.as_deref(), &headers, &body);
    let Some((_, description)) = fields.iter().rev().find(|(k, _)| k == "description") else {
        return Err(ApiError::bad_request(
            "Missing the form field 'description'",
        ));
    };
    match describe::set_description(&state, &name, row.number, description).await {
        Ok(()) => {}
        Err(e @ DescribeError::NoSuchBuild(_)) => return Err(ApiError::not_found(e.to_string())),
        Err(e @ DescribeError::TooLong { .. }) => return Err(ApiError::bad_request(e.to_string())),
        Err(DescribeError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(job = ?name, number = row.number, by = ?identity.name(), "build description set over the REST API");
    Ok(redirect(&build_url(
        &state.config.root_url,
        &name,
        row.number,
    )))
}

/// `POST /job/NAME/N/doDelete` (python-jenkins' `delete_build`): deletes an ended build and
/// answers 302 to the job; a running build, or one kept forever, is refused with 409.
pub async fn delete(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::RunDelete).await?;
    let name = job.name.clone();
    let row = builds::find(&state, &name, &which).await?;
    if row.keep_log {
        // Jenkins' build page refuses it too; `delete-builds` deletes it, as Jenkins' does.
        return Err(ApiError::conflict(format!(
            "Build #{} of job '{name}' is kept forever: toggle that off first (toggleLogKeep)",
            row.number
        )));
    }
    match delete_ranges(
        &state,
        &name,
        vec![(row.number, row.number)],
        &remote.actor(&identity),
    )
    .await
    {
        Ok(_) => {
            tracing::info!(job = ?name, number = row.number, by = ?identity.name(), "build deleted over the REST API");
            Ok(redirect(&job_url(&state.config.root_url, &name)))
        }
        Err(e @ DeleteError::Running { .. }) => Err(ApiError::conflict(e.to_string())),
        Err(DeleteError::Store(e)) => Err(e.into()),
    }
}
