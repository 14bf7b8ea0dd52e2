//! The SSH server inside the agent. It never listens on a port: the controller forwards each
//! SSH client's raw bytes as one channel stream (`Request::Ssh`), and the server runs on
//! that stream. Sessions run as the agent's user, in the work dir or a build's workspace.
//!
//! - [`mux_io`]: the channel stream as `AsyncRead` + `AsyncWrite`;
//! - [`host_key`]: the agent's ed25519 host key, made once per work dir;
//! - [`auth`]: which keys and user names may log in;
//! - [`handler`]: russh's callbacks for one connection, which start the rest as tasks:
//!   [`session`] (shell and exec, on a [`pty`] or pipes, their [`process`] groups),
//!   [`sftp`], and [`tcpip`] forwards;
//! - [`registry`]: the running connections, for notices and for closing them from outside.
//!
//! [`run_connection`] is generic over the byte stream, so tests drive it over TCP with the
//! real OpenSSH client.

pub mod auth;
pub mod handler;
pub mod host_key;
pub mod input;
pub mod mux_io;
pub mod process;
pub mod pty;
pub mod recorder;
pub mod registry;
pub mod session;
pub mod sftp;
pub mod tcpip;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet, SshId};
use steward_channel::{MuxStream, call};
use steward_protocol::services::{self, Response};
use steward_protocol::ssh::{SshRequest, SshTarget};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub use registry::Sessions;

use super::{Context, linger};

/// The version string the server announces.
pub const SERVER_ID: &str = "SSH-2.0-Steward_agent";
/// Interval of keepalives when the client is silent; with [`KEEPALIVE_MAX`] unanswered ones
/// a vanished client is noticed within about 45 s.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Keepalives left unanswered before the connection is dropped.
pub const KEEPALIVE_MAX: usize = 2;
/// Delay before a refused key's answer, so refusals all take the same time; short, since
/// clients offer several keys in turn.
pub const AUTH_REJECTION_TIME: Duration = Duration::from_millis(100);
/// Authentication attempts per connection: enough for a client with many keys in its agent.
pub const MAX_AUTH_ATTEMPTS: usize = 20;
/// Messages queued from the connection to one channel's task. With 32 KiB packets this
/// bounds what one channel holds to 512 KiB; a channel whose task is slower stalls the
/// connection rather than growing a queue.
pub const CHANNEL_BUFFER: usize = 16;
/// The internal directory (as Jenkins names it) where the host key, the agent socket and
/// `bin/` live.
pub const INTERNAL_DIR: &str = "remoting";
/// PATH when the agent itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `WORKDIR/remoting`.
pub fn internal_dir(work_dir: &Path) -> PathBuf {
    work_dir.join(INTERNAL_DIR)
}

/// Why a connection could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(transparent)]
    HostKey(#[from] host_key::HostKeyError),
    #[error("ssh: {0}")]
    Protocol(#[from] russh::Error),
}

/// The SSH server's state shared by all connections of this agent.
#[derive(Default)]
pub struct SshState {
    sessions: Sessions,
    host_key: Mutex<Option<Arc<PrivateKey>>>,
}

impl std::fmt::Debug for SshState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshState")
            .field("connections", &self.sessions.connections())
            .field("host_key", &"***")
            .finish()
    }
}

impl SshState {
    /// The running connections.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The host key, loaded (or made) on first use.
    pub fn host_key(&self, work_dir: &Path) -> Result<Arc<PrivateKey>, host_key::HostKeyError> {
        let mut cached = self.host_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = &*cached {
            return Ok(key.clone());
        }
        let key = Arc::new(host_key::load_or_create(work_dir)?);
        *cached = Some(key.clone());
        Ok(key)
    }
}

/// Serves `Request::Ssh`: answers `SshStarted`, then runs the SSH server on the stream until
/// either side ends it. Dropping this future ends the connection and its processes.
pub async fn serve(mut stream: MuxStream, request: SshRequest, context: &Context) {
    if let Err(e) = context.ssh().host_key(context.work_dir()) {
        let response = Response::Error {
            message: e.to_string(),
        };
        if call::reply(&mut stream, &response).await.is_ok() {
            linger(&mut stream.recv).await;
        }
        return;
    }
    let started = Bytes::from(services::encode(&Response::SshStarted));
    if stream.send(started).await.is_err() {
        return;
    }
    let cancel = CancellationToken::new();
    let _closed = cancel.clone().drop_guard();
    let (send, recv) = stream.into_split();
    let io = mux_io::MuxIo::new(send, recv, cancel.clone());
    let connection = request.connection;
    if let Err(e) = run_connection(io, request, context.clone(), cancel).await {
        debug!(connection, error = %e, "ssh connection ended");
    }
}

