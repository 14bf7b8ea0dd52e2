//! Hooks that tell the controller a repository changed, open to unauthenticated callers as
//! in Jenkins (they only make it poll, and the GitHub one is signed):
//! - `GET|POST /git/notifyCommit?url=URL[&branches=B1,B2][&sha1=SHA]`: the Git plugin's
//!   endpoint. Every enabled job with an `SCMTrigger` (hooks not ignored) whose Git remote
//!   is URL, and whose branch specifiers select one of the branches when given, is polled;
//!   the answer lists them as the plugin does (`Scheduled polling of JOB`).
//! - `POST /github-webhook/`: GitHub's `push` deliveries, signed with the configured
//!   secret (`X-Hub-Signature-256`). Jobs with a `GitHubPushTrigger` on the repository are
//!   polled. An unsigned or wrongly signed delivery is refused with the reason.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::Sha256;
use steward_protocol::job_xml::git::{BranchSpec, same_repository};
use tokio::sync::Semaphore;

use crate::state::AppState;
use crate::store::builds::CauseKind;
use crate::triggers::timer::SYSTEM_USER;

/// Largest webhook delivery read: GitHub caps payloads at 25 MB.
pub const MAX_WEBHOOK_BYTES: usize = 25 << 20;
/// Deliveries read at once: the route is open to anyone, so its memory is bounded by this
/// times [`MAX_WEBHOOK_BYTES`].
const WEBHOOKS_IN_FLIGHT: usize = 4;
/// How long a delivery's body may take to arrive.
const WEBHOOK_BODY_TIMEOUT: Duration = Duration::from_secs(30);

static IN_FLIGHT: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(WEBHOOKS_IN_FLIGHT));

#[derive(Debug, Deserialize)]
pub struct NotifyCommit {
    url: Option<String>,
    branches: Option<String>,
    /// Read and not acted on: the notification polls, as the plugin does for jobs whose
    /// branch specifiers it cannot match against a commit.
    #[serde(rename = "sha1")]
    _sha1: Option<String>,
}

/// `/git/notifyCommit`.
pub async fn notify_commit(
    State(state): State<AppState>,
    Query(query): Query<NotifyCommit>,
) -> Response {
    let Some(url) = query.url.filter(|u| !u.trim().is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "Illegal URL: the url parameter is required\n",
        )
            .into_response();
    };
    let branches: Vec<String> = query
        .branches
        .unwrap_or_default()
        .split(',')
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .collect();
    let Ok(jobs) = crate::jobs::list(&state).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the jobs\n").into_response();
    };
    let mut body = String::new();
    let mut headers = HeaderMap::new();
    let mut git_jobs = false;
    let mut matched = false;
    for job in &jobs {
        let Some(git) = job.config.git() else {
            continue;
        };
        git_jobs = true;
        if !git.uses(&url) {
            continue;
        }
        let triggers = crate::triggers::of_job(&job.config, &job.name);
        if triggers.scm.is_none_or(|t| t.ignore_post_commit_hooks) {
            tracing::info!(job = ?job.name, "notifyCommit: no SCM trigger, or post-commit hooks ignored");
            continue;
        }
        let remotes: Vec<String> = git.remotes.iter().map(|r| r.name.clone()).collect();
        let branch_found = branches.is_empty()
            || git.branches.iter().any(|spec| {
                BranchSpec::new(spec).is_ok_and(|spec| {
                    branches.iter().any(|b| {
                        remotes
                            .iter()
                            .any(|r| spec.matches(&format!("refs/remotes/{r}/{b}"), &remotes))
                    })
                })
            });
        if !branch_found {
            continue;
        }
        matched = true;
        if job.config.disabled {
            continue;
        }
        spawn_poll(&state, &job.name, CauseKind::ScmChange, SYSTEM_USER);
        body.push_str(&format!("Scheduled polling of {}\n", job.name));
        let job_url = crate::builds::job_url(&state.config.root_url, &job.name);
        if let Ok(value) = HeaderValue::from_str(&job_url) {
            headers.append("Triggered", value);
        }
    }
    if !git_jobs {
        body.push_str("No git jobs found\n");
    } else if !matched {
        body.push_str(&format!(
            "No git jobs using repository: {} and branches: {}\n",
            steward_protocol::shown::shown(&url),
            steward_protocol::shown::shown(&branches.join(","))
        ));
    }
    (StatusCode::OK, headers, body).into_response()
}

