//! The Steward controller: an HTTP server that inbound agents dial into over WebSocket and
//! that serves the Jenkins CLI protocols.
//!
//! Map of the crate:
//! - [`config`]: settings; [`home`]: the home directory and its secret files;
//!   [`store`]: the SQLite database (nodes, users, token hashes, jobs).
//! - [`http`]: the router and the small routes (`/`, `/login`, JNLP, `/wsecho`,
//!   `/jnlpJars/agent`).
//! - [`agents`]: the `/wsagents/` handshake, live connections, agent sessions.
//! - [`cli`]: `/cli/ws` and `/cli` transports, the session, one file per command group.
//! - [`auth`]: identities and permissions; [`nodes`]: node operations over store and
//!   registry; [`jobs`]: job operations over the store, and every job parsed in memory;
//!   [`schedule`]: which queued build starts on which executor; [`builds`]: the queue,
//!   running builds and console logs; [`keepalive`]: WebSocket ping and idle timers;
//!   [`ws_close`]: the close codes for a peer's broken WebSocket; [`ssh`]: SSH sessions
//!   into nodes and builds, forwarded to the agents' SSH servers, users' keys, host keys;
//!   [`audit`]: who did what, when and from where.
//!
//! - [`fd_limit`]: the open-file limit, raised at start-up; [`disk`]: space kept in
//!   reserve for build records, and the "disk full" state; [`units`]: sizes as printed.
//! - [`lifecycle`]: the session id, and `restart`/`shutdown` (safe or not), the restart
//!   running the binary again in place with its listening socket.
//!
//! [`start`] binds and serves; the binary in `main.rs` only parses options and calls it.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod breakpoints;
pub mod builds;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod disk;
pub mod fd_limit;
pub mod home;
pub mod http;
pub mod jobs;
pub mod keepalive;
pub mod lifecycle;
pub mod nodes;
pub mod plugins;
pub mod schedule;
pub mod ssh;
pub mod state;
pub mod store;
pub mod terminals;
pub mod triggers;
pub mod units;
pub mod views;
pub mod ws_close;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use steward_protocol::channel::{GoAway, GoAwayCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, default_root_url};
use crate::home::{Home, INITIAL_ADMIN_TOKEN_FILE, replace_secret_file};
use crate::state::AppState;
use crate::store::Store;

/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A controller that is listening.
pub struct Started {
    pub local_addr: SocketAddr,
    pub root_url: url::Url,
    /// The admin token, on the first start only.
    pub initial_admin_token: Option<String>,
    pub home: Home,
    state: AppState,
    /// The listening socket, kept to hand over to a restart.
    listener: Option<std::os::fd::OwnedFd>,
    serve: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Started {
    /// The running controller's shared state (registry, store), for in-process tools.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What the binary needs to carry out a `restart` once [`Started::wait`] is back
    /// ([`lifecycle::reexec::Handover::finish`]).
    pub fn handover(&mut self) -> lifecycle::reexec::Handover {
        lifecycle::reexec::Handover {
            lifecycle: self.state.lifecycle.clone(),
            listener: self.listener.take(),
        }
    }

    /// Waits until the server has stopped (after the shutdown token was cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.serve.await.context("server task failed")?
    }
}

/// Raises the open-file limit, prepares the home, opens the database, binds and starts
/// serving until `shutdown`.
pub async fn start(mut config: Config, shutdown: CancellationToken) -> anyhow::Result<Started> {
    config.validate().map_err(anyhow::Error::msg)?;
    // Every connection is a descriptor: take all the service manager allows.
    let caps = http::admission::Caps::for_config(&config, fd_limit::raise_to_hard());
    let home = Home::prepare(&config.home)?;
    let secret_key = home.load_or_create_hmac_key()?;
    let vault = credentials::vault::Vault::open(&home.secret_file(credentials::vault::KEY_FILE))?;
    let store = Store::open(&home.database())
        .with_context(|| format!("opening {}", home.database().display()))?;
    let disk = Arc::new(disk::Disk::open(&home.root));
    let token_file = home.secret_file(INITIAL_ADMIN_TOKEN_FILE);
    let initial_admin_token = store
        .call(move |c| {
            store::users::ensure_admin(c, |token| {
                replace_secret_file(&token_file, format!("{token}\n").as_bytes())
                    .map_err(|e| format!("{e:#}"))
            })
        })
        .await?;

    // A restart in place hands its listening socket over (`lifecycle::reexec`).
    let listener = match lifecycle::reexec::inherited(config.listen) {
        Some(inherited) => tokio::net::TcpListener::from_std(inherited)?,
        None => http::server::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?,
    };
    let kept = lifecycle::reexec::keep(&listener)
        .map_err(|e| tracing::warn!(error = ?e.to_string(), "cannot keep the listening socket for a restart"))
        .ok();
    let local_addr = listener.local_addr()?;
    if config.listen.port() == 0 && config.root_url == default_root_url(config.listen) {
        config.root_url = default_root_url(local_addr);
    }
    let root_url = config.root_url.clone();
    let reconnect_grace = config.build_reconnect_grace;
    let settings_file = config
        .settings_file
        .clone()
        .unwrap_or_else(|| home.root.join(terminals::logs::SETTINGS_FILE));
    let terminal_logs = terminals::logs::read_settings(&settings_file)
        .and_then(|settings| terminals::logs::Logs::start(&home.root.join("terminals"), &settings))
        .map_err(anyhow::Error::msg)
        .context("reading the settings file")?;
    let (audit, audit_writer) = audit::AuditLog::start(store.clone(), config.audit_retention);
    let state = AppState {
        config: Arc::new(config),
        store,
        audit,
        node_list: Arc::default(),
        built_in: Arc::default(),
        jobs: Arc::default(),
        secret_key: Arc::new(secret_key),
        vault: Arc::new(vault),
        triggers: Arc::default(),
        agents: Arc::default(),
        builds: Arc::new(builds::Builds::new(home.jobs_dir(), reconnect_grace)),
        duplex: Arc::default(),
        ssh: Arc::default(),
        breakpoints: Arc::default(),
        terminals: Arc::new(terminals::Terminals::new(
            home.root.join("terminals"),
            terminal_logs,
        )),
        disk: disk.clone(),
        tasks: TaskTracker::new(),
        lifecycle: Arc::new(lifecycle::Lifecycle::new(shutdown.clone())),
        shutdown: shutdown.clone(),
    };
    state.tasks.spawn(disk::watch(disk, shutdown.clone()));
    state.tasks.spawn(triggers::timer::run(state.clone()));
    jobs::load(&state).await.context("reading the jobs")?;
    builds::start(&state)
        .await
        .context("loading the build queue and the running builds")?;
    terminals::load(&state)
        .await
        .context("reading the terminals")?;
    let app = http::router(state.clone());
    let header_read_timeout = state.config.http_header_timeout;
    let shared = state.clone();
    let serve = tokio::spawn(async move {
        http::server::serve(listener, app, header_read_timeout, caps, shutdown.clone()).await;
        state.agents.disconnect_all(GoAway {
            code: GoAwayCode::Shutdown,
            reason: "controller shutting down".into(),
        });
        state.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, state.tasks.wait()).await;
        // Last, so the sessions' ends above are in it.
        state.audit.close();
        audit_writer.finish(SHUTDOWN_GRACE).await;
        Ok(())
    });
    Ok(Started {
        local_addr,
        root_url,
        initial_admin_token,
        home,
        state: shared,
        listener: kept,
        serve,
    })
}
