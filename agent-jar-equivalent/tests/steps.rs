//! Durable steps through a real channel: the log streamed as it grows and then the exit
//! code, tails from any offset, `sh -xe`, env and workspace, a step that outlives its tail,
//! its connection and its agent, kills of the whole tree with and without SIGKILL, lost
//! steps, listing and removal, and the refusals.
//!
//! Scripts that must pause wait for a file the test creates (`release`), so the test, not
//! the clock, decides when they go on.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::{Agent, alive, wait_until, within};
use steward_channel::{MuxStream, call};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{self, MAX_RESPONSE_LEN, Request, Response};
use steward_protocol::steps::{
    MAX_STEP_SPEC_LEN, StepEvent, StepOutcome, StepSpec, StepState, StepStatus,
};

/// Script lines that wait until `name` exists in the workspace, untraced so the log does
/// not grow while they wait: they add exactly `+ set +x` to it.
fn wait_for(name: &str) -> String {
    format!("set +x\nwhile [ ! -e {name} ]; do sleep 0.01; done\nset -x\n")
}

fn spec(script: &str) -> StepSpec {
    StepSpec {
        script: script.as_bytes().to_vec(),
        env: Vec::new(),
    }
}

/// `StartStep` with `spec` as the stream's data; the answer.
async fn start(agent: &Agent, id: &str, workspace: &str, spec: &StepSpec) -> Response {
    let request = Request::StartStep {
        id: id.into(),
        workspace: workspace.into(),
    };
    let mut stream = agent.open(&request).await;
    stream
        .send(Bytes::from(services::encode(spec)))
        .await
        .unwrap();
    stream.finish().await.unwrap();
    let body = within(stream.recv.read_to_end(MAX_RESPONSE_LEN))
        .await
        .unwrap();
    services::decode(&body).unwrap()
}

/// Starts a step that must start; its pgid.
async fn started(agent: &Agent, id: &str, script: &str) -> i32 {
    match start(agent, id, "ws", &spec(script)).await {
        Response::StepStarted { pgid, dir } => {
            assert_eq!(PathBuf::from(dir), step_path(agent, id));
            pgid
        }
        other => panic!("step {id} did not start: {other:?}"),
    }
}

fn step_path(agent: &Agent, id: &str) -> PathBuf {
    agent.work.path().join("steps").join(id)
}

fn log_file(agent: &Agent, id: &str) -> Vec<u8> {
    std::fs::read(step_path(agent, id).join("log")).unwrap()
}

fn release(agent: &Agent, name: &str) {
    std::fs::write(agent.work.path().join("ws").join(name), b"").unwrap();
}

/// Opens a tail; the stream and the log length the agent announced.
async fn open_tail(agent: &Agent, id: &str, offset: u64) -> (MuxStream, u64) {
    let request = Request::TailStep {
        id: id.into(),
        offset,
    };
    let mut stream = agent.open(&request).await;
    stream.finish().await.unwrap();
    match within(call::read_response(&mut stream)).await.unwrap() {
        Response::StepTail { log_len } => (stream, log_len),
        other => panic!("tail of {id} from {offset} refused: {other:?}"),
    }
}

/// The next event: exactly one per DATA frame.
async fn next_event(stream: &mut MuxStream) -> Option<StepEvent> {
    let frame = within(stream.recv())
        .await?
        .expect("the tail stays healthy");
    Some(services::decode(&frame).expect("one whole event per frame"))
}

/// What a tail delivered.
#[derive(Debug, Default)]
struct Tailed {
    log: Vec<u8>,
    end: Option<StepOutcome>,
}

/// Reads a tail to its EOF, checking that `Ended` comes last.
async fn read_tail(stream: &mut MuxStream) -> Tailed {
    let mut tailed = Tailed::default();
    while let Some(event) = next_event(stream).await {
        assert!(tailed.end.is_none(), "nothing after the end: {event:?}");
        match event {
            StepEvent::Log(data) => tailed.log.extend(data),
            StepEvent::Ended(outcome) => tailed.end = Some(outcome),
        }
    }
    tailed
}

/// Tails `id` from `offset` until the step ends.
async fn tail(agent: &Agent, id: &str, offset: u64) -> Tailed {
    let (mut stream, _) = open_tail(agent, id, offset).await;
    read_tail(&mut stream).await
}

