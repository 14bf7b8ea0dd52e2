//! `/computer/…`: nodes as Jenkins' REST API shows them, and the form posts python-jenkins
//! uses to create, delete, toggle and reconfigure them.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};
use steward_protocol::node_xml::{INBOUND_LAUNCHER, NodeConfig, NodeMode, XML_DECLARATION};

use super::{ApiError, Remote, caller, redirect};
use crate::auth::Permission;
use crate::nodes::{self, NodeStatus};
use crate::state::AppState;
use crate::store::nodes::{NodeRecord, OfflineMark};

fn built_in_json(state: &AppState) -> Value {
    let mark = state.built_in.offline();
    let reason = mark.as_ref().map(|m| m.message.clone());
    json!({
        "_class": "hudson.model.Hudson$MasterComputer",
        "actions": [],
        "assignedLabels": [{"name": "built-in"}],
        "description": "the Steward controller; it runs no builds itself",
        "displayName": "Built-In Node",
        "executors": [],
        "icon": "symbol-computer",
        "idle": true,
        "jnlpAgent": false,
        "launchSupported": true,
        "manualLaunchAllowed": true,
        "numExecutors": 0,
        "offline": mark.is_some(),
        "offlineCause": reason.as_ref().map(|r| json!({
            "_class": "hudson.slaves.OfflineCause$UserCause",
            "description": r,
        })),
        "offlineCauseReason": reason.unwrap_or_default(),
        "oneOffExecutors": [],
        "temporarilyOffline": mark.is_some(),
    })
}

fn computer_json(state: &AppState, record: &NodeRecord, status: &NodeStatus) -> Value {
    let config = &record.config;
    let busy = state.builds.busy_on(&config.name);
    let executors: Vec<Value> = (0..config.num_executors)
        .map(|n| match busy.iter().find(|(e, _, _)| *e == n) {
            Some((_, job, number)) => json!({
                "number": n,
                "idle": false,
                "currentExecutable": {
                    "_class": "hudson.model.FreeStyleBuild",
                    "number": number,
                    "url": crate::builds::build_url(&state.config.root_url, job, *number),
                },
            }),
            None => json!({"number": n, "idle": true, "currentExecutable": null}),
        })
        .collect();
    let mut labels: Vec<Value> = config
        .label_list()
        .into_iter()
        .map(|l| json!({"name": l}))
        .collect();
    labels.push(json!({"name": config.name}));
    let offline_cause = match (
        &record.temporarily_offline,
        status.connected,
        &status.low_disk,
    ) {
        (Some(mark), _, _) => {
            json!({"_class": "hudson.slaves.OfflineCause$UserCause", "description": mark.message})
        }
        (None, false, _) => {
            json!({"_class": "hudson.slaves.OfflineCause$ChannelTermination", "description": status.reason})
        }
        // Jenkins' disk-space monitor makes its measurement the cause.
        (None, true, Some(low)) => json!({
            "_class": "hudson.node_monitors.DiskSpaceMonitorDescriptor$DiskSpace",
            "description": status.reason,
            "path": low.path,
            "size": low.free_bytes,
        }),
        // Held by a Java agent.jar, which cannot run builds.
        (None, true, None) if !status.online => json!({
            "_class": "hudson.slaves.OfflineCause$SimpleOfflineCause",
            "description": status.reason,
        }),
        (None, true, None) => Value::Null,
    };
    json!({
        "_class": "hudson.slaves.SlaveComputer",
        "actions": [],
        "assignedLabels": labels,
        "description": config.description,
        "displayName": config.name,
        "executors": executors,
        "icon": if status.online { "symbol-computer" } else { "symbol-computer-offline" },
        "idle": busy.is_empty(),
        "jnlpAgent": config.is_inbound(),
        "launchSupported": false,
        "manualLaunchAllowed": true,
        "numExecutors": config.num_executors,
        "offline": !status.online,
        "offlineCause": offline_cause,
        "offlineCauseReason": if status.online { String::new() } else { status.reason.clone().unwrap_or_default() },
        "oneOffExecutors": [],
        "temporarilyOffline": record.temporarily_offline.is_some(),
    })
}

/// `GET /computer/api/json`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let records = nodes::list(&state).await?;
    let mut computers = vec![built_in_json(&state)];
    let mut total = 0;
    let mut busy = 0;
    for record in records.iter() {
        let status = nodes::status(&state, record);
        if status.online {
            total += record.config.num_executors;
            busy += state.builds.busy_on(&record.config.name).len();
        }
        computers.push(computer_json(&state, record, &status));
    }
    Ok(super::json(json!({
        "_class": "hudson.model.ComputerSet",
        "busyExecutors": busy,
        "computer": computers,
        "displayName": "Nodes",
        "totalExecutors": total,
    })))
}

/// `GET /computer/`: where form posts redirect; a plain list for people.
pub async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let mut text = String::new();
    for record in nodes::list(&state).await?.iter() {
        let status = nodes::status(&state, record);
        text.push_str(&format!("{}\t{}\n", record.config.name, status.describe()));
    }
    Ok(text.into_response())
}

