//! Terminals: named, long-lived PTY sessions on nodes, shared by the clients attached to
//! them, recorded, and running whether or not anyone is attached.
//!
//! - here: the terminals the controller manages ([`Terminals`], one [`Terminal`] each, with
//!   its settings, its state, its clients and its screen) and the operations the CLI and
//!   REST call (create, update, delete, start, stop, attach);
//! - [`settings`]: names, drivers and parameters, checked;
//! - [`runner`]: the task that keeps one terminal running on its node: it opens the agent's
//!   stream (the agent starts or finds the holder), feeds the output to the screen, the
//!   clients and the recording, passes input and resizes on, and restarts the program 10 s
//!   after it exits;
//! - [`hub`]: the clients, the size they make and their bounded queues;
//! - [`screen`]: the vt100 model a new client is drawn from;
//! - [`recording`]: asciicast v2 files; [`logs`]: the lines to `console.log` and TCP or
//!   UDP targets; [`replies`]: terminal replies only one client gives.
//!
//! The holder on the agent (`agent-jar-equivalent/src/terminals/`) owns the PTY and the
//! program, so a terminal survives its clients, the agent and this controller.

pub mod hub;
pub mod logs;
pub mod recording;
pub mod replies;
pub mod runner;
pub mod screen;
pub mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::Serialize;
use steward_protocol::shown::Shown;
use steward_protocol::terminals::{DEFAULT_SIZE, Size};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::terminals::{self as rows, RecordingRow, TerminalRow};
use hub::{ClientInfo, ClientQueue, Hub};
use screen::Screen;
use settings::SettingsError;

/// Lines `^Ecr` replays.
pub const REPLAY_LINES: usize = 30;
/// Input waiting for the runner, per terminal, before typing clients wait.
const CONTROL_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("No such terminal ‘{}’", Shown(.0))]
    NotFound(String),
    #[error("A terminal named ‘{}’ already exists", Shown(.0))]
    Exists(String),
    #[error("No such node ‘{}’", Shown(.0))]
    NoSuchNode(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a terminal is, as `list-terminals` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Status {
    /// Stopped by a user (`stop-terminal`).
    Off,
    /// `ondemand`, and nobody attached: it starts on the first attach.
    Idle,
    /// It should run, and cannot now.
    Waiting { reason: String },
    /// Its program runs.
    Running {
        run: String,
        #[serde(rename = "sinceMs")]
        since_ms: i64,
        pid: u32,
    },
    /// Its program exited; it starts again at `atMs`.
    Restarting {
        #[serde(rename = "atMs")]
        at_ms: i64,
        exit: String,
    },
}

impl Status {
    pub fn word(&self) -> &'static str {
        match self {
            Status::Off => "off",
            Status::Idle => "idle",
            Status::Waiting { .. } => "waiting",
            Status::Running { .. } => "on",
            Status::Restarting { .. } => "restarting",
        }
    }
}

/// What clients send the runner.
#[derive(Debug)]
pub enum Control {
    Input { client: u64, data: Vec<u8> },
    Resize(Size),
}

/// One terminal.
pub struct Terminal {
    pub name: String,
    settings: watch::Sender<TerminalRow>,
    status: watch::Sender<Status>,
    clients: watch::Sender<usize>,
    hub: Mutex<Hub>,
    screen: Screen,
    control: mpsc::Sender<Control>,
    deleted: CancellationToken,
    next_client: AtomicU64,
    /// `HOME/terminals/NAME`.
    pub dir: PathBuf,
}

impl Terminal {
    pub fn settings(&self) -> TerminalRow {
        self.settings.borrow().clone()
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        self.hub().clients()
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.join("recordings")
    }

