//! `/pluginManager/api/json`: the plugin features Steward carries (`plugins`), in the
//! shape of Jenkins' plugin manager, so that python-jenkins' `get_plugins()` and
//! `get_plugin_info()` answer. Needs Overall/Administer, as Jenkins' plugin manager asks
//! (its Overall/SystemRead, which Administer implies).

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, ApiQuery, caller};
use crate::auth::Permission;
use crate::plugins::{PLUGINS, Plugin, find};
use crate::state::AppState;

/// One plugin as Jenkins' `PluginWrapper` is exported.
fn plugin_json(plugin: &Plugin) -> Value {
    let dependencies: Vec<Value> = plugin
        .dependencies
        .iter()
        .filter_map(|name| find(name))
        .map(|d| json!({"optional": false, "shortName": d.short_name, "version": d.version}))
        .collect();
    json!({
        "active": true,
        "backupVersion": null,
        "bundled": false,
        "deleted": false,
        "dependencies": dependencies,
        "detached": false,
        "downgradable": false,
        "enabled": true,
        "hasUpdate": false,
        "longName": plugin.long_name,
        "pinned": false,
        "requiredCoreVersion": crate::http::JENKINS_COMPAT_VERSION,
        "shortName": plugin.short_name,
        "supportsDynamicLoad": "NO",
        "url": plugin.url,
        "version": plugin.version,
    })
}

/// `GET /pluginManager/api/json` (any `depth`): every plugin, whole.
pub async fn api_json(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallAdminister).await?;
    let plugins: Vec<Value> = PLUGINS.iter().map(plugin_json).collect();
    Ok(query.answer(json!({
        "_class": "hudson.LocalPluginManager",
        "plugins": plugins,
    })))
}
