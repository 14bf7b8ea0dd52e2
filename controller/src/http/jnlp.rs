//! `GET /computer/NAME/jenkins-agent.jnlp` (compat §3.2): the agent's arguments as a JNLP
//! document. The plain form needs Agent/Connect; `?encrypt=true` needs no permission because
//! only the holder of the node secret can read it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use steward_protocol::jnlp::{self, AgentLaunch, ENCRYPTED_CONTENT_TYPE, JNLP_CONTENT_TYPE};
use steward_protocol::shown::Shown;

use crate::auth::{AuthError, Permission, authenticate};
use crate::nodes::{self, NodeError};
use crate::state::AppState;

pub async fn jnlp(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let encrypted = query.get("encrypt").is_some_and(|v| v == "true");
    if !encrypted {
        match authenticate(&state.store, &headers).await {
            Ok(identity) => {
                if let Err(denied) = identity.require(Permission::AgentConnect) {
                    return (StatusCode::FORBIDDEN, format!("{denied}\n")).into_response();
                }
            }
            Err(AuthError::Store(e)) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
            }
            Err(e) => return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response(),
        }
    }
    let record = match nodes::get(&state, &name).await {
        Ok(r) if r.config.is_inbound() => r,
        Ok(_) | Err(NodeError::NotFound(_)) => {
            return (
                StatusCode::NOT_FOUND,
                format!("No inbound agent named '{}'\n", Shown(&name)),
            )
                .into_response();
        }
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    // The stored name: `name` may be another spelling of it.
    let secret = state.secret_key.node_secret(&record.config.name);
    let config = &record.config;
    let work_dir = (!config.work_dir_disabled && !config.remote_fs.is_empty())
        .then_some((config.remote_fs.as_str(), config.internal_dir.as_str()));
    let launch = AgentLaunch {
        node_name: &config.name,
        secret: &secret,
        web_socket: config.web_socket,
        work_dir,
        root_url: state.config.root_url.as_str(),
    };
    let document = launch.document();
    if !encrypted {
        return ([(CONTENT_TYPE, JNLP_CONTENT_TYPE)], document).into_response();
    }
    match jnlp::encrypt(&secret, rand::random(), document.as_bytes()) {
        Ok(body) => ([(CONTENT_TYPE, ENCRYPTED_CONTENT_TYPE)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
