//! `/createItem` and `/job/NAME/…`: jobs as Jenkins' REST API shows them (colour, builds,
//! permalinks, parameter definitions, queue state), their configuration XML, and the posts
//! that create, build, enable, disable and delete them. A job's builds are in
//! [`super::builds`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use steward_protocol::job_xml::JOB_XML_DECLARATION;
use steward_protocol::job_xml::JobConfig;
use steward_protocol::shown::Shown;

use super::actions::job_properties;
use super::builds::build_ref;
use super::queue::item_json;
use super::{ApiError, ApiQuery, Remote, caller, job_caller, redirect};
use crate::audit::Actor;
use crate::auth::{Identity, Permission};
use crate::builds::history::{JobSummary, summary};
use crate::builds::{self, BuildError, ItemView, MAX_HISTORY, job_url};
use crate::jobs::{self, JobError};
use crate::state::AppState;
use crate::store::builds::{self as records, BuildResult, BuildRow, CauseKind};
use crate::store::jobs::JobRecord;

/// Jenkins' class for the only kind of job Steward has.
pub const FREESTYLE_PROJECT: &str = "hudson.model.FreeStyleProject";

/// The ball colour of a build result.
pub fn result_color(result: BuildResult) -> &'static str {
    match result {
        BuildResult::Success => "blue",
        BuildResult::Unstable => "yellow",
        BuildResult::Failure => "red",
        BuildResult::NotBuilt => "notbuilt",
        BuildResult::Aborted => "aborted",
    }
}

/// A job's colour as Jenkins computes it: `disabled`, else the colour of its newest
/// completed build (`notbuilt` without one), with `_anime` while its newest build runs.
pub fn color(disabled: bool, last_completed: Option<BuildResult>, building: bool) -> String {
    let base = match (disabled, last_completed) {
        (true, _) => "disabled",
        (false, None) => "notbuilt",
        (false, Some(result)) => result_color(result),
    };
    if building {
        format!("{base}_anime")
    } else {
        base.to_owned()
    }
}

/// A job with its colour, as lists show it.
pub struct JobOverview {
    pub record: Arc<JobRecord>,
    pub color: String,
}

/// Every job `identity` may read, by name, with its colour: the jobs as kept in memory, one
/// read of the builds.
pub async fn overview(state: &AppState, identity: &Identity) -> Result<Vec<JobOverview>, ApiError> {
    let records_now = jobs::readable_by(state, identity);
    let completed = state.store.call(|c| records::last_completed(c)).await?;
    let completed: HashMap<String, (u64, BuildResult)> = completed
        .into_iter()
        .map(|(job, number, result)| (job, (number, result)))
        .collect();
    let mut newest_running: BTreeMap<String, u64> = BTreeMap::new();
    for build in state.builds.running() {
        let newest = newest_running.entry(build.row.job.clone()).or_default();
        *newest = (*newest).max(build.row.number);
    }
    Ok(records_now
        .into_iter()
        .map(|record| {
            let last = completed.get(&record.name).copied();
            let building = newest_running
                .get(&record.name)
                .is_some_and(|running| last.is_none_or(|(number, _)| *running > number));
            let color = color(record.config.disabled, last.map(|(_, r)| r), building);
            JobOverview { record, color }
        })
        .collect())
}

