//! Node operations on top of the store and the live-connection registry: what the CLI
//! commands and the REST API call. Node XML is parsed after the store call that read it,
//! never inside. Names are checked and kept in NFC ([`steward_protocol::names`]); a lookup
//! finds a node under the name as given, else under its NFC form.

pub mod built_in;

use serde_json::{Value, json};
use steward_protocol::channel::{GoAway, GoAwayCode};
use steward_protocol::disk_space::node_threshold;
use steward_protocol::names::{self, NameKind};
use steward_protocol::node_xml::{NodeConfig, NodeNameError};
use steward_protocol::shown::Shown;
use steward_protocol::xml::{MAX_XML_BYTES, XmlError};
use tokio_util::sync::CancellationToken;

use crate::agents::disk_space::{self, LowSpace};
use crate::agents::registry::{AgentKind, JAVA_AGENT_STATUS, LiveAgent};
use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::nodes::{self, NodeRecord, OfflineMark, WriteOutcome};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("No such node '{}'", Shown(.0))]
    NotFound(String),
    #[error("Node '{}' already exists", Shown(.0))]
    Exists(String),
    #[error(
        "A node named ‘{}’ already exists (‘{}’ differs from it only by case or compatibility form)",
        Shown(.existing),
        Shown(.name)
    )]
    LooksLike { name: String, existing: String },
    #[error("{0}")]
    BadName(#[from] NodeNameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Interrupted while waiting for node '{}'", Shown(.0))]
    Interrupted(String),
    #[error("Node configuration is {0} bytes once written, over the limit of {MAX_XML_BYTES}")]
    TooLarge(usize),
    /// A setting Steward interprets has a value it cannot use.
    #[error("Invalid node XML: {0}")]
    BadSetting(XmlError),
}

/// Checks what will be stored: the name (put in NFC), the disk-space threshold, and that
/// the written XML can be read back (escaping and indentation make it longer than what the
/// user sent). Gives back that XML.
fn check_storable(config: &mut NodeConfig) -> Result<String, NodeError> {
    config.name = names::check(NameKind::Node, &config.name)?;
    node_threshold(config).map_err(NodeError::BadSetting)?;
    let written = config.to_xml();
    if written.len() > MAX_XML_BYTES {
        return Err(NodeError::TooLarge(written.len()));
    }
    Ok(written)
}

fn refused(outcome: WriteOutcome, name: String) -> NodeError {
    match outcome {
        WriteOutcome::LooksLike(existing) => NodeError::LooksLike { name, existing },
        _ => NodeError::Exists(name),
    }
}

/// A node's state as users see it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// An agent connection is live.
    pub connected: bool,
    /// Connected with our agent, not temporarily offline and not low on disk space: it may
    /// take work. A node held by a Java agent.jar is connected but offline: that agent
    /// cannot run builds.
    pub online: bool,
    /// Why the node is offline.
    pub reason: Option<String>,
    pub live: Option<LiveAgent>,
    /// The latest sample shows less free disk than the node's threshold.
    pub low_disk: Option<LowSpace>,
}

impl NodeStatus {
    /// `online`, `offline`, and the reason in parentheses when there is one.
    pub fn describe(&self) -> String {
        let state = if self.online { "online" } else { "offline" };
        match &self.reason {
            Some(reason) => format!("{state} ({reason})"),
            None => state.to_owned(),
        }
    }
}