fn spawn_poll(state: &AppState, job: &str, cause: CauseKind, user: &str) {
    crate::triggers::poll::spawn(state, job, cause, user);
}

/// `POST /github-webhook/`.
pub async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let refuse = |status: StatusCode, why: &str| (status, format!("{why}\n")).into_response();
    let Some(secret) = state.config.github_webhook_secret.clone() else {
        return refuse(
            StatusCode::FORBIDDEN,
            "No GitHub webhook secret is configured on this controller (start it with \
             --github-webhook-secret-file): deliveries are refused",
        );
    };
    let Some(signature) = headers
        .get("X-Hub-Signature-256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The delivery has no X-Hub-Signature-256 header: set the webhook's secret on GitHub",
        );
    };
    let Ok(_permit) = IN_FLIGHT.try_acquire() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many webhook deliveries being read at once; retry",
        );
    };
    let payload = match tokio::time::timeout(
        WEBHOOK_BODY_TIMEOUT,
        axum::body::to_bytes(body, MAX_WEBHOOK_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("The delivery is over {} MiB", MAX_WEBHOOK_BYTES >> 20),
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "The delivery did not arrive in time",
            );
        }
    };
    if let Err(why) = verify(&secret.0, &signature, &payload) {
        tracing::warn!(reason = why, "refused a GitHub webhook delivery");
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let event = headers
        .get("X-GitHub-Event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match event {
        "ping" => return (StatusCode::OK, "pong\n").into_response(),
        "push" => {}
        other => {
            return (
                StatusCode::OK,
                format!(
                    "Event {} ignored: Steward acts on push events\n",
                    steward_protocol::shown::shown(other)
                ),
            )
                .into_response();
        }
    }
    let json = match json_payload(&headers, &payload) {
        Ok(json) => json,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let urls: Vec<String> = ["clone_url", "ssh_url", "git_url", "html_url", "url"]
        .iter()
        .filter_map(|k| json["repository"][*k].as_str().map(str::to_owned))
        .collect();
    if urls.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The push event names no repository",
        );
    }
    let pusher = json["pusher"]["name"]
        .as_str()
        .or_else(|| json["sender"]["login"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    let Ok(jobs) = crate::jobs::list(&state).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the jobs\n").into_response();
    };
    let mut body = String::new();
    for job in &jobs {
        let Some(git) = job.config.git() else {
            continue;
        };
        if job.config.disabled || !crate::triggers::of_job(&job.config, &job.name).github_push {
            continue;
        }
        if !urls
            .iter()
            .any(|u| git.remotes.iter().any(|r| same_repository(&r.url, u)))
        {
            continue;
        }
        spawn_poll(&state, &job.name, CauseKind::GitHubPush, &pusher);
        body.push_str(&format!("Scheduled polling of {}\n", job.name));
    }
    (StatusCode::OK, body).into_response()
}

/// Checks GitHub's `sha256=HEX` signature of `payload`, in constant time.
fn verify(secret: &[u8], signature: &str, payload: &[u8]) -> Result<(), &'static str> {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return Err("X-Hub-Signature-256 is not of the form sha256=HEX");
    };
    let Ok(digest) = hex::decode(hex_digest.trim()) else {
        return Err("X-Hub-Signature-256 is not of the form sha256=HEX");
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Err("the configured secret cannot key an HMAC");
    };
    mac.update(payload);
    mac.verify_slice(&digest).map_err(
        |_| "X-Hub-Signature-256 does not match the payload signed with this controller's secret",
    )
}

/// The event's JSON: the body, or its `payload` field when GitHub sends a form.
fn json_payload(headers: &HeaderMap, payload: &[u8]) -> Result<serde_json::Value, String> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let json = if form {
        url::form_urlencoded::parse(payload)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned().into_bytes())
            .ok_or("The form has no payload field")?
    } else {
        payload.to_vec()
    };
    serde_json::from_slice(&json).map_err(|e| format!("The payload is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify(b"s3cret", &good, b"{}").is_ok());
        assert!(verify(b"other", &good, b"{}").is_err());
        assert!(verify(b"s3cret", &good, b"{ }").is_err());
        assert!(verify(b"s3cret", "sha1=abc", b"{}").is_err());
        assert!(verify(b"s3cret", "sha256=zz", b"{}").is_err());
    }
}
