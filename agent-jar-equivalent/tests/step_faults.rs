//! Durable steps that go wrong: kills of the whole tree (SIGTERM, then SIGKILL sparing the
//! wrapper), steps lost without a result, and the refusals: bad and existing ids, missing
//! steps, bad specs and workspaces, requests this agent does not know.

mod common;

use bytes::Bytes;
use common::steps::*;
use common::{Agent, alive, wait_until, within};
use steward_channel::{MuxStream, call};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{self, Request, Response};
use steward_protocol::steps::{MAX_STEP_SPEC_LEN, StepEvent, StepOutcome, StepSpec, StepState};

/// Starts a step whose script has a background child and a foreground child, each of which
/// prints its pid; the three pids (shell, background, foreground) once printed.
async fn start_tree(agent: &Agent, id: &str, prelude: &str) -> (MuxStream, Vec<i32>) {
    let script = format!(
        "{prelude}echo \"pid $$\"\nsleep 1000 &\necho \"pid $!\"\nsh -c 'echo \"pid $$\"; exec sleep 1000'\n"
    );
    started(agent, id, &script).await;
    let (mut stream, _) = open_tail(agent, id, 0).await;
    let mut log = Vec::new();
    let read = tokio::time::timeout(common::DEADLINE, async {
        while printed_pids(&log).len() < 3 {
            match stream.recv().await {
                Some(Ok(frame)) => match services::decode(&frame) {
                    Ok(StepEvent::Log(data)) => log.extend(data),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("the tail of {id} ended: {other:?}"),
            }
        }
    })
    .await;
    if read.is_err() {
        // What the step wrote and what its directory holds tell a slow start from a stuck tail.
        let dir = step_path(agent, id);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        panic!(
            "3 pids not tailed within the deadline; tailed {:?}; log file {:?}; {} holds {files:?}",
            String::from_utf8_lossy(&log),
            String::from_utf8_lossy(&log_file(agent, id)),
            dir.display(),
        );
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
    // What a newer controller's next request looks like to this agent.
    let header = services::encode(&(services::SERVICES_VERSION, services::KNOWN_REQUESTS));
    let mut stream = agent.controller.open(Bytes::from(header)).await.unwrap();
    match within(stream.recv()).await {
        Some(Err(steward_channel::StreamError::Reset { code, reason })) => {
            assert_eq!(code, ResetCode::Refused);
            let number = format!("unknown request #{}:", services::KNOWN_REQUESTS);
            assert!(reason.starts_with(&number), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Sends a `StartStep` of `true` named `id`; the stream, open, without waiting for the
/// answer.
async fn ask_to_start_true(agent: &Agent, id: &str) -> MuxStream {
    let request = Request::StartStep {
        id: id.into(),
        workspace: "ws".into(),
    };
    let mut stream = agent.open(&request).await;
    stream
        .send(Bytes::from(services::encode(&spec("true\n"))))
        .await
        .unwrap();
    stream.finish().await.unwrap();
    stream
}

#[tokio::test]
async fn a_start_cut_off_by_a_lost_connection_never_leaves_a_lost_step() {
    let mut agent = Agent::start();
    let rounds = 30u32;
    for round in 0..rounds {
        let _open = ask_to_start_true(&agent, &format!("cut-{round}")).await;
        // The connection goes at a different moment each round: before, during or after
        // the launch (which writes files and starts processes between its awaits).
        for _ in 0..round {
            tokio::task::yield_now().await;
        }
        agent.reconnect().await;
    }
    // And once after the launch has certainly finished (on a loaded machine none of the
    // rounds above may get that far).
    let settled = "cut-settled";
    let _open = ask_to_start_true(&agent, settled).await;
    wait_until("the settled step launched", || {
        step_path(&agent, settled).exists()
    })
    .await;
    agent.reconnect().await;
    // Launches still under way finish: their temp directories are renamed or removed.
    let steps = agent.work.path().join("steps");
    wait_until("no step is half made", || {
        std::fs::read_dir(&steps).is_ok_and(|entries| {
            !entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with('.'))
        })
    })
    .await;
    // Each step that exists ran to its end: none reads as lost.
    let ids = (0..rounds).map(|round| format!("cut-{round}"));
    for id in ids.chain([settled.to_owned()]) {
        if step_path(&agent, &id).exists() {
            assert_eq!(tail(&agent, &id, 0).await.end, exited(0), "step {id}");
        }
    }
}