/// Reads log events until the log so far contains `needle`.
async fn read_until(stream: &mut MuxStream, log: &mut Vec<u8>, needle: &str) {
    while !String::from_utf8_lossy(log).contains(needle) {
        match next_event(stream).await {
            Some(StepEvent::Log(data)) => log.extend(data),
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

async fn list(agent: &Agent) -> Vec<StepStatus> {
    match agent.call(Request::ListSteps).await {
        Response::Steps(steps) => steps,
        other => panic!("ListSteps answered {other:?}"),
    }
}

async fn state(agent: &Agent, id: &str) -> StepState {
    list(agent)
        .await
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} listed"))
        .state
}

fn error(response: Response) -> String {
    match response {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn exited(code: i32) -> Option<StepOutcome> {
    Some(StepOutcome::Exited { code })
}

/// The pids a script printed as `pid N` lines.
fn printed_pids(log: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(log)
        .lines()
        .filter_map(|l| l.strip_prefix("pid "))
        .map(|p| p.trim().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_log_streams_while_the_step_runs_then_the_exit_code() {
    let agent = Agent::start();
    let script = format!(
        "echo line 1\necho line 2\n{}echo line 3\nexit 3\n",
        wait_for("release")
    );
    started(&agent, "build-1", &script).await;
    let (mut stream, _) = open_tail(&agent, "build-1", 0).await;
    let mut log = Vec::new();
    // The first lines arrive while the script is held: they are streamed, not collected.
    read_until(&mut stream, &mut log, "line 2\n").await;
    assert!(matches!(
        state(&agent, "build-1").await,
        StepState::Running { .. }
    ));
    release(&agent, "release");
    let rest = read_tail(&mut stream).await;
    log.extend(rest.log);
    assert_eq!(rest.end, exited(3));
    assert_eq!(log, log_file(&agent, "build-1"), "every byte, in order");
    let text = String::from_utf8(log).unwrap();
    for line in ["line 1\n", "line 2\n", "line 3\n", "+ exit 3\n"] {
        assert!(text.contains(line), "{line:?} missing from {text:?}");
    }
    let result = std::fs::read_to_string(step_path(&agent, "build-1").join("result")).unwrap();
    assert_eq!(result, "3\n");
}

#[tokio::test]
async fn a_tail_from_any_offset_gets_exactly_the_rest() {
    let agent = Agent::start();
    started(
        &agent,
        "s",
        "for i in 1 2 3 4 5 6 7 8 9; do echo \"line $i\"; done\n",
    )
    .await;
    let full = tail(&agent, "s", 0).await;
    assert_eq!(full.end, exited(0));
    let len = full.log.len() as u64;
    assert!(len > 100, "{len}");
    for offset in [1, 17, len / 2, len - 1, len] {
        let rest = tail(&agent, "s", offset).await;
        assert_eq!(rest.log, full.log[offset as usize..], "from {offset}");
        assert_eq!(rest.end, exited(0));
    }
    let request = Request::TailStep {
        id: "s".into(),
        offset: len + 1,
    };
    assert_eq!(
        error(agent.call(request).await),
        format!(
            "cannot tail {} from byte {}: the log has {len} bytes",
            step_path(&agent, "s").join("log").display(),
            len + 1
        )
    );
}

#[tokio::test]
async fn env_and_workspace_reach_the_script() {
    let agent = Agent::start();
    let spec = StepSpec {
        script: b"pwd\necho \"A=$STEWARD_A B=$STEWARD_B\"\n".to_vec(),
        env: vec![
            ("STEWARD_A".into(), "one".into()),
            ("STEWARD_B".into(), "two words".into()),
        ],
    };
    let answer = start(&agent, "env", "deep/er/ws", &spec).await;
    assert!(matches!(answer, Response::StepStarted { .. }), "{answer:?}");
    let tailed = tail(&agent, "env", 0).await;
    assert_eq!(tailed.end, exited(0));
    let workspace = agent.work.path().join("deep/er/ws").canonicalize().unwrap();
    let text = String::from_utf8(tailed.log).unwrap();
    assert!(
        text.contains(&format!("\n{}\n", workspace.display())),
        "{text}"
    );
    assert!(text.contains("\nA=one B=two words\n"), "{text}");
}

#[tokio::test]
async fn scripts_run_with_sh_xe() {
    let agent = Agent::start();
    started(&agent, "xe", "echo one\nfalse\necho never\n").await;
    let tailed = tail(&agent, "xe", 0).await;
    let text = String::from_utf8(tailed.log).unwrap();
    // -x traces each command; -e stops at the first that fails, with its status.
    assert!(text.contains("+ echo one\none\n"), "{text}");
    assert!(text.contains("+ false\n"), "{text}");
    assert!(!text.contains("never"), "{text}");
    assert_eq!(tailed.end, exited(1));
}

#[tokio::test]
async fn a_step_outlives_its_tail_its_connection_and_its_agent() {
    let mut agent = Agent::start();
    let script = format!(
        "echo first\n{}echo second\n{}echo third\n",
        wait_for("release-1"),
        wait_for("release-2")
    );
    let pgid = started(&agent, "durable", &script).await;
    let (mut stream, _) = open_tail(&agent, "durable", 0).await;
    let mut seen = Vec::new();
    read_until(&mut stream, &mut seen, "first\n").await;

    // The controller cancels its tail: the step goes on.
    stream.reset(ResetCode::Cancelled, "the controller stops following");
    release(&agent, "release-1");
    wait_until("the step prints its second line", || {
        String::from_utf8_lossy(&log_file(&agent, "durable")).contains("second\n")
    })
    .await;
    assert!(alive(pgid));

    // The connection is lost, and every handler with it: the step goes on.
    agent.reconnect().await;
    assert_eq!(state(&agent, "durable").await, StepState::Running { pgid });

    // The agent itself goes (dropped, as a killed process is); a new one on the same work
    // dir finds the step and continues the log from where the first tail stopped.
    let work = agent.work.clone();
    drop(agent);
    assert!(alive(pgid));
    let agent = Agent::start_in(work);
    assert_eq!(state(&agent, "durable").await, StepState::Running { pgid });
    let (mut stream, _) = open_tail(&agent, "durable", seen.len() as u64).await;
    let mut rest = Vec::new();
    read_until(&mut stream, &mut rest, "second\n").await;
    release(&agent, "release-2");
    let end = read_tail(&mut stream).await;
    rest.extend(end.log);
    assert_eq!(end.end, exited(0));
    seen.extend(rest);
    assert_eq!(seen, log_file(&agent, "durable"), "no gap and no repeat");
    assert!(
        String::from_utf8(seen)
            .unwrap()
            .ends_with("+ echo third\nthird\n")
    );
}

#[tokio::test]
async fn a_finished_wrapper_is_reaped() {
    let agent = Agent::start();
    let pgid = started(&agent, "quick", "true\n").await;
    assert_eq!(tail(&agent, "quick", 0).await.end, exited(0));
    // Not even a zombie: the agent waited for its child.
    let proc_dir = format!("/proc/{pgid}");
    wait_until("the wrapper is reaped", || {
        !std::path::Path::new(&proc_dir).exists()
    })
    .await;
}

/// Starts a step whose script has a background child and a foreground child, each of which
/// prints its pid; the three pids (shell, background, foreground) once printed.
async fn start_tree(agent: &Agent, id: &str, prelude: &str) -> (MuxStream, Vec<i32>) {
    let script = format!(
        "{prelude}echo \"pid $$\"\nsleep 1000 &\necho \"pid $!\"\nsh -c 'echo \"pid $$\"; exec sleep 1000'\n"
    );
    started(agent, id, &script).await;
    let (mut stream, _) = open_tail(agent, id, 0).await;
    let mut log = Vec::new();
    while printed_pids(&log).len() < 3 {
        match next_event(&mut stream).await {
            Some(StepEvent::Log(data)) => log.extend(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let pids = printed_pids(&log);
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
    (stream, pids)
}

#[tokio::test]
async fn kill_step_terminates_the_whole_tree() {
    let agent = Agent::start();
    let (mut stream, pids) = start_tree(&agent, "victim", "").await;
    let kill = Request::KillStep {
        id: "victim".into(),
        grace_ms: 20_000,
    };
    assert_eq!(agent.call(kill).await, Response::Done);
    let end = read_tail(&mut stream).await;
    // SIGTERM killed the script's shell: 128 + 15, recorded by the wrapper.
    assert_eq!(end.end, exited(143));
    wait_until("every process of the step is dead", || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
}

#[tokio::test]
async fn kill_step_escalates_to_sigkill_after_the_grace() {
    let agent = Agent::start();
    // The script and its children ignore SIGTERM (an ignored signal stays ignored in them).
    let (mut stream, pids) = start_tree(&agent, "stubborn", "trap '' TERM\n").await;
    let kill = Request::KillStep {
        id: "stubborn".into(),
        grace_ms: 200,
    };
    assert_eq!(agent.call(kill).await, Response::Done);
    let end = read_tail(&mut stream).await;
    // The wrapper is spared by SIGKILL, so the step still ends with a result: 128 + 9.
    assert_eq!(end.end, exited(137));
    wait_until("every process of the step is dead", || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    // Killing an ended step has nothing to do.
    let again = Request::KillStep {
        id: "stubborn".into(),
        grace_ms: 0,
    };
    assert_eq!(agent.call(again).await, Response::Done);
}

#[tokio::test]
async fn a_step_whose_processes_vanish_without_a_result_is_lost() {
    let agent = Agent::start();
    let pgid = started(&agent, "doomed", &wait_for("never")).await;
    let (mut stream, _) = open_tail(&agent, "doomed", 0).await;
    // SIGKILL to the whole group, wrapper included, as the OOM killer or a reboot would.
    // SAFETY: killpg only sends a signal, to the group this test just started.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    assert_eq!(read_tail(&mut stream).await.end, Some(StepOutcome::Lost));
    assert_eq!(
        state(&agent, "doomed").await,
        StepState::Ended(StepOutcome::Lost)
    );
    assert!(!step_path(&agent, "doomed").join("result").exists());
}

#[tokio::test]
async fn list_steps_reports_running_and_ended_steps() {
    let agent = Agent::start();
    assert_eq!(list(&agent).await, [], "no steps directory yet");
    let pgid = started(&agent, "b-running", &format!("echo hi\n{}", wait_for("go"))).await;
    started(&agent, "a-failed", "exit 5\n").await;
    assert_eq!(tail(&agent, "a-failed", 0).await.end, exited(5));
    // What is not a step is not listed: a start's temp directory, a stray file.
    std::fs::create_dir(agent.work.path().join("steps/.c.new-0123")).unwrap();
    std::fs::write(agent.work.path().join("steps/stray"), b"x").unwrap();
    wait_until("the running step waits", || {
        String::from_utf8_lossy(&log_file(&agent, "b-running")).contains("+ set +x\n")
    })
    .await;

    let steps = list(&agent).await;
    let expected = [
        StepStatus {
            id: "a-failed".into(),
            state: StepState::Ended(StepOutcome::Exited { code: 5 }),
            log_len: log_file(&agent, "a-failed").len() as u64,
        },
        StepStatus {
            id: "b-running".into(),
            state: StepState::Running { pgid },
            log_len: log_file(&agent, "b-running").len() as u64,
        },
    ];
    assert_eq!(steps, expected);

    // A running step cannot be removed; an ended one can, once.
    let refused = error(
        agent
            .call(Request::RemoveStep {
                id: "b-running".into(),
            })
            .await,
    );
    assert_eq!(
        refused,
        format!(
            "cannot remove step b-running: it is still running (process group {pgid}); kill it first"
        )
    );
    let remove_a = || Request::RemoveStep {
        id: "a-failed".into(),
    };
    assert_eq!(agent.call(remove_a()).await, Response::Done);
    assert!(!step_path(&agent, "a-failed").exists());
    let gone = error(agent.call(remove_a()).await);
    assert!(gone.starts_with("cannot find step "), "{gone}");

    release(&agent, "go");
    assert_eq!(tail(&agent, "b-running", 0).await.end, exited(0));
    let steps = list(&agent).await;
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].state,
        StepState::Ended(StepOutcome::Exited { code: 0 })
    );
}

#[tokio::test]
async fn bad_and_existing_ids_and_missing_steps_are_refused() {
    let agent = Agent::start();
    let too_long = "x".repeat(129);
    for (id, why) in [
        ("../x", "must not start with '.'"),
        ("", "must not be empty"),
        ("a/b", "contains '/'"),
        (too_long.as_str(), "over the limit of 128"),
    ] {
        let refused = error(start(&agent, id, "ws", &spec("true\n")).await);
        assert!(refused.contains(why), "{id:?}: {refused}");
    }
    assert!(!agent.work.path().join("x").exists());
    assert!(
        !agent.work.path().join("ws").exists(),
        "nothing made for a bad id"
    );

    started(&agent, "once", "true\n").await;
    let refused = error(start(&agent, "once", "ws", &spec("echo again\n")).await);
    let path = step_path(&agent, "once");
    assert_eq!(
        refused,
        format!("step once already exists in {}", path.display())
    );
    assert_eq!(tail(&agent, "once", 0).await.end, exited(0));

    let missing = step_path(&agent, "nope");
    let expected = format!(
        "cannot find step {}: No such file or directory (os error 2)",
        missing.display()
    );
    let nope = || "nope".to_owned();
    let tail_missing = Request::TailStep {
        id: nope(),
        offset: 0,
    };
    assert_eq!(error(agent.call(tail_missing).await), expected);
    let kill_missing = Request::KillStep {
        id: nope(),
        grace_ms: 0,
    };
    assert_eq!(error(agent.call(kill_missing).await), expected);
    assert_eq!(
        error(agent.call(Request::RemoveStep { id: nope() }).await),
        expected
    );
    let bad_tail = Request::TailStep {
        id: "..".into(),
        offset: 0,
    };
    assert!(error(agent.call(bad_tail).await).contains("must not start with '.'"));
}

#[tokio::test]
async fn bad_specs_and_workspaces_are_refused() {
    let agent = Agent::start();
    // A workspace that cannot be created is named with the OS reason.
    std::fs::write(agent.work.path().join("file"), b"x").unwrap();
    let refused = error(start(&agent, "ws-under-a-file", "file/ws", &spec("true\n")).await);
    let workspace = agent.work.path().join("file/ws");
    assert_eq!(
        refused,
        format!(
            "cannot create directory {}: Not a directory (os error 20)",
            workspace.display()
        )
    );
    assert!(!step_path(&agent, "ws-under-a-file").exists());

    let bad_env = StepSpec {
        script: b"true\n".to_vec(),
        env: vec![("A=B".into(), "x".into())],
    };
    let refused = error(start(&agent, "bad-env", "ws", &bad_env).await);
    assert_eq!(refused, "invalid environment variable name \"A=B\"");

    // Data that is not a spec.
    let request = Request::StartStep {
        id: "garbage".into(),
        workspace: "ws".into(),
    };
    let mut stream = agent.open(&request).await;
    stream.send(Bytes::from_static(&[0xff; 9])).await.unwrap();
    stream.finish().await.unwrap();
    let refused = error(within(call::read_response(&mut stream)).await.unwrap());
    assert!(refused.starts_with("malformed step spec: "), "{refused}");

    // A spec over the limit is refused as soon as it passes it.
    let mut stream = agent.open(&request).await;
    let big = Bytes::from(vec![b'#'; MAX_STEP_SPEC_LEN + 1]);
    let _ = stream.send(big).await;
    match within(stream.recv()).await {
        Some(Err(steward_channel::StreamError::Reset { code, reason })) => {
            assert_eq!(code, ResetCode::Refused);
            assert_eq!(reason, "the step spec is over 1048576 bytes");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(list(&agent).await.is_empty());
}

#[tokio::test]
async fn unknown_requests_are_refused_by_number() {
    let agent = Agent::start();
    // What a newer controller's 17th request looks like to this agent.
    let header = services::encode(&(services::SERVICES_VERSION, 16u32));
    let mut stream = agent.controller.open(Bytes::from(header)).await.unwrap();
    match within(stream.recv()).await {
        Some(Err(steward_channel::StreamError::Reset { code, reason })) => {
            assert_eq!(code, ResetCode::Refused);
            assert!(reason.starts_with("unknown request #16:"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
