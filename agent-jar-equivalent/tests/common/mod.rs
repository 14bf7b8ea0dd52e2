//! The harness for the service tests: a controller-side channel wired over in-memory pipes
//! to an agent running `services::serve` in a temp work dir, plus waiting helpers.

#![allow(dead_code)] // each test file uses its own part of the harness

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

/// An agent serving a temp work dir, and the controller's end of its channel.
pub struct Agent {
    pub controller: Channel,
    pub work: tempfile::TempDir,
    cut: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Agent {
    pub fn start() -> Agent {
        let work = tempfile::tempdir().unwrap();
        let cut = CancellationToken::new();
        let (c_tx, a_rx) = pipe(cut.clone());
        let (a_tx, c_rx) = pipe(cut.clone());
        let (controller, _controller_incoming, c_driver) =
            Channel::start(c_tx, c_rx, Side::Controller);
        let (_agent, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            c_driver.await;
        });
        tasks.spawn(async move {
            a_driver.await;
        });
        let context = Context::new(work.path().to_path_buf());
        tasks.spawn(services::serve(agent_incoming, context));
        Agent {
            controller,
            work,
            cut,
            tasks,
        }
    }

    /// Loses the connection in both directions, as a dead socket would.
    pub fn cut(&self) {
        self.cut.cancel();
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