    /// Attaches a client: its queue starts with the screen as it is now.
    pub fn attach(self: &Arc<Self>, user: &str, address: &str, read_only: bool) -> Attached {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed) + 1;
        let info = ClientInfo {
            id,
            user: user.to_owned(),
            address: address.to_owned(),
            read_only,
            since_ms: crate::builds::now_ms(),
            size: None,
        };
        let mut hub = self.hub();
        let queue = hub.attach(info, vec![Bytes::from(self.screen.snapshot())]);
        let count = hub.len();
        drop(hub);
        self.clients.send_replace(count);
        tracing::info!(
            terminal = self.name,
            user,
            address,
            read_only,
            client = id,
            "terminal client attached"
        );
        Attached {
            terminal: self.clone(),
            id,
            queue,
        }
    }

    fn detach(&self, id: u64) {
        let mut hub = self.hub();
        if hub.detach(id) {
            let count = hub.len();
            let resize = self.size_change(&mut hub);
            drop(hub);
            self.clients.send_replace(count);
            if let Some(size) = resize {
                let _ = self.control.try_send(Control::Resize(size));
            }
            tracing::info!(
                terminal = self.name,
                client = id,
                "terminal client detached"
            );
        }
    }

    /// The new size when the clients' windows call for one; recorded in the hub.
    fn size_change(&self, hub: &mut Hub) -> Option<Size> {
        let wanted = hub.wanted_size()?;
        if wanted == hub.size() {
            return None;
        }
        hub.set_size(wanted);
        Some(wanted)
    }

    /// Tells every client a line.
    pub fn message(&self, text: &str) {
        self.hub().message(text);
    }

    /// Output from the program: to the screen and every client.
    fn output(&self, data: Bytes) {
        let mut hub = self.hub();
        let dropped = hub::broadcast(&mut hub, &self.screen, data);
        if !dropped.is_empty() {
            let count = hub.len();
            let resize = self.size_change(&mut hub);
            drop(hub);
            self.clients.send_replace(count);
            if let Some(size) = resize {
                let _ = self.control.try_send(Control::Resize(size));
            }
            tracing::info!(terminal = self.name, clients = ?dropped, "slow terminal clients dropped");
        }
    }
}

/// A client attached to a terminal; dropping it detaches.
pub struct Attached {
    pub terminal: Arc<Terminal>,
    pub id: u64,
    pub queue: ClientQueue,
}

impl Attached {
    /// Keystrokes: dropped for a read-only client, replies to the program's questions
    /// taken out for all but the answering client; then to the runner (waiting while its
    /// queue is full).
    pub async fn input(&self, data: &[u8]) {
        let (read_only, answerer) = {
            let hub = self.terminal.hub();
            (hub.is_read_only(self.id), hub.answerer())
        };
        if read_only != Some(false) {
            return;
        }
        let data = if answerer == Some(self.id) {
            data.to_vec()
        } else {
            replies::without_replies(data)
        };
        if data.is_empty() {
            return;
        }
        let _ = self
            .terminal
            .control
            .send(Control::Input {
                client: self.id,
                data,
            })
            .await;
    }

    /// The client's window size.
    pub fn resize(&self, size: Size) {
        let mut hub = self.terminal.hub();
        hub.set_client_size(self.id, size);
        if let Some(size) = self.terminal.size_change(&mut hub) {
            drop(hub);
            let _ = self.terminal.control.try_send(Control::Resize(size));
        }
    }

    /// `^Ecw`: who is attached.
    pub fn who(&self) -> String {
        let clients = self.terminal.clients();
        let mut text = format!(
            "{} client(s) attached to {}:",
            clients.len(),
            self.terminal.name
        );
        for c in clients {
            let mode = if c.read_only {
                "read-only"
            } else {
                "read-write"
            };
            let me = if c.id == self.id { " (you)" } else { "" };
            text.push_str(&format!(
                "\r\n  {} from {}, {mode}, since {}{me}",
                c.user,
                c.address,
                steward_protocol::duration::utc(c.since_ms)
            ));
        }
        text
    }

    /// `^Ecr`: the last lines.
    pub fn replay(&self) -> String {
        self.terminal.screen.last_lines(REPLAY_LINES).join("\r\n")
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.terminal.detach(self.id);
    }
}

/// Every terminal of this controller.
pub struct Terminals {
    map: Mutex<BTreeMap<String, Arc<Terminal>>>,
    root: PathBuf,
    logs: logs::Logs,
}