/// One job with its colour; `None` when it does not exist (any more).
pub async fn overview_of(state: &AppState, name: &str) -> Result<Option<JobOverview>, ApiError> {
    let record = match jobs::get(state, name).await {
        Ok(record) => record,
        Err(JobError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let name = record.name.as_str();
    let key = name.to_owned();
    let last = state
        .store
        .call(move |c| records::permalink(c, &key, "lastCompletedBuild"))
        .await?
        .unwrap_or_default();
    let building = state
        .builds
        .running_of(name)
        .first()
        .is_some_and(|b| last.as_ref().is_none_or(|l| b.row.number > l.number));
    let color = color(
        record.config.disabled,
        last.and_then(|b| b.result),
        building,
    );
    Ok(Some(JobOverview { record, color }))
}

/// A job as `/job/NAME/api/json` shows it.
fn job_json(
    state: &AppState,
    record: &JobRecord,
    summary: &JobSummary,
    all_builds: Option<&[(u64, bool)]>,
) -> Value {
    let root = &state.config.root_url;
    let (name, config) = (&record.name, &record.config);
    let building = summary.newest.first().is_some_and(|(_, running)| *running);
    let last_completed = summary
        .permalink("lastCompletedBuild")
        .and_then(|b| b.result);
    let color = color(config.disabled, last_completed, building);
    let reference = |b: &BuildRow| build_ref(root, name, b.number);
    let listed = |numbers: &[(u64, bool)]| -> Vec<Value> {
        numbers
            .iter()
            .map(|(number, _)| build_ref(root, name, *number))
            .collect()
    };
    let queued = state.builds.queue_of(name);
    let queue_item = queued
        .first()
        .map(|q| {
            item_json(
                root,
                &ItemView::Waiting(q.clone()),
                Some(&color),
                Some(config),
            )
        })
        .unwrap_or(Value::Null);
    let properties = job_properties(config);
    let mut shown = json!({
        "_class": FREESTYLE_PROJECT,
        "actions": properties.clone(),
        "description": config.description,
        "displayName": name,
        "displayNameOrNull": null,
        "fullDisplayName": name,
        "fullName": name,
        "name": name,
        "url": job_url(root, name),
        "buildable": !config.disabled,
        "ignoredElements": config.ignored().iter().map(|i| json!({
            "section": i.section,
            "element": i.element,
            "plugin": i.plugin,
        })).collect::<Vec<_>>(),
        "builds": listed(&summary.newest),
        "color": color,
        "firstBuild": summary.first.as_ref().map(reference),
        "healthReport": [],
        "inQueue": !queued.is_empty(),
        "keepDependencies": false,
        "nextBuildNumber": summary.next_number,
        "property": properties,
        "queueItem": queue_item,
        "concurrentBuild": config.concurrent_build,
        "disabled": config.disabled,
        "downstreamProjects": [],
        "labelExpression": config.assigned_node,
        "scm": {"_class": if config.git().is_some() { "hudson.plugins.git.GitSCM" } else { "hudson.scm.NullSCM" }},
        "upstreamProjects": [],
    });
    for (link, build) in &summary.permalinks {
        shown[*link] = build.as_ref().map(reference).unwrap_or(Value::Null);
    }
    if let Some(all) = all_builds {
        shown["allBuilds"] = listed(all).into();
    }
    shown
}

/// `GET /job/NAME/api/json`. `allBuilds` (every build on record, up to
/// [`MAX_HISTORY`]) is sent only when `tree` asks for it, as in Jenkins.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, record) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = record.name.clone();
    let summary = summary(&state, &name).await?;
    let all = match query.wants("allBuilds") {
        true => Some(builds::history::numbers(&state, &name, MAX_HISTORY).await?),
        false => None,
    };
    let job = name.clone();
    let tests = state
        .store
        .call(move |c| crate::store::builds::last_test_counts(c, &job))
        .await?;
    let mut shown = job_json(&state, &record, &summary, all.as_deref());
    if let Some((number, total, failed)) = tests {
        shown["healthReport"] = json!([test_health(total, failed)]);
        shown["lastTestResult"] =
            json!({"build": number, "totalCount": total, "failCount": failed});
    }
    Ok(query.answer(shown))
}

/// The JUnit publisher's health report for a job whose last tested build ran `total`
/// tests with `failed` failing: Jenkins' score, 100 × (1 − failed / total).
fn test_health(total: u64, failed: u64) -> Value {
    let score = if total == 0 {
        100
    } else {
        (100.0 * (1.0 - failed as f64 / total as f64)).clamp(0.0, 100.0) as u64
    };
    let icon = match score {
        81.. => "icon-health-80plus",
        61..=80 => "icon-health-60to79",
        41..=60 => "icon-health-40to59",
        21..=40 => "icon-health-20to39",
        _ => "icon-health-00to19",
    };
    json!({
        "description": format!("Test Result: {failed} tests failing out of a total of {total} tests."),
        "iconClassName": icon,
        "iconUrl": format!("{}.png", icon.trim_start_matches("icon-")),
        "score": score,
    })
}

/// `GET /job/NAME/scmPollLog/pollingLog`: the log of the job's last SCM poll since the
/// controller started (404 when it has not been polled).
pub async fn polling_log(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    match state.triggers.poll_log(&job.name) {
        Some(log) => Ok(log.into_response()),
        None => Err(ApiError(
            http::StatusCode::NOT_FOUND,
            format!(
                "{} has not been polled since the controller started",
                job.name
            ),
        )),
    }
}

/// `GET /job/NAME/`: where posts about a job redirect; its name and colour for people.
pub async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let name = job.name.clone();
    let color = overview_of(&state, &name)
        .await?
        .map(|o| o.color)
        .unwrap_or_default();
    Ok(format!("{name}\t{color}\n").into_response())
}

