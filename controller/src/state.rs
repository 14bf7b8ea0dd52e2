//! What every handler and session shares.

use std::sync::Arc;

use steward_protocol::secret::SecretKey;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::registry::AgentRegistry;
use crate::cli::duplex::Handoff;
use crate::cli::pairing::PendingDuplex;
use crate::config::Config;
use crate::store::Store;

/// Shared controller state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// The parsed node list, kept between writes (`nodes::list`).
    pub node_list: Arc<crate::nodes::NodeListCache>,
    /// The built-in node's offline mark (`offline-node ""`).
    pub built_in: Arc<crate::nodes::built_in::BuiltIn>,
    /// Every job, parsed (`jobs::cache`).
    pub jobs: Arc<crate::jobs::cache::JobCache>,
    /// The HMAC key node secrets derive from.
    pub secret_key: Arc<SecretKey>,
    pub agents: Arc<AgentRegistry>,
    /// The build queue and the running builds.
    pub builds: Arc<crate::builds::Builds>,
    /// Full-duplex HTTP CLI downloads waiting for their upload side.
    pub duplex: Arc<PendingDuplex<Handoff>>,
    /// The SSH connections being forwarded (`ssh::connections`).
    pub ssh: Arc<crate::ssh::connections::SshConnections>,
    /// The builds held at a breakpoint (`breakpoints`).
    pub breakpoints: Arc<crate::breakpoints::Breakpoints>,
    /// The terminals on nodes (`terminals`).
    pub terminals: Arc<crate::terminals::Terminals>,
    /// The key credentials are sealed with (`credentials::vault`).
    pub vault: Arc<crate::credentials::vault::Vault>,
    /// Polling and cron triggers (`triggers`).
    pub triggers: Arc<crate::triggers::Triggers>,
    /// The home's disk: the reserved space and the "disk full" state.
    pub disk: Arc<crate::disk::Disk>,
    /// Who did what (`audit`).
    pub audit: crate::audit::AuditLog,
    /// The session id and the end administrators ask for (`lifecycle`).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// Background sessions (CLI over HTTP) the server waits for on shutdown.
    pub tasks: TaskTracker,
    /// Cancelled when the controller shuts down.
    pub shutdown: CancellationToken,
}

#[cfg(test)]
impl AppState {
    /// A controller's state over a fresh store in `dir`, serving nothing: for unit tests of
    /// the services that take the whole state.
    pub fn for_tests(dir: &std::path::Path) -> AppState {
        let listen = "127.0.0.1:0".parse().expect("an address");
        let store = Store::open(&dir.join("steward.db")).expect("a store");
        // Its writer runs on the test's runtime until the test ends.
        let (audit, _writer) =
            crate::audit::AuditLog::start(store.clone(), crate::audit::Retention::default());
        let shutdown = CancellationToken::new();
        AppState {
            config: Arc::new(Config::new(dir.to_path_buf(), listen)),
            store,
            audit,
            node_list: Arc::default(),
            built_in: Arc::default(),
            jobs: Arc::default(),
            secret_key: Arc::new(SecretKey::from_slice(&[7; 32]).expect("a 32-byte key")),
            vault: Arc::new(
                crate::credentials::vault::Vault::from_bytes(&[9; 32]).expect("a 32-byte key"),
            ),
            triggers: Arc::default(),
            agents: Arc::default(),
            builds: Arc::new(crate::builds::Builds::new(
                dir.join("jobs"),
                crate::builds::DEFAULT_RECONNECT_GRACE,
            )),
            duplex: Arc::default(),
            ssh: Arc::default(),
            breakpoints: Arc::default(),
            terminals: Arc::new(crate::terminals::Terminals::new(
                dir.join("terminals"),
                crate::terminals::logs::Logs::default(),
            )),
            disk: Arc::new(crate::disk::Disk::open(dir)),
            tasks: TaskTracker::new(),
            lifecycle: Arc::new(crate::lifecycle::Lifecycle::new(shutdown.clone())),
            shutdown,
        }
    }
}