impl Terminals {
    /// `root` is `HOME/terminals`; `logs` the outputs every terminal's lines go to.
    pub fn new(root: PathBuf, logs: logs::Logs) -> Terminals {
        Terminals {
            map: Mutex::default(),
            root,
            logs,
        }
    }

    pub fn logs(&self) -> &logs::Logs {
        &self.logs
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Terminal>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Terminal>> {
        let map = self.map();
        map.get(name)
            .or_else(|| map.get(steward_protocol::names::canonical(name).as_ref()))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Terminal>> {
        self.map().values().cloned().collect()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Adds a terminal and starts its runner.
    fn spawn(&self, state: &AppState, row: TerminalRow) -> Arc<Terminal> {
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let terminal = Arc::new(Terminal {
            name: row.name.clone(),
            dir: self.root.join(&row.name),
            settings: watch::Sender::new(row),
            status: watch::Sender::new(Status::Waiting {
                reason: "starting".into(),
            }),
            clients: watch::Sender::new(0),
            hub: Mutex::new(Hub::new(DEFAULT_SIZE)),
            screen: Screen::new(DEFAULT_SIZE),
            control,
            deleted: CancellationToken::new(),
            next_client: AtomicU64::new(0),
        });
        self.map().insert(terminal.name.clone(), terminal.clone());
        state
            .tasks
            .spawn(runner::run(state.clone(), terminal.clone(), control_rx));
        terminal
    }
}

/// Loads the stored terminals and starts their runners (at start-up).
pub async fn load(state: &AppState) -> Result<(), StoreError> {
    let rows = state.store.call(|c| rows::list(c)).await?;
    for row in rows {
        state.terminals.spawn(state, row);
    }
    Ok(())
}

/// What `create-terminal` and `POST /terminals` give.
#[derive(Debug, Clone)]
pub struct NewTerminal {
    pub name: String,
    pub node: String,
    pub driver: String,
    pub ondemand: bool,
    pub params: Vec<(String, String)>,
}

pub async fn create(state: &AppState, new: NewTerminal, by: &Actor) -> Result<(), TerminalError> {
    let name = settings::check_name(&new.name)?;
    let driver = settings::check_driver(&new.driver)?;
    let node = crate::nodes::get(state, &new.node)
        .await
        .map_err(|_| TerminalError::NoSuchNode(new.node.clone()))?
        .config
        .name;
    let now = crate::builds::now_ms();
    let mut row = TerminalRow {
        name: name.clone(),
        node,
        driver: driver.to_owned(),
        ondemand: new.ondemand,
        enabled: true,
        params: BTreeMap::new(),
        secrets: BTreeMap::new(),
        created_ms: now,
        updated_ms: now,
    };
    settings::apply_params(&mut row, &new.params)?;
    let stored = row.clone();
    let inserted = state.store.call(move |c| rows::insert(c, &stored)).await?;
    if !inserted {
        return Err(TerminalError::Exists(name));
    }
    // Its settings' names, never their values: a parameter may be a secret.
    state
        .audit
        .record(by, Action::TerminalCreate, &name, summary(&row));
    state.terminals.spawn(state, row);
    Ok(())
}

/// What the audit log says of a terminal's settings.
fn summary(row: &TerminalRow) -> serde_json::Value {
    serde_json::json!({
        "node": row.node,
        "driver": row.driver,
        "ondemand": row.ondemand,
        "params": row.params.keys().chain(row.secrets.keys()).collect::<Vec<_>>(),
    })
}

/// What `update-terminal` and `PUT /terminals/NAME` change; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct TerminalChanges {
    pub node: Option<String>,
    pub driver: Option<String>,
    pub ondemand: Option<bool>,
    pub params: Vec<(String, String)>,
}

pub async fn update(
    state: &AppState,
    name: &str,
    changes: TerminalChanges,
    by: &Actor,
) -> Result<(), TerminalError> {
    let terminal = find(state, name)?;
    let mut row = terminal.settings();
    if let Some(driver) = &changes.driver {
        row.driver = settings::check_driver(driver)?.to_owned();
    }
    if let Some(node) = &changes.node {
        row.node = crate::nodes::get(state, node)
            .await
            .map_err(|_| TerminalError::NoSuchNode(node.clone()))?
            .config
            .name;
    }
    if let Some(ondemand) = changes.ondemand {
        row.ondemand = ondemand;
    }
    settings::apply_params(&mut row, &changes.params)?;
    row.updated_ms = crate::builds::now_ms();
    let details = summary(&row);
    store_settings(state, &terminal, row).await?;
    state
        .audit
        .record(by, Action::TerminalUpdate, &terminal.name, details);
    Ok(())
}

/// `start-terminal` and `stop-terminal`.
pub async fn set_enabled(
    state: &AppState,
    name: &str,
    enabled: bool,
    by: &Actor,
) -> Result<(), TerminalError> {
    let terminal = find(state, name)?;
    let mut row = terminal.settings();
    row.enabled = enabled;
    row.updated_ms = crate::builds::now_ms();
    store_settings(state, &terminal, row).await?;
    let action = if enabled {
        Action::TerminalEnable
    } else {
        Action::TerminalDisable
    };
    state
        .audit
        .record(by, action, &terminal.name, serde_json::Value::Null);
    Ok(())
}

async fn store_settings(
    state: &AppState,
    terminal: &Arc<Terminal>,
    row: TerminalRow,
) -> Result<(), TerminalError> {
    let stored = row.clone();
    let updated = state.store.call(move |c| rows::update(c, &stored)).await?;
    if !updated {
        return Err(TerminalError::NotFound(row.name));
    }
    terminal.settings.send_replace(row);
    Ok(())
}

/// Deletes a terminal: its program is stopped on its node (when the node is connected),
/// its clients disconnected, its recordings deleted.
pub async fn delete(state: &AppState, name: &str, by: &Actor) -> Result<(), TerminalError> {
    let terminal = find(state, name)?;
    let key = terminal.name.clone();
    let deleted = state.store.call(move |c| rows::delete(c, &key)).await?;
    if !deleted {
        return Err(TerminalError::NotFound(name.to_owned()));
    }
    state.audit.record(
        by,
        Action::TerminalDelete,
        &terminal.name,
        serde_json::Value::Null,
    );
    state.terminals.map().remove(&terminal.name);
    terminal.deleted.cancel();
    terminal
        .hub()
        .close_all(&format!("=== Terminal {} was deleted ===", terminal.name));
    let dir = terminal.dir.clone();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    Ok(())
}

pub fn find(state: &AppState, name: &str) -> Result<Arc<Terminal>, TerminalError> {
    state
        .terminals
        .get(name)
        .ok_or_else(|| TerminalError::NotFound(name.to_owned()))
}

/// A terminal as `get-terminal`, `list-terminals` and the REST API show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalView {
    pub name: String,
    pub node: String,
    pub driver: String,
    pub ondemand: bool,
    pub enabled: bool,
    pub params: BTreeMap<String, String>,
    pub status: Status,
    pub clients: Vec<ClientView>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    pub user: String,
    pub address: String,
    pub read_only: bool,
    pub since_ms: i64,
}

pub fn view(terminal: &Terminal) -> TerminalView {
    let row = terminal.settings();
    TerminalView {
        params: settings::shown_params(&row),
        name: row.name,
        node: row.node,
        driver: row.driver,
        ondemand: row.ondemand,
        enabled: row.enabled,
        status: terminal.status(),
        clients: terminal
            .clients()
            .into_iter()
            .map(|c| ClientView {
                user: c.user,
                address: c.address,
                read_only: c.read_only,
                since_ms: c.since_ms,
            })
            .collect(),
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    }
}

/// A terminal's recordings (every terminal's with `None`), oldest first.
pub async fn recordings(
    state: &AppState,
    name: Option<&str>,
) -> Result<Vec<RecordingRow>, TerminalError> {
    let name = match name {
        Some(name) => Some(find(state, name)?.name.clone()),
        None => None,
    };
    Ok(state
        .store
        .call(move |c| rows::recordings(c, name.as_deref()))
        .await?)
}

/// The file of one recording.
pub fn recording_path(terminal: &Terminal, id: &str) -> Option<PathBuf> {
    let safe = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    safe.then(|| terminal.recordings_dir().join(format!("{id}.cast")))
}