/// `POST /createItem?name=NAME` with the job's config.xml as the body (200), or
/// `?name=NAME&mode=copy&from=OTHER` (302 to the new job).
pub async fn create_item(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::JobCreate).await?;
    let by = remote.actor(&identity);
    let name = query
        .get("name")
        .ok_or_else(|| ApiError::bad_request("Query parameter 'name' is required"))?;
    // The name in NFC, and refused (bad, taken, or like a taken one) before the body is parsed.
    let name = jobs::check_new_name(&state, name).await?;
    match query.get("mode").map(String::as_str) {
        None | Some("") => {
            let config = parse_job_xml(body).await?;
            jobs::create(&state, &name, config, &by).await?;
            Ok(StatusCode::OK.into_response())
        }
        Some("copy") => {
            let from = query
                .get("from")
                .ok_or_else(|| ApiError::bad_request("mode=copy needs the 'from' parameter"))?;
            jobs::copy(&state, from, &name, &by).await?;
            Ok(redirect(&job_url(&state.config.root_url, &name)))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Unsupported mode '{}': post the job's config.xml, or use mode=copy&from=JOB",
            Shown(other)
        ))),
    }
}

/// Job XML from a request body, parsed off the async threads; 400 with the reason when it
/// cannot be read.
async fn parse_job_xml(body: String) -> Result<JobConfig, ApiError> {
    jobs::parse_config(body)
        .await?
        .map_err(|e| ApiError::bad_request(format!("Invalid job XML: {e}")))
}

/// `GET /job/NAME/config.xml`: the configuration as written when it was stored.
pub async fn get_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, record) = job_caller(&state, &headers, &name, Permission::JobExtendedRead).await?;
    let body = format!("{JOB_XML_DECLARATION}\n{}", record.xml);
    Ok(([(CONTENT_TYPE, "application/xml")], body).into_response())
}

