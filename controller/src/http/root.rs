//! `GET /` (with `X-Jenkins`, how clients recognise a controller) and `GET /login`, which
//! agents poll until the controller is ready.

use axum::response::IntoResponse;
use http::StatusCode;

pub async fn index() -> impl IntoResponse {
    format!(
        "Steward {}: a Jenkins-compatible CI controller\n",
        steward_protocol::STEWARD_VERSION
    )
}

pub async fn login() -> impl IntoResponse {
    "Steward: authenticate with an API token (Basic user:token or Bearer token)\n"
}

pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "Not found\n")
}
