//! `/queue/…`: the build queue as Jenkins' REST API shows it, one item (waiting, or what
//! became of it for a while after it left: [`crate::builds::left`]), and cancelling one.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::shown::Shown;

use super::actions::{actions, params_text};
use super::builds::build_ref;
use super::jobs::{FREESTYLE_PROJECT, overview, overview_of};
use super::{ApiError, ApiQuery, Remote, caller, streamed_list};
use crate::auth::Permission;
use crate::builds::{self, ItemState, ItemView, WaitKind, job_url};
use crate::state::AppState;

/// A queue item as Jenkins shows it: a `BuildableItem` or `BlockedItem` while it waits, a
/// `LeftItem` with `executable` (its build) or `cancelled` once it has left. `color` and
/// `config` are the job's, when it still exists.
pub fn item_json(
    root: &url::Url,
    item: &ItemView,
    color: Option<&str>,
    config: Option<&JobConfig>,
) -> Value {
    let row = match item {
        ItemView::Waiting(view) => &view.row,
        ItemView::Left(left) => &left.row,
    };
    let mut task = json!({
        "_class": FREESTYLE_PROJECT,
        "name": row.job,
        "url": job_url(root, &row.job),
    });
    if let Some(color) = color {
        task["color"] = json!(color);
    }
    let mut shown = json!({
        "actions": actions(config, &row.params, row.cause, &row.cause_user),
        "id": row.id,
        "inQueueSince": row.queued_at_ms,
        "params": params_text(config, &row.params),
        "task": task,
        "url": format!("queue/item/{}/", row.id),
    });
    let fields = match item {
        ItemView::Waiting(view) => {
            let blocked = view.kind == WaitKind::Blocked;
            json!({
                "_class": if blocked { "hudson.model.Queue$BlockedItem" } else { "hudson.model.Queue$BuildableItem" },
                "blocked": blocked,
                "buildable": !blocked,
                "buildableStartMilliseconds": row.queued_at_ms,
                "pending": false,
                "stuck": view.kind == WaitKind::Stuck,
                "why": view.why,
            })
        }
        ItemView::Left(left) => {
            let executable = match left.outcome {
                ItemState::Started { number } => build_ref(root, &row.job, number),
                _ => Value::Null,
            };
            json!({
                "_class": "hudson.model.Queue$LeftItem",
                "blocked": false,
                "buildable": false,
                "cancelled": left.outcome == ItemState::Cancelled,
                "executable": executable,
                "stuck": false,
                "why": null,
            })
        }
    };
    if let (Value::Object(shown), Value::Object(fields)) = (&mut shown, fields) {
        shown.extend(fields);
    }
    shown
}

/// `GET /queue/api/json`: `{"_class": "hudson.model.Queue", "discoverableItems": [], "items": [...]}`,
/// oldest first, streamed.
pub async fn list(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let jobs: HashMap<String, _> = overview(&state, &identity)
        .await?
        .into_iter()
        .map(|o| (o.record.name.clone(), o))
        .collect();
    let root = state.config.root_url.clone();
    // Each item's JSON is made as the answer streams: a full queue is 100,000 items. Only
    // the items of jobs the caller may read are listed.
    let queue = state.builds.queue().into_iter();
    let items = queue.filter_map(move |view| {
        let job = jobs.get(&view.row.job)?;
        Some(item_json(
            &root,
            &ItemView::Waiting(view),
            Some(job.color.as_str()),
            Some(&job.record.config),
        ))
    });
    let mut head = serde_json::Map::new();
    head.insert("_class".into(), json!("hudson.model.Queue"));
    head.insert("discoverableItems".into(), json!([]));
    Ok(streamed_list(&query, head, "items", items))
}

/// A queue id from the path or query; anything else names no item.
fn parse_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// `GET /queue/item/N/api/json`; 404 for an id that never was, or left the queue more than
/// five minutes ago.
pub async fn item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let not_found = || ApiError::not_found(format!("No queue item {id}"));
    let view = parse_id(&id)
        .and_then(|n| state.builds.queue_item(n))
        .ok_or_else(not_found)?;
    let job = match &view {
        ItemView::Waiting(v) => &v.row.job,
        ItemView::Left(l) => &l.row.job,
    };
    let overview = overview_of(&state, job).await?;
    // An item of a job the caller may not read is not theirs to see.
    match &overview {
        Some(o) if !crate::jobs::readable(&identity, &o.record) => return Err(not_found()),
        None if !identity.has(Permission::JobRead) => return Err(not_found()),
        _ => {}
    }
    Ok(query.answer(item_json(
        &state.config.root_url,
        &view,
        overview.as_ref().map(|o| o.color.as_str()),
        overview.as_ref().map(|o| &o.record.config),
    )))
}

/// `POST /queue/cancelItem?id=N`, answered as Jenkins does: 204 when cancelled, 404 for an
/// unknown id, 422 without the Job/Cancel permission. An item that has already started
/// gets 409 (Jenkins answers 500 "Could not cancel run").
pub async fn cancel_item(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let text = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::bad_request("Query parameter 'id' is required"))?;
    let id = parse_id(&text)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid queue id '{}'", Shown(&text))))?;
    let not_found = || ApiError::not_found(format!("Provided id ({id}) not found"));
    let started = |number: u64| {
        ApiError(
            StatusCode::CONFLICT,
            format!("Queue item {id} has already started as build #{number}"),
        )
    };
    let job = match state.builds.queue_item(id).ok_or_else(not_found)? {
        ItemView::Left(left) => match left.outcome {
            ItemState::Started { number } => return Err(started(number)),
            _ => return Err(not_found()),
        },
        ItemView::Waiting(waiting) => waiting.row.job.clone(),
    };
    // The job's own grants count; a job the caller may not read hides its items.
    let (readable, may_cancel) = match crate::jobs::get(&state, &job).await {
        Ok(record) => {
            let granted = identity.on_job(record.config.authorization());
            (
                granted.contains(Permission::JobRead),
                granted.contains(Permission::JobCancel),
            )
        }
        Err(_) => (
            identity.has(Permission::JobRead),
            identity.has(Permission::JobCancel),
        ),
    };
    if !readable {
        return Err(not_found());
    }
    if !may_cancel {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Item for id ({id}) is not cancellable"),
        ));
    }
    if builds::cancel_queued_by(&state, id, &remote.actor(&identity)).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // It left meanwhile.
    match state.builds.queue_item(id) {
        Some(ItemView::Left(left)) => match left.outcome {
            ItemState::Started { number } => Err(started(number)),
            _ => Err(not_found()),
        },
        _ => Err(not_found()),
    }
}