/// `POST /job/NAME/config.xml`: replaces the job's configuration.
pub async fn post_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobConfigure).await?;
    let config = parse_job_xml(body).await?;
    jobs::update(&state, &job.name, config, &remote.actor(&identity)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /job/NAME/doDelete`: 302 to the root, as Jenkins answers.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobDelete).await?;
    let name = job.name.clone();
    jobs::delete(&state, &name, &remote.actor(&identity)).await?;
    Ok(redirect(state.config.root_url.as_str()))
}

/// `POST /job/NAME/enable`: 302 to the job.
pub async fn enable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_disabled(state, name, remote, headers, false).await
}

/// `POST /job/NAME/disable`: 302 to the job.
pub async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_disabled(state, name, remote, headers, true).await
}

/// `POST /job/NAME/doRename?newName=NEW` (python-jenkins' `rename_job`): Job/Configure on
/// the job and Job/Create, as Jenkins asks; 302 to the renamed job. 409 while it builds.
pub async fn rename(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobConfigure).await?;
    identity
        .require(Permission::JobCreate)
        .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    let to = query
        .get("newName")
        .ok_or_else(|| ApiError::bad_request("Query parameter 'newName' is required"))?;
    let to = jobs::rename(&state, &job.name, to, &remote.actor(&identity)).await?;
    Ok(super::redirect(&crate::builds::job_url(
        &state.config.root_url,
        &to,
    )))
}

/// `POST /job/NAME/nextbuildnumber/submit` with the form field `nextBuildNumber`
/// (python-jenkins' `set_next_build_number`): Job/Configure; 302 to the job.
pub async fn set_next_build_number(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobConfigure).await?;
    let field = super::form_field(&query, &body, "nextBuildNumber");
    let text =
        field.ok_or_else(|| ApiError::bad_request("Form field 'nextBuildNumber' is required"))?;
    let next = text
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "nextBuildNumber must be a positive whole number, not '{}'",
                Shown(&text)
            ))
        })?;
    jobs::set_next_build_number(&state, &job.name, next, &remote.actor(&identity)).await?;
    Ok(super::redirect(&crate::builds::job_url(
        &state.config.root_url,
        &job.name,
    )))
}

/// `POST /job/NAME/doWipeOutWorkspace`: deletes the workspace of the job's latest build, on
/// that build's node (as Jenkins' "Wipe Out Current Workspace", with Job/Build): 302 to the
/// job. 404 when it never ran, 409 while a build of it runs, 503 when the node is offline.
pub async fn wipe_out_workspace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobBuild).await?;
    let name = job.name.clone();
    if let Some(running) = state.builds.running().iter().find(|b| b.row.job == name) {
        return Err(ApiError::conflict(format!(
            "Cannot wipe out the workspace of {name}: build #{} is running",
            running.row.number
        )));
    }
    let key = name.clone();
    let latest = state
        .store
        .call(move |c| crate::store::builds::of_job(c, &key, 1))
        .await
        .map_err(ApiError::internal)?;
    let Some(build) = latest.into_iter().next() else {
        return Err(ApiError::not_found(format!(
            "{name} has no workspace: it never ran"
        )));
    };
    let Some(channel) = state.agents.channel(&build.node) else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Node {} is offline: the workspace of {name} cannot be wiped out now",
                build.node
            ),
        ));
    };
    let unavailable = |why: String| ApiError(StatusCode::SERVICE_UNAVAILABLE, why);
    let info = steward_channel::call::call(&channel, &steward_protocol::services::Request::Info)
        .await
        .map_err(|e| unavailable(format!("Node {} did not answer: {e}", build.node)))?;
    let steward_protocol::services::Response::Info(info) = info else {
        return Err(unavailable(format!(
            "Node {} answered {info:?}",
            build.node
        )));
    };
    let path = crate::builds::environment::workspace(&info.work_dir, &build.workspace);
    let request = steward_protocol::services::Request::Remove { path: path.clone() };
    match steward_channel::call::call(&channel, &request).await {
        Ok(steward_protocol::services::Response::Done) => {}
        Ok(steward_protocol::services::Response::Error { message }) => {
            return Err(ApiError::internal(format!(
                "cannot delete {path}: {message}"
            )));
        }
        Ok(other) => {
            return Err(ApiError::internal(format!(
                "Node {} answered {other:?}",
                build.node
            )));
        }
        Err(e) => {
            return Err(unavailable(format!(
                "Node {} did not answer: {e}",
                build.node
            )));
        }
    }
    tracing::info!(job = name, node = build.node, path, "workspace wiped out");
    Ok(redirect(&job_url(&state.config.root_url, &name)))
}

async fn set_disabled(
    state: AppState,
    name: String,
    remote: Remote,
    headers: HeaderMap,
    disabled: bool,
) -> Result<Response, ApiError> {
    let (identity, job) = job_caller(&state, &headers, &name, Permission::JobConfigure).await?;
    let name = job.name.clone();
    jobs::set_disabled(&state, &name, disabled, &remote.actor(&identity)).await?;
    Ok(redirect(&job_url(&state.config.root_url, &name)))
}

/// The query's and, for a form post, the body's fields, in order.
pub(super) fn form_fields(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        fields.extend(url::form_urlencoded::parse(body).into_owned());
    }
    fields
}

/// The parameters of Jenkins' build form: `json={"parameter": [{"name": …, "value": …}]}`
/// (or one object instead of the list).
fn form_json_parameters(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let form: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid 'json' form field: {e}")))?;
    let entries = match form.get("parameter") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
    };
    entries
        .iter()
        .map(|entry| {
            let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request("each entry of 'parameter' needs a string 'name'")
            })?;
            let value = match entry.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                None | Some(Value::Null) => String::new(),
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "the value of parameter '{}' must be a string",
                        Shown(name)
                    )));
                }
            };
            Ok((name.to_owned(), value))
        })
        .collect()
}

/// Queues the build and answers as Jenkins does: 201 with `Location: ROOT/queue/item/N/`,
/// which python-jenkins reads the queue id from.
async fn queue_build(
    state: &AppState,
    name: &str,
    given: &[(String, String)],
    by: &Actor,
) -> Result<Response, ApiError> {
    let queued = builds::enqueue(state, name, given, CauseKind::User, by).await?;
    let location = format!("{}queue/item/{}/", state.config.root_url, queued.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)]).into_response())
}

/// `POST /job/NAME/build`. A parameterized job takes its values from the `json` form field
/// of Jenkins' build form; without it Jenkins answers 400 "Nothing is submitted", and so
/// does Steward.
pub async fn build(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    remote: Remote,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (identity, record) = job_caller(&state, &headers, &name, Permission::JobBuild).await?;
    let name = record.name.clone();
    let given = if record.config.parameters.is_empty() {
        Vec::new()
    } else {
        let fields = form_fields(query.as_deref(), &headers, &body);
        let form = fields.iter().rev().find(|(k, _)| k == "json");
        match form {
            Some((_, text)) => form_json_parameters(text)?,
            None => {
                return Err(ApiError::bad_request(format!(
                    "Nothing is submitted: {name} is parameterized; POST to \
                     job/{name}/buildWithParameters?NAME=VALUE instead"
                )));
            }
        }
    };
    queue_build(&state, &name, &given, &remote.actor(&identity)).await
}

/// `POST /job/NAME/buildWithParameters?NAME=VALUE…` (query or form body). As in Jenkins,
/// fields that are not parameters of the job (`token`, `delay`, `cause`…) are ignored, a
/// parameter given twice takes its first value, and one not given takes its default.
pub async fn build_with_parameters(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    remote: Remote,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (identity, record) = job_caller(&state, &headers, &name, Permission::JobBuild).await?;
    let name = record.name.clone();
    let config = &record.config;
    if config.disabled {
        return Err(BuildError::Disabled(name).into());
    }
    if config.parameters.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{name} is not parameterized: POST to job/{name}/build instead"
        )));
    }
    let mut given: Vec<(String, String)> = Vec::new();
    for (key, value) in form_fields(query.as_deref(), &headers, &body) {
        let known = config.parameters.iter().any(|p| p.name() == key);
        if known && !given.iter().any(|(k, _)| *k == key) {
            given.push((key, value));
        }
    }
    queue_build(&state, &name, &given, &remote.actor(&identity)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_follow_jenkins() {
        assert_eq!(color(false, None, false), "notbuilt");
        assert_eq!(color(false, None, true), "notbuilt_anime");
        assert_eq!(color(false, Some(BuildResult::Success), false), "blue");
        assert_eq!(color(false, Some(BuildResult::Failure), true), "red_anime");
        assert_eq!(color(false, Some(BuildResult::Aborted), false), "aborted");
        assert_eq!(color(false, Some(BuildResult::Unstable), false), "yellow");
        assert_eq!(color(true, Some(BuildResult::Success), false), "disabled");
        assert_eq!(color(true, None, true), "disabled_anime");
    }

    #[test]
    fn build_form_parameters() {
        assert_eq!(
            form_json_parameters(
                r#"{"parameter": [{"name": "A", "value": "1"}, {"name": "B", "value": true}]}"#
            )
            .ok(),
            Some(vec![("A".into(), "1".into()), ("B".into(), "true".into())])
        );
        assert_eq!(
            form_json_parameters(r#"{"parameter": {"name": "A", "value": 2}}"#).ok(),
            Some(vec![("A".into(), "2".into())])
        );
        assert_eq!(form_json_parameters("{}").ok(), Some(vec![]));
        for bad in [
            "",
            "[",
            r#"{"parameter": [{"value": "x"}]}"#,
            r#"{"parameter": [{"name": "A", "value": []}]}"#,
        ] {
            assert!(form_json_parameters(bad).is_err(), "{bad}");
        }
    }
}