pub fn status(state: &AppState, record: &NodeRecord) -> NodeStatus {
    let name = &record.config.name;
    let live = state.agents.live(name);
    let connected = live.is_some();
    let low_disk = live
        .as_ref()
        .and_then(|l| l.monitors.as_ref()?.disk.as_ref())
        .and_then(|disk| disk_space::low(&record.config, disk));
    let reason = match (&record.temporarily_offline, &live) {
        (Some(mark), _) => Some(format!(
            "temporarily offline by {}: {}",
            mark.by, mark.message
        )),
        (None, Some(l)) if l.kind == AgentKind::JavaRemoting => Some(JAVA_AGENT_STATUS.to_owned()),
        (None, Some(_)) => low_disk.as_ref().map(LowSpace::reason),
        (None, None) => Some(
            state
                .agents
                .offline_reason(name)
                .unwrap_or_else(|| "not connected".into()),
        ),
    };
    let java = live
        .as_ref()
        .is_some_and(|l| l.kind == AgentKind::JavaRemoting);
    let online = connected && !java && record.temporarily_offline.is_none() && low_disk.is_none();
    NodeStatus {
        connected,
        online,
        reason,
        live,
        low_disk,
    }
}

pub async fn create(state: &AppState, mut config: NodeConfig, by: &Actor) -> Result<(), NodeError> {
    let xml = check_storable(&mut config)?;
    let name = config.name.clone();
    let key = name.clone();
    let outcome = state
        .store
        .call(move |c| nodes::insert(c, &key, &xml))
        .await;
    state.node_list.invalidate();
    match outcome? {
        WriteOutcome::Done => {
            state.agents.forget(&name);
            state.agents.notify_changed();
            state
                .audit
                .record(by, Action::NodeCreate, &name, Value::Null);
            Ok(())
        }
        refusal => Err(refused(refusal, name)),
    }
}

/// The node `name` names: the one stored under `name` exactly, else under `name` in NFC
/// (new names are stored in NFC; a node stored before keeps its spelling). Its
/// `config.name` is the stored name, which the registry and the store use.
pub async fn get(state: &AppState, name: &str) -> Result<NodeRecord, NodeError> {
    let key = name.to_owned();
    let canonical = names::canonical(name).into_owned();
    let row = state
        .store
        .call(move |c| match nodes::get(c, &key)? {
            None if canonical != key => nodes::get(c, &canonical),
            found => Ok(found),
        })
        .await?
        .ok_or_else(|| NodeError::NotFound(name.to_owned()))?;
    Ok(row.parse()?)
}