/// Serves `Request::SshHostKey`.
pub fn host_key_response(context: &Context) -> Response {
    match context.ssh().host_key(context.work_dir()) {
        Ok(key) => Response::SshHostKey {
            public_key: host_key::public_line(&key),
        },
        Err(e) => Response::Error {
            message: e.to_string(),
        },
    }
}

/// Runs one SSH connection over `io` until it ends or `cancel` fires; then ends what its
/// sessions started and waits (a bounded time) for them to be gone.
pub async fn run_connection<S>(
    io: S,
    request: SshRequest,
    context: Context,
    cancel: CancellationToken,
) -> Result<(), SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let work_dir = context.work_dir().to_path_buf();
    let host_key = context.ssh().host_key(&work_dir)?;
    if let Err(e) = crate::breakpoint::bin_dir(&work_dir) {
        info!(error = %e, "cannot install the breakpoint command for ssh sessions");
    }
    let connection = request.connection;
    info!(
        connection,
        client = ?request.client_address,
        steward_user = ?request.steward_user,
        "ssh connection"
    );
    let tasks = TaskTracker::new();
    let registration = context
        .ssh()
        .sessions()
        .register(connection, cancel.clone(), tasks.clone());
    let shared = Arc::new(handler::Shared {
        connection,
        policy: auth::KeyPolicy::for_connection(&request.allowed_keys, &request.target, &work_dir),
        setting: setting(&request, &work_dir),
        registration,
        tasks: tasks.clone(),
        cancel: cancel.clone(),
        context,
    });
    let handler = handler::Connection::new(shared);
    let config = Arc::new(config(&host_key));

    let result = tokio::select! {
        () = cancel.cancelled() => Ok(()),
        running = russh::server::run_stream(config, io, handler) => match running {
            Err(e) => Err(e.into()),
            Ok(running) => {
                let handle = running.handle();
                tokio::select! {
                    ended = running => ended.map_err(SshError::from),
                    () = cancel.cancelled() => {
                        let _ = handle
                            .disconnect(russh::Disconnect::ByApplication, "closed by Steward".into(), String::new())
                            .await;
                        Ok(())
                    }
                }
            }
        },
    };
    cancel.cancel();
    tasks.close();
    let _ = tokio::time::timeout(registry::CLOSE_WAIT, tasks.wait()).await;
    debug!(connection, "ssh connection closed");
    result
}

fn config(host_key: &PrivateKey) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard(SERVER_ID.into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: AUTH_REJECTION_TIME,
        // OpenSSH opens with a "none" attempt to learn the methods: answer it at once.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key.clone()],
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        // A quiet terminal is not a dead one: keepalives find dead clients instead.
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        channel_buffer_size: CHANNEL_BUFFER,
        ..Default::default()
    }
}

/// Where the connection's sessions start, and with what environment.
fn setting(request: &SshRequest, work_dir: &Path) -> session::Setting {
    let inherited = |name: &str| std::env::var(name).ok();
    let mut env: Vec<(String, String)> = Vec::new();
    for name in ["HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"] {
        if let Some(value) = inherited(name) {
            env.push((name.into(), value));
        }
    }
    let shell = inherited("SHELL")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    env.push(("SHELL".into(), shell.clone()));
    let mut path = inherited("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let cwd = match &request.target {
        SshTarget::Node => work_dir.to_path_buf(),
        SshTarget::Build(build) => {
            for (name, value) in &build.env {
                if name == "PATH" {
                    path = value.clone();
                } else {
                    env.retain(|(n, _)| n != name);
                    env.push((name.clone(), value.clone()));
                }
            }
            PathBuf::from(&build.workspace)
        }
    };
    // The `breakpoint` command: its directory first on PATH, the agent's socket, and the
    // connection, so the controller knows who asked.
    let command_env = crate::breakpoint::command_env(work_dir, Some(path.as_ref()));
    if !command_env.iter().any(|(name, _)| *name == "PATH") {
        env.push(("PATH".into(), path.clone()));
    }
    for (name, value) in command_env {
        env.push((name.into(), value.to_string_lossy().into_owned()));
    }
    env.push((
        crate::breakpoint::CONNECTION_ENV.into(),
        request.connection.to_string(),
    ));
    session::Setting {
        cwd,
        env,
        shell,
        input_dir: internal_dir(work_dir),
    }
}
