//! What every handler and session shares.

use std::sync::Arc;

use steward_protocol::secret::SecretKey;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::registry::AgentRegistry;
use crate::cli::duplex::PendingDuplex;
use crate::config::Config;
use crate::store::Store;

/// Shared controller state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// The parsed node list, kept between writes (`nodes::list`).
    pub node_list: Arc<crate::nodes::NodeListCache>,
    /// The HMAC key node secrets derive from.
    pub secret_key: Arc<SecretKey>,
    pub agents: Arc<AgentRegistry>,
    /// The build queue and the running builds.
    pub builds: Arc<crate::builds::Builds>,
    /// Full-duplex HTTP CLI downloads waiting for their upload side.
    pub duplex: Arc<PendingDuplex>,
    /// The home's disk: the reserved space and the "disk full" state.
    pub disk: Arc<crate::disk::Disk>,
    /// Background sessions (CLI over HTTP) the server waits for on shutdown.
    pub tasks: TaskTracker,
    /// Cancelled when the controller shuts down.
    pub shutdown: CancellationToken,
}
