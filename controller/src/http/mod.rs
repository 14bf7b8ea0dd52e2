//! The HTTP surface: every route, mounted under the path of the public root URL, and
//! [`server`], the accept loop with its limits on request heads, over [`accept`] (accepting
//! through a full descriptor table) and [`admission`] (the connection caps).
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /`, `GET /login` | [`root`] |
//! | `GET /wsagents/` | [`crate::agents::handshake::wsagents`] |
//! | `GET /computer/NAME/jenkins-agent.jnlp` (and `slave-agent.jnlp`) | [`jnlp`] |
//! | `GET /cli/ws` | [`crate::cli::ws::cli_ws`] |
//! | `POST /cli?remoting=false` | [`crate::cli::duplex::cli_post`] |
//! | `GET /wsecho` | [`echo`] |
//! | `GET /jnlpJars/agent` | [`agent_binary`] |
//! | `/api/json`, `/me/api/json`, `/crumbIssuer/api/json`, `/computer/…` | [`api`] (REST, compat §10) |
//! | `/createItem`, `/job/NAME/…`, `/job/NAME/N/…`, `/queue/…` | [`api`] (REST, compat §10) |
//! | `/createView`, `/view/NAME/…` (and `/view/NAME/job/…` as `/job/…`), `/pluginManager/api/json` | [`api`] |

pub mod accept;
pub mod adaptive_read;
pub mod admission;
pub mod agent_binary;
pub mod api;
pub mod echo;
pub mod guard;
pub mod hooks;
pub mod jnlp;
pub mod log_throttle;
pub mod origin;
pub mod root;
pub mod server;
pub mod ssh;
pub mod terminals;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use http::HeaderValue;

use crate::state::AppState;

/// The Jenkins version whose wire behaviour Steward follows, sent as `X-Jenkins` so Jenkins
/// clients (jenkins-cli.jar, python-jenkins) recognise a compatible controller.
pub const JENKINS_COMPAT_VERSION: &str = "2.579";

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(root::index))
        .route("/login", get(root::login))
        .route("/wsagents/", get(crate::agents::handshake::wsagents))
        .route("/wsagents", get(crate::agents::handshake::wsagents))
        .route("/computer/{name}/jenkins-agent.jnlp", get(jnlp::jnlp))
        .route("/computer/{name}/slave-agent.jnlp", get(jnlp::jnlp))
        .route("/cli/ws", get(crate::cli::ws::cli_ws))
        .route("/cli", post(crate::cli::duplex::cli_post))
        .route("/cli/", post(crate::cli::duplex::cli_post))
        .route("/wsecho", get(echo::wsecho))
        .route("/wsecho/", get(echo::wsecho))
        .route("/jnlpJars/agent", get(agent_binary::agent_binary))
        .route("/computer/{name}/ssh", get(ssh::node))
        .route("/job/{name}/{build}/ssh", get(ssh::build))
        .route("/terminals/{name}/attach", get(terminals::attach))
        .merge(rest_routes())
        // Every route: a body is read only once its sender is known (the full-duplex CLI's
        // streamed upload excepted, which pairs and authenticates itself).
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), guard::BodyBudget::default()),
            guard::bodies,
        ))
        // Hooks read their own bodies: callers are not users (the GitHub one is signed).
        .route(
            "/git/notifyCommit",
            get(hooks::notify_commit).post(hooks::notify_commit),
        )
        .route("/github-webhook/", post(hooks::github_webhook))
        .route("/github-webhook", post(hooks::github_webhook))
        .with_state(state.clone());
    // Behind a proxy the routes live under the root URL's path (`/jenkins/…`); the prefix
    // itself, with or without its slash, is the root page.
    let prefix = state.config.root_url.path().trim_end_matches('/');
    let app = if prefix.is_empty() {
        routes
    } else {
        Router::new()
            .route(&format!("{prefix}/"), get(root::index))
            .with_state(state.clone())
            .nest(prefix, routes)
    };
    let for_fallback = state.clone();
    let app = app
        .fallback(move |headers: http::HeaderMap| {
            root::not_found(axum::extract::State(for_fallback.clone()), headers)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::same_origin,
        ))
        .layer(axum::middleware::map_response(add_version_headers));
    // `/view/NAME/job/…` is `/job/…`: rewritten before the routes see the path.
    let prefix = prefix.to_owned();
    Router::new().fallback_service(tower::ServiceExt::map_request(
        app,
        move |mut request: axum::extract::Request| {
            if let Some(path) = api::views::through_view(&prefix, request.uri().path()) {
                let target = match request.uri().query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
                if let Ok(uri) = target.parse() {
                    *request.uri_mut() = uri;
                }
            }
            request
        },
    ))
}

/// The REST API (compat §10).
fn rest_routes() -> Router<AppState> {
    Router::new()
        .route("/api/json", get(api::root::api_json))
        .route("/me/api/json", get(api::root::me))
        .route("/user/{name}/api/json", get(api::users::show))
        .route("/user/{name}", get(api::users::page))
        .route("/user/{name}/", get(api::users::page))
        .route("/me", get(api::users::me))
        .route("/me/", get(api::users::me))
        .route(
            "/user/{name}/descriptorByName/jenkins.security.ApiTokenProperty/generateNewToken",
            post(api::users::generate_token),
        )
        .route(
            "/user/{name}/descriptorByName/jenkins.security.ApiTokenProperty/revoke",
            post(api::users::revoke_token),
        )
        .route("/audit-log/api/json", get(api::audit::list))
        .route("/me/ssh-keys/api/json", get(api::debug::list_keys))
        .route("/me/ssh-keys/add", post(api::debug::add_keys))
        .route("/me/ssh-keys/remove", post(api::debug::remove_key))
        .route("/crumbIssuer/api/json", get(api::root::crumb_issuer))
        .route("/pluginManager/api/json", get(api::plugins::api_json))
        .route("/quietDown", post(api::root::quiet_down))
        .route("/cancelQuietDown", post(api::root::cancel_quiet_down))
        .route("/restart", post(api::lifecycle::restart))
        .route("/safeRestart", post(api::lifecycle::safe_restart))
        .route("/exit", post(api::lifecycle::exit))
        .route("/safeExit", post(api::lifecycle::safe_exit))
        .route("/reload", post(api::lifecycle::reload))
        .route("/computer", get(api::computers::index))
        .route("/computer/", get(api::computers::index))
        .route("/computer/api/json", get(api::computers::list))
        .route("/computer/doCreateItem", post(api::computers::create))
        .route("/computer/{name}", get(api::computers::page))
        .route("/computer/{name}/", get(api::computers::page))
        .route("/computer/{name}/api/json", get(api::computers::show))
        .route("/computer/{name}/doDelete", post(api::computers::delete))
        .route(
            "/computer/{name}/toggleOffline",
            post(api::computers::toggle_offline),
        )
        .route(
            "/computer/{name}/config.xml",
            get(api::computers::get_config).post(api::computers::post_config),
        )
        .route("/createView", post(api::views::create))
        .route("/view/{name}/api/json", get(api::views::show))
        .route(
            "/view/{name}/config.xml",
            get(api::views::get_config).post(api::views::post_config),
        )
        .route("/view/{name}/doDelete", post(api::views::delete))
        .merge(job_routes())
}

/// Jobs, builds and the queue (compat §10).
fn job_routes() -> Router<AppState> {
    use api::{builds, jobs, queue};
    Router::new()
        .route("/createItem", post(jobs::create_item))
        .route("/job/{name}", get(jobs::page))
        .route("/job/{name}/", get(jobs::page))
        .route("/job/{name}/api/json", get(jobs::show))
        .route(
            "/job/{name}/config.xml",
            get(jobs::get_config).post(jobs::post_config),
        )
        .route("/job/{name}/build", post(jobs::build))
        .route("/job/{name}/scmPollLog/pollingLog", get(jobs::polling_log))
        .route(
            "/job/{name}/buildWithParameters",
            post(jobs::build_with_parameters),
        )
        .route("/job/{name}/doDelete", post(jobs::delete))
        .route("/job/{name}/doRename", post(jobs::rename))
        .route(
            "/job/{name}/nextbuildnumber/submit",
            post(jobs::set_next_build_number),
        )
        .route("/job/{name}/enable", post(jobs::enable))
        .route("/job/{name}/disable", post(jobs::disable))
        .route(
            "/job/{name}/doWipeOutWorkspace",
            post(jobs::wipe_out_workspace),
        )
        .route("/job/{name}/{build}", get(builds::page))
        .route("/job/{name}/{build}/", get(builds::page))
        .route("/job/{name}/{build}/api/json", get(builds::show))
        .route("/job/{name}/{build}/consoleText", get(builds::console_text))
        .route(
            "/job/{name}/{build}/artifact/{*path}",
            get(api::artifacts::artifact),
        )
        .route(
            "/job/{name}/{build}/testReport/api/json",
            get(api::artifacts::test_report),
        )
        .route(
            "/job/{name}/{build}/logText/progressiveText",
            get(builds::progressive_text),
        )
        .route("/job/{name}/{build}/stop", post(builds::stop))
        .route(
            "/job/{name}/{build}/breakpoint/api/json",
            get(api::debug::status),
        )
        .route(
            "/job/{name}/{build}/breakpoint/extend",
            post(api::debug::extend),
        )
        .route(
            "/job/{name}/{build}/breakpoint/resume",
            post(api::debug::resume),
        )
        .route("/job/{name}/{build}/doDelete", post(builds::delete))
        .route(
            "/job/{name}/{build}/submitDescription",
            post(builds::submit_description),
        )
        .route(
            "/job/{name}/{build}/toggleLogKeep",
            post(builds::toggle_log_keep),
        )
        .route("/queue/api/json", get(queue::list))
        .route("/queue/item/{id}/api/json", get(queue::item))
        .route("/queue/cancelItem", post(queue::cancel_item))
        .route("/terminals", get(terminals::list).post(terminals::create))
        .route("/terminals/", get(terminals::list).post(terminals::create))
        .route(
            "/terminals/{name}",
            get(terminals::show)
                .put(terminals::update)
                .delete(terminals::delete),
        )
        .route("/terminals/{name}/recordings", get(terminals::recordings))
        .route(
            "/terminals/{name}/recordings/{id}",
            get(terminals::recording),
        )
        .route(
            "/bulk/terminals",
            post(terminals::bulk)
                .put(terminals::bulk)
                .delete(terminals::bulk),
        )
}

async fn add_version_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "X-Jenkins",
        HeaderValue::from_static(JENKINS_COMPAT_VERSION),
    );
    h.insert(
        "X-Steward-Version",
        HeaderValue::from_static(steward_protocol::STEWARD_VERSION),
    );
    response
}
