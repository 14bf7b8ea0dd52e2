//! Durable steps with the real `agent` binary: the agent is killed with SIGKILL in the middle
//! of a step, the step goes on without it and finishes, and a new agent process on the same
//! work dir lists it as ended and serves the rest of its log from where the first tail
//! stopped.
//!
//! The controller runs in this process (its library, as `channel-bench` runs it), driving
//! the step through `steward_channel::steps` as the build runner does; the agent is the
//! binary a user runs. Builds over the same steps are tested in builds.rs and
//! build_faults.rs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use steward_channel::Channel;
use steward_channel::steps::{self, Tail};
use steward_controller::config::Config;
use steward_controller::nodes;
use steward_controller::state::AppState;
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::steps::{StepEvent, StepOutcome, StepSpec, StepState};
use steward_tests::{Agent, DEADLINE};
use tokio_util::sync::CancellationToken;

const NODE: &str = "durable";
const POLL: Duration = Duration::from_millis(25);

/// Starts the agent binary for `NODE` on `work`.
fn agent(state: &AppState, url: &str, work: &Path) -> Agent {
    let secret = state.secret_key.node_secret(NODE);
    let work = work.display().to_string();
    Agent::spawn(&[
        "-webSocket",
        "-url",
        url,
        "-name",
        NODE,
        "-secret",
        secret.expose(),
        "-workDir",
        &work,
    ])
}

/// Waits for a live channel to the node (not one whose connection has ended).
async fn live_channel(state: &AppState, agent: &Agent) -> Channel {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(channel) = state.agents.channel(NODE)
            && !channel.is_closed()
        {
            return channel;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not connect:\n{}",
            agent.output.text()
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("not done within the deadline")
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

async fn next_event(tail: &mut Tail) -> Option<Result<StepEvent, String>> {
    within(tail.next())
        .await
        .map(|event| event.map_err(|e| e.to_string()))
}

async fn open_tail(channel: &Channel, offset: u64) -> Tail {
    within(Tail::open(channel, "build", offset))
        .await
        .expect("the tail opens")
}

/// Kills the step's process group when dropped before the step has written its result, so
/// a failing test leaves no step behind (it would outlive the test, by design).
struct StepGuard {
    pgid: i32,
    result: std::path::PathBuf,
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        if self.pgid > 1 && !self.result.exists() {
            // SAFETY: killpg only sends a signal, to the group this test started.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_survives_kill_9_of_its_agent_and_a_new_agent_serves_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let config = Config::new(
        home.path().join("controller"),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    let started = steward_controller::start(config, shutdown.clone())
        .await
        .unwrap();
    let state = started.state().clone();
    let url = started.root_url.to_string();
    let by = steward_controller::audit::Actor::system();
    nodes::create(&state, NodeConfig::inbound(NODE), &by)
        .await
        .unwrap();
    let mut first = agent(&state, &url, work.path());
    let channel = live_channel(&state, &first).await;

    // The script holds until the test creates `release`, untraced while it waits.
    let spec = StepSpec {
        script: b"echo before\nset +x\nwhile [ ! -e release ]; do sleep 0.01; done\nset -x\necho after\nexit 3\n".to_vec(),
        env: Vec::new(),
    };
    let steps::Started { pgid, dir } = within(steps::start(&channel, "build", "ws", &spec))
        .await
        .expect("the step starts");
    let step_dir = work.path().join("steps/build");
    assert_eq!(Path::new(&dir), step_dir);
    let _guard = StepGuard {
        pgid,
        result: step_dir.join("result"),
    };

    let mut tail = open_tail(&channel, 0).await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("+ set +x\n") {
        match next_event(&mut tail).await {
            Some(Ok(StepEvent::Log(data))) => seen.extend(data),
            other => panic!("unexpected {other:?}"),
        }
    }

    // The wrapper holds none of the agent's sockets (a held WebSocket would keep the dead
    // agent's connection open), and its standard streams are /dev/null and the log. (Other
    // descriptors may come from whatever started this test: they are inherited by design.)
    let log_path = step_dir.join("log");
    let fds: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(format!("/proc/{pgid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).unwrap(),
            )
        })
        .collect();
    assert!(
        fds.iter()
            .all(|(_, target)| !target.to_string_lossy().starts_with("socket:")),
        "{fds:?}"
    );
    let standard = |fd: &str| fds.iter().find(|(n, _)| n == fd).map(|(_, t)| t.clone());
    assert_eq!(standard("0"), Some("/dev/null".into()));
    assert_eq!(standard("1").as_ref(), Some(&log_path));
    assert_eq!(standard("2").as_ref(), Some(&log_path));

    // kill -9 the agent in the middle of the step.
    first.kill();
    let ended = next_event(&mut tail).await;
    assert!(
        matches!(ended, Some(Err(_))),
        "the tail dies with the agent: {ended:?}"
    );
    assert!(running(pgid), "the step outlives its agent");

    // With no agent at all, the step goes on and records its end.
    std::fs::write(work.path().join("ws/release"), b"").unwrap();
    let result = step_dir.join("result");
    wait_until("the step writes its result", || result.exists()).await;
    assert_eq!(std::fs::read_to_string(&result).unwrap(), "3\n");
    let log = std::fs::read(step_dir.join("log")).unwrap();

    // A new agent process on the same work dir sees the step as ended, with all of its log.
    let second = agent(&state, &url, work.path());
    let channel = live_channel(&state, &second).await;
    let steps = within(steps::list(&channel)).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].id, "build");
    assert_eq!(
        steps[0].state,
        StepState::Ended(StepOutcome::Exited { code: 3 })
    );
    assert_eq!(steps[0].log_len, log.len() as u64);

    // The rest of the log, from where the first tail stopped: no gap, no repeat.
    let mut tail = open_tail(&channel, seen.len() as u64).await;
    let mut end = None;
    while let Some(event) = next_event(&mut tail).await {
        match event.expect("the tail stays healthy") {
            StepEvent::Log(data) => seen.extend(data),
            StepEvent::Ended(outcome) => end = Some(outcome),
        }
    }
    assert_eq!(end, Some(StepOutcome::Exited { code: 3 }));
    assert_eq!(seen, log);
    assert!(String::from_utf8_lossy(&seen).ends_with("+ echo after\nafter\n+ exit 3\n"));

    drop(second);
    shutdown.cancel();
    within(started.wait()).await.unwrap();
}
