//! Durable steps through a real channel: the log streamed as it grows and then the exit
//! code, tails from any offset, `sh -xe`, env and workspace, a step that outlives its tail,
//! its connection and its agent, reaping, listing and removal. Kills, lost steps and
//! refusals are in `step_faults.rs`.
//!
//! Scripts that must pause wait for a file the test creates (`release`), so the test, not
//! the clock, decides when they go on.

mod common;

use common::steps::*;
use common::{Agent, alive, wait_until};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{Request, Response};
use steward_protocol::steps::{StepOutcome, StepSpec, StepState, StepStatus};

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
