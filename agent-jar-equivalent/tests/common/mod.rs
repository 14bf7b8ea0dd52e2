//! The harness for the service tests: a controller-side channel wired over in-memory pipes
//! to an agent running `services::serve` in a temp work dir, plus waiting helpers. An agent
//! can lose its connection and get a new one ([`Agent::reconnect`]), or be dropped and a
//! new one started on the same work dir ([`Agent::start_in`]), as a restarted agent is.

#![allow(dead_code)] // each test file uses its own part of the harness

pub mod steps;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use steward_agent::services::{self, Context};
use steward_channel::{Channel, MuxStream, Side, call};
use steward_protocol::services::{Request, Response};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

/// Messages a pipe holds, like a socket buffer.
const PIPE: usize = 64;
/// How long a condition may take before a test fails; generous for loaded CI machines.
pub const DEADLINE: Duration = Duration::from_secs(20);

type Rx = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// One direction of the connection; it ends (as a lost connection) once `cut` is cancelled.
fn pipe(cut: CancellationToken) -> (PollSender<Bytes>, Rx) {
    let (tx, rx) = mpsc::channel::<Bytes>(PIPE);
    let rx = futures_util::stream::unfold((rx, cut), |(mut rx, cut)| async move {
        tokio::select! {
            () = cut.cancelled() => None,
            message = rx.recv() => message.map(|b| (Ok(b), (rx, cut))),
        }
    });
    (PollSender::new(tx), Box::pin(rx))
}

/// A temp work dir. When the last agent using it is gone, the steps still running in it are
/// killed (they outlive agents by design) before it is deleted.
pub struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let Ok(steps) = std::fs::read_dir(self.dir.path().join("steps")) else {
            return;
        };
        for entry in steps.flatten() {
            let step = steward_agent::services::steps::dir::StepDir {
                id: entry.file_name().to_string_lossy().into_owned(),
                path: entry.path(),
            };
            if let Some(leader) = step.leader()
                && leader.group_is_ours()
            {
                // SAFETY: killpg only sends a signal, to a group checked to be the step's.
                unsafe {
                    libc::killpg(leader.pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// An agent serving a temp work dir, and the controller's end of its channel.
pub struct Agent {
    pub controller: Channel,
    pub work: Arc<Work>,
    context: Context,
    cut: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Agent {
    pub fn start() -> Agent {
        let work = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        Agent::start_in(Arc::new(work))
    }

    /// An agent whose work dir is under the build's target directory: on the disk, where
    /// the page cache behaves as on an agent's disk (the system temp dir may be a tmpfs).
    #[allow(dead_code)]
    pub fn start_on_disk() -> Agent {
        let work = Work {
            dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        };
        Agent::start_in(Arc::new(work))
    }

    /// A new agent on `work`: what a restarted agent process is (nothing in memory).
    pub fn start_in(work: Arc<Work>) -> Agent {
        let context = Context::new(work.path().to_path_buf());
        let (controller, cut, tasks) = connect(&context);
        Agent {
            controller,
            work,
            context,
            cut,
            tasks,
        }
    }

    /// Loses the connection in both directions, as a dead socket would.
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// Loses the connection (aborting every handler) and connects again: the same agent,
    /// a new channel.
    pub async fn reconnect(&mut self) {
        self.cut();
        self.tasks.shutdown().await;
        (self.controller, self.cut, self.tasks) = connect(&self.context);
    }

    pub fn path(&self, relative: &str) -> String {
        self.work.path().join(relative).display().to_string()
    }

    pub async fn call(&self, request: Request) -> Response {
        within(call::call(&self.controller, &request))
            .await
            .unwrap()
    }

    pub async fn open(&self, request: &Request) -> MuxStream {
        call::open(&self.controller, request).await.unwrap()
    }
}

/// A channel over in-memory pipes with `context`'s services on the agent's end.
fn connect(context: &Context) -> (Channel, CancellationToken, tokio::task::JoinSet<()>) {
    let cut = CancellationToken::new();
    let (c_tx, a_rx) = pipe(cut.clone());
    let (a_tx, c_rx) = pipe(cut.clone());
    let (controller, _controller_incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
    let (_agent, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        c_driver.await;
    });
    tasks.spawn(async move {
        a_driver.await;
    });
    tasks.spawn(services::serve(agent_incoming, context.clone()));
    (controller, cut, tasks)
}

/// Runs `future`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("the condition was not met within the deadline")
}

/// Waits until `condition` holds, checking often, failing after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `pid` is a live process; a zombie waiting for its (new) parent to reap it
/// counts as dead: it runs nothing and holds nothing.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

/// `len` bytes of a fixed pseudo-random pattern, so corruption shows in a digest.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
