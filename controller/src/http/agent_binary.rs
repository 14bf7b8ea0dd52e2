//! `GET /jnlpJars/agent`: the agent executable built with this controller, so a machine can
//! `curl -o agent URL/jnlpJars/agent`. Public, like Jenkins' `/jnlpJars/agent.jar`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};

use crate::state::AppState;

/// Where the agent executable is: `--agent-binary`, else `agent` beside the controller.
pub fn agent_binary_path(configured: Option<&PathBuf>) -> Option<PathBuf> {
    configured.cloned().or_else(|| {
        std::env::current_exe()
            .ok()?
            .parent()
            .map(|dir| dir.join("agent"))
    })
}

pub async fn agent_binary(State(state): State<AppState>) -> Response {
    let Some(path) = agent_binary_path(state.config.agent_binary.as_ref()) else {
        return (
            StatusCode::NOT_FOUND,
            "The agent executable's location is unknown\n",
        )
            .into_response();
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = ?path, error = ?e.to_string(), "cannot serve the agent executable");
            return (
                StatusCode::NOT_FOUND,
                "The agent executable is not installed beside this controller\n",
            )
                .into_response();
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        CONTENT_DISPOSITION,
        http::HeaderValue::from_static("attachment; filename=agent"),
    );
    if let Some(len) = len {
        h.insert(CONTENT_LENGTH, len.into());
    }
    response
}