/// `GET /computer/NAME/api/json`.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    if crate::nodes::built_in::is_built_in(&name) {
        return Ok(super::json(built_in_json(&state)));
    }
    let record = nodes::get(&state, &name).await?;
    let status = nodes::status(&state, &record);
    Ok(super::json(computer_json(&state, &record, &status)))
}

/// `GET /computer/NAME/`: where the toggle redirects; the node's state for people.
pub async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let record = nodes::get(&state, &name).await?;
    let status = nodes::status(&state, &record);
    Ok(format!("{}\t{}\n", record.config.name, status.describe()).into_response())
}

/// `POST /computer/doCreateItem` with `name`, `type` and the `json` form field.
pub async fn create(
    State(state): State<AppState>,
    remote: Remote,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::AgentCreate).await?;
    let name = form
        .get("name")
        .ok_or_else(|| ApiError::bad_request("missing form field 'name'"))?;
    let kind = form
        .get("type")
        .map(String::as_str)
        .unwrap_or("hudson.slaves.DumbSlave");
    if !kind.starts_with("hudson.slaves.DumbSlave") {
        return Err(ApiError::bad_request(format!(
            "unsupported node type {kind}: only hudson.slaves.DumbSlave"
        )));
    }
    let spec: Value = match form.get("json") {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid 'json' field: {e}")))?,
        None => json!({}),
    };
    let config = config_from_form(name, &spec)?;
    nodes::create(&state, config, &remote.actor(&identity)).await?;
    Ok(redirect(&format!("{}computer/", state.config.root_url)))
}

/// Reads the `json` field of Jenkins' new-node form.
fn config_from_form(name: &str, spec: &Value) -> Result<NodeConfig, ApiError> {
    let mut config = NodeConfig::inbound(name);
    let text = |key: &str| spec.get(key).and_then(Value::as_str).map(str::to_owned);
    if let Some(d) = text("nodeDescription") {
        config.description = d;
    }
    if let Some(fs) = text("remoteFS") {
        config.remote_fs = fs;
    }
    if let Some(labels) = text("labelString") {
        config.labels = labels;
    }
    config.mode = match text("mode").as_deref() {
        None | Some("NORMAL") => NodeMode::Normal,
        Some("EXCLUSIVE") => NodeMode::Exclusive,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid mode {other:?}: expected NORMAL or EXCLUSIVE"
            )));
        }
    };
    if let Some(n) = spec.get("numExecutors") {
        let parsed = n
            .as_u64()
            .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()));
        config.num_executors = parsed
            .filter(|n| (1..=u64::from(steward_protocol::node_xml::MAX_EXECUTORS)).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("invalid numExecutors {n}")))?
            as u32;
    }
    if let Some(launcher) = spec.get("launcher") {
        config.launcher = launcher
            .get("stapler-class")
            .and_then(Value::as_str)
            .unwrap_or(INBOUND_LAUNCHER)
            .to_owned();
        if let Some(ws) = launcher.get("webSocket").and_then(Value::as_bool) {
            config.web_socket = ws;
        }
    }
    if let Some(class) = spec
        .get("retentionStrategy")
        .and_then(|r| r.get("stapler-class"))
        .and_then(Value::as_str)
    {
        config.retention_strategy = class.to_owned();
    }
    Ok(config)
}

/// `POST /computer/NAME/doDelete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::AgentDelete).await?;
    nodes::delete(&state, &name, &remote.actor(&identity)).await?;
    Ok(redirect(&format!("{}computer/", state.config.root_url)))
}

/// `POST /computer/NAME/toggleOffline?offlineMessage=MSG`: flips temporarily-offline.
pub async fn toggle_offline(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::AgentDisconnect).await?;
    let record = nodes::get(&state, &name).await?;
    let mark = match record.temporarily_offline {
        Some(_) => None,
        None => Some(OfflineMark {
            message: query.get("offlineMessage").cloned().unwrap_or_default(),
            by: identity.name().to_owned(),
        }),
    };
    nodes::set_temporarily_offline(&state, &name, mark, &remote.actor(&identity)).await?;
    Ok(redirect(&format!(
        "{}computer/{}/",
        state.config.root_url,
        steward_protocol::names::url_segment(&name)
    )))
}

/// `GET /computer/NAME/config.xml`.
pub async fn get_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::AgentExtendedRead).await?;
    let record = nodes::get(&state, &name).await?;
    let body = format!("{XML_DECLARATION}\n{}", record.config.to_xml());
    Ok(([(CONTENT_TYPE, "application/xml")], body).into_response())
}

/// `POST /computer/NAME/config.xml`: replaces the configuration (a new `<name>` renames).
pub async fn post_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::AgentConfigure).await?;
    nodes::get(&state, &name).await?;
    let mut config = NodeConfig::from_xml(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid node XML: {e}")))?;
    if config.name.is_empty() {
        config.name = name.clone();
    }
    nodes::update(&state, &name, config, &remote.actor(&identity)).await?;
    Ok(http::StatusCode::OK.into_response())
}