/// Every node, by name. The list parsed from the store is kept until a write through this
/// module (create, update, delete, offline marks) replaces it: `list-nodes` and the REST API
/// would otherwise parse every node's XML on each call, 10,000 of them in a large fleet.
pub async fn list(state: &AppState) -> Result<std::sync::Arc<Vec<NodeRecord>>, NodeError> {
    if let Some(list) = state.node_list.current() {
        return Ok(list);
    }
    let generation = state.node_list.generation();
    let rows = state.store.call(|c| nodes::list(c)).await?;
    // Thousands of documents: parsed on the blocking pool, after the store call.
    let parsed = tokio::task::spawn_blocking(move || {
        rows.into_iter()
            .map(nodes::NodeRow::parse)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?;
    let list = std::sync::Arc::new(parsed?);
    state.node_list.offer(generation, list.clone());
    Ok(list)
}

/// The parsed node list shared by readers; see [`list`].
#[derive(Default)]
pub struct NodeListCache {
    list: std::sync::Mutex<Option<std::sync::Arc<Vec<NodeRecord>>>>,
    /// Bumped by every write, so a list read before a write is never kept after it.
    generation: std::sync::atomic::AtomicU64,
}

impl NodeListCache {
    fn current(&self) -> Option<std::sync::Arc<Vec<NodeRecord>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps `list`, read from the store after `generation` was current, unless a write
    /// came since.
    fn offer(&self, generation: u64, list: std::sync::Arc<Vec<NodeRecord>>) {
        let mut slot = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() == generation {
            *slot = Some(list);
        }
    }

    /// Called after every committed write, and to read the nodes again from the store
    /// (`reload-configuration`).
    pub fn invalidate(&self) {
        let mut slot = self.list.lock().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *slot = None;
    }
}

/// Replaces a node's configuration. A rename ends the old name's connection, whose secret
/// no longer matches; other changes leave a live agent connected.
pub async fn update(
    state: &AppState,
    name: &str,
    mut config: NodeConfig,
    by: &Actor,
) -> Result<(), NodeError> {
    let mut xml = check_storable(&mut config)?;
    let name = get(state, name).await?.config.name;
    // A node stored under another form of the same name (NFD, by an earlier version) keeps
    // its spelling: the same name is no rename, which would disconnect its agent and
    // change its secret.
    if config.name != name && names::canonical(&config.name) == names::canonical(&name) {
        config.name = name.clone();
        xml = config.to_xml();
    }
    let (old, new) = (name.clone(), config.name.clone());
    let outcome = state
        .store
        .call(move |c| nodes::replace(c, &old, &config.name, &xml))
        .await;
    state.node_list.invalidate();
    match outcome? {
        WriteOutcome::Done => {}
        WriteOutcome::NotFound => return Err(NodeError::NotFound(name)),
        refusal => return Err(refused(refusal, new)),
    }
    let details = if new == name {
        Value::Null
    } else {
        json!({ "renamedTo": new })
    };
    state.audit.record(by, Action::NodeUpdate, &name, details);
    let name = name.as_str();
    if new != name {
        state.agents.disconnect(
            name,
            GoAway {
                code: GoAwayCode::NodeDeleted,
                reason: format!("node renamed to {new}"),
            },
        );
        state.agents.forget(name);
    }
    state.agents.notify_changed();
    // The disk-space threshold may have changed: a node now low is sampled more often.
    state.agents.wake_monitor(&new);
    Ok(())
}

/// Deletes a node for `by`. Its running builds are aborted at once (`Node NAME was deleted
/// by BY`), their steps killed over the agent's connection, which is closed with that
/// reason once they have ended (at most [`crate::builds::abort::NODE_DELETE_WAIT`]).
pub async fn delete(state: &AppState, name: &str, by: &Actor) -> Result<(), NodeError> {
    let stored = get(state, name).await?.config.name;
    let name = stored.as_str();
    let key = name.to_owned();
    let deleted = state.store.call(move |c| nodes::delete(c, &key)).await;
    state.node_list.invalidate();
    if !deleted? {
        return Err(NodeError::NotFound(name.to_owned()));
    }
    state
        .audit
        .record(by, Action::NodeDelete, name, Value::Null);
    // Gone from the store, the node takes no new build; the ones it runs end now.
    state.agents.notify_changed();
    crate::builds::abort::for_deleted_node(state, name, by).await;
    state.agents.disconnect(
        name,
        GoAway {
            code: GoAwayCode::NodeDeleted,
            reason: format!("node {name} was deleted by {}", by.user),
        },
    );
    state.agents.forget(name);
    state.agents.notify_changed();
    Ok(())
}

/// Sets (`Some`) or clears (`None`) the temporarily-offline mark.
pub async fn set_temporarily_offline(
    state: &AppState,
    name: &str,
    mark: Option<OfflineMark>,
    by: &Actor,
) -> Result<(), NodeError> {
    let (action, details) = match &mark {
        Some(mark) => (Action::NodeOffline, json!({ "message": mark.message })),
        None => (Action::NodeOnline, Value::Null),
    };
    let stored = get(state, name).await?.config.name;
    let name = stored.as_str();
    let key = name.to_owned();
    let marked = state
        .store
        .call(move |c| nodes::set_offline(c, &key, mark.as_ref()))
        .await;
    state.node_list.invalidate();
    if !marked? {
        return Err(NodeError::NotFound(name.to_owned()));
    }
    state.audit.record(by, action, name, details);
    state.agents.notify_changed();
    Ok(())
}

/// `connect-node`: inbound agents dial in by themselves, so there is nothing to launch;
/// the node must exist, and `force` drops a live connection so the agent reconnects
/// afresh.
pub async fn connect(
    state: &AppState,
    name: &str,
    force: bool,
    by: &Actor,
) -> Result<(), NodeError> {
    let stored = get(state, name).await?.config.name;
    state
        .audit
        .record(by, Action::NodeConnect, &stored, json!({ "force": force }));
    if force {
        state.agents.disconnect(
            &stored,
            GoAway {
                code: GoAwayCode::Disconnected,
                reason: format!(
                    "disconnected by {}: reconnecting (connect-node -f)",
                    by.user
                ),
            },
        );
    }
    Ok(())
}

/// Drops the agent connection of `name`; the agent reconnects by itself, as with Jenkins.
pub async fn disconnect(
    state: &AppState,
    name: &str,
    message: Option<&str>,
    by: &Actor,
) -> Result<bool, NodeError> {
    let stored = get(state, name).await?.config.name;
    let name = stored.as_str();
    state.audit.record(
        by,
        Action::NodeDisconnect,
        name,
        json!({ "message": message }),
    );
    let by = &by.user;
    let reason = match message {
        Some(m) => format!("disconnected by {by}: {m}"),
        None => format!("disconnected by {by}"),
    };
    Ok(state.agents.disconnect(
        name,
        GoAway {
            code: GoAwayCode::Disconnected,
            reason,
        },
    ))
}

/// Waits until `name` is online (`want_online`) or offline; fails if the node disappears.
pub async fn wait_for(
    state: &AppState,
    name: &str,
    want_online: bool,
    cancel: &CancellationToken,
) -> Result<(), NodeError> {
    let mut changes = state.agents.subscribe();
    loop {
        changes.borrow_and_update();
        let record = get(state, name).await?;
        if status(state, &record).online == want_online {
            return Ok(());
        }
        tokio::select! {
            r = changes.changed() => { if r.is_err() { return Err(NodeError::Interrupted(name.to_owned())); } }
            _ = cancel.cancelled() => return Err(NodeError::Interrupted(name.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(names: &[&str]) -> std::sync::Arc<Vec<NodeRecord>> {
        std::sync::Arc::new(
            names
                .iter()
                .map(|n| NodeRecord {
                    config: NodeConfig::inbound(*n),
                    temporarily_offline: None,
                })
                .collect(),
        )
    }

    #[test]
    fn a_list_read_before_a_write_is_not_kept_after_it() {
        let cache = NodeListCache::default();
        assert!(cache.current().is_none());
        let before = cache.generation();
        // A reader started, then a write committed before the reader offered its list.
        cache.invalidate();
        cache.offer(before, records(&["old"]));
        assert!(cache.current().is_none(), "a stale list was kept");

        let now = cache.generation();
        cache.offer(now, records(&["a", "b"]));
        assert_eq!(cache.current().map(|l| l.len()), Some(2));
        cache.invalidate();
        assert!(cache.current().is_none(), "a write did not drop the list");
    }

    #[tokio::test]
    async fn updating_a_node_stored_under_another_form_of_its_name_keeps_its_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::for_tests(dir.path());
        // Stored in NFD by an earlier version.
        let nfd = "cafe\u{301}".to_owned();
        let xml = NodeConfig::inbound(nfd.clone()).to_xml();
        let stored = nfd.clone();
        state
            .store
            .call(move |c| {
                c.execute(
                    "INSERT INTO nodes (name, config_xml, created_at, updated_at) VALUES (?1, ?2, 0, 0)",
                    rusqlite::params![stored, xml],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        // Its XML fed back, as get-node printed it.
        let mut changed = NodeConfig::inbound(nfd.clone());
        changed.description = "updated".into();
        update(&state, &nfd, changed, &Actor::system())
            .await
            .unwrap();
        let record = get(&state, &nfd).await.unwrap();
        assert_eq!(record.config.name, nfd, "renamed");
        assert_eq!(record.config.description, "updated");
    }
}
