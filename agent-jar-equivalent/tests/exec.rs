//! `Exec` through a real channel: streaming output, stdin, exit codes and signals,
//! timeouts, spawn failures, and killing the whole process tree on cancel and on loss.

mod common;

use bytes::Bytes;
use common::{Agent, alive, pattern, wait_until, within};
use steward_channel::{MuxStream, RecvHalf};
use steward_protocol::channel::{MAX_DATA_PAYLOAD, ResetCode};
use steward_protocol::services::{self, ExecEvent, ExecRequest, Request};

fn request(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        cwd: None,
        stdin: false,
        timeout_ms: None,
    }
}

/// What an exec produced, in order.
#[derive(Debug, Default)]
struct Ran {
    pid: Option<u32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    end: Option<ExecEvent>,
}

/// The next event: exactly one per DATA frame, each within a frame's payload.
async fn next_event(recv: &mut RecvHalf) -> Option<ExecEvent> {
    let frame = recv.recv().await?.expect("the exec stream stays healthy");
    assert!(frame.len() <= MAX_DATA_PAYLOAD);
    Some(services::decode(&frame).expect("one whole event per frame"))
}

/// Reads events until EOF, checking their order.
async fn collect(recv: &mut RecvHalf) -> Ran {
    let mut ran = Ran::default();
    while let Some(event) = next_event(recv).await {
        assert!(ran.end.is_none(), "nothing after the end: {event:?}");
        match event {
            ExecEvent::Started { pid } => {
                assert!(ran.pid.is_none());
                ran.pid = Some(pid);
            }
            ExecEvent::Stdout(data) => ran.stdout.extend(data),
            ExecEvent::Stderr(data) => ran.stderr.extend(data),
            end => ran.end = Some(end),
        }
    }
    ran
}

/// Runs `exec` with no stdin: the controller closes its half at once.
async fn run(agent: &Agent, exec: ExecRequest) -> Ran {
    let mut stream = agent.open(&Request::Exec(exec)).await;
    stream.finish().await.unwrap();
    within(collect(&mut stream.recv)).await
}

fn exited(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> Option<ExecEvent> {
    Some(ExecEvent::Exited {
        code,
        signal,
        timed_out,
    })
}

#[tokio::test]
async fn stdout_and_stderr_stream_separately() {
    let agent = Agent::start();
    let ran = run(
        &agent,
        request(&["sh", "-c", "echo out; echo err >&2; echo more"]),
    )
    .await;
    assert!(ran.pid.is_some());
    assert_eq!(ran.stdout, b"out\nmore\n");
    assert_eq!(ran.stderr, b"err\n");
    assert_eq!(ran.end, exited(Some(0), None, false));
}

#[tokio::test]
async fn output_arrives_while_the_process_runs() {
    let agent = Agent::start();
    // The process waits for its stdin to end before exiting: its first line must arrive
    // before that, or the output is not streamed.
    let mut exec = request(&["sh", "-c", "echo ready; cat >/dev/null; echo done"]);
    exec.stdin = true;
    let mut stream = agent.open(&Request::Exec(exec)).await;
    assert!(matches!(
        within(next_event(&mut stream.recv)).await,
        Some(ExecEvent::Started { .. })
    ));
    let first = within(next_event(&mut stream.recv)).await;
    assert_eq!(first, Some(ExecEvent::Stdout(b"ready\n".to_vec())));
    stream.finish().await.unwrap();
    let rest = within(collect(&mut stream.recv)).await;
    assert_eq!(rest.stdout, b"done\n");
    assert_eq!(rest.end, exited(Some(0), None, false));
}

#[tokio::test]
async fn large_output_is_cut_into_frames() {
    let agent = Agent::start();
    let ran = run(&agent, request(&["head", "-c", "3000000", "/dev/zero"])).await;
    assert_eq!(ran.stdout.len(), 3_000_000);
    assert_eq!(ran.end, exited(Some(0), None, false));
}

#[tokio::test]
async fn stdin_round_trips_through_cat() {
    let agent = Agent::start();
    let mut exec = request(&["cat"]);
    exec.stdin = true;
    let stream = agent.open(&Request::Exec(exec)).await;
    let (mut send, mut recv) = stream.into_split();
    let input = pattern(3 << 20);
    let sent = input.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(100_000) {
            send.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        send.finish().await.unwrap();
    });
    let ran = within(collect(&mut recv)).await;
    writer.await.unwrap();
    assert!(ran.stdout == input, "cat returned other bytes");
    assert_eq!(ran.end, exited(Some(0), None, false));
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let agent = Agent::start();
    let ran = run(&agent, request(&["sh", "-c", "exit 3"])).await;
    assert_eq!(ran.end, exited(Some(3), None, false));
    let ran = run(&agent, request(&["sh", "-c", "kill -TERM $$"])).await;
    assert_eq!(ran.end, exited(None, Some(15), false));
}

#[tokio::test]
async fn env_and_cwd_apply() {
    let agent = Agent::start();
    std::fs::create_dir(agent.work.path().join("sub")).unwrap();
    let mut exec = request(&["sh", "-c", "echo $STEWARD_TEST; pwd"]);
    exec.env = vec![("STEWARD_TEST".into(), "hello".into())];
    exec.cwd = Some("sub".into());
    let ran = run(&agent, exec).await;
    let expected = format!(
        "hello\n{}\n",
        agent
            .work
            .path()
            .canonicalize()
            .unwrap()
            .join("sub")
            .display()
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout), expected);

    let ran = run(&agent, request(&["pwd"])).await;
    let work = agent.work.path().canonicalize().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        format!("{}\n", work.display())
    );
}

#[tokio::test]
async fn a_timeout_kills_the_group() {
    let agent = Agent::start();
    let mut exec = request(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    exec.timeout_ms = Some(100);
    let ran = run(&agent, exec).await;
    assert_eq!(ran.end, exited(None, Some(libc::SIGKILL), true));
}

#[tokio::test]
async fn spawn_failures_name_the_program_and_the_reason() {
    let agent = Agent::start();
    let ran = run(&agent, request(&["/no/such/program", "x"])).await;
    assert_eq!(ran.pid, None);
    assert_eq!(
        ran.end,
        Some(ExecEvent::Failed {
            error: "cannot run /no/such/program: No such file or directory (os error 2)".into()
        })
    );
    let mut exec = request(&["true"]);
    exec.cwd = Some("/no/such/dir".into());
    let ran = run(&agent, exec).await;
    let Some(ExecEvent::Failed { error }) = ran.end else {
        panic!("{:?}", ran.end)
    };
    assert!(
        error.contains("/no/such/dir") && error.contains("No such file"),
        "{error}"
    );
}

/// Starts a tree (a shell with a background grandchild) and returns the stream and both
/// pids once the grandchild's pid has been printed.
async fn start_tree(agent: &Agent, finish: bool) -> (MuxStream, i32, i32) {
    let exec = request(&["sh", "-c", "sleep 1000 & echo $!; sleep 1000"]);
    let mut stream = agent.open(&Request::Exec(exec)).await;
    if finish {
        stream.finish().await.unwrap();
    }
    let Some(ExecEvent::Started { pid }) = within(next_event(&mut stream.recv)).await else {
        panic!("no Started event")
    };
    let mut printed = Vec::new();
    while !printed.ends_with(b"\n") {
        match within(next_event(&mut stream.recv)).await {
            Some(ExecEvent::Stdout(data)) => printed.extend(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let grandchild: i32 = String::from_utf8(printed).unwrap().trim().parse().unwrap();
    assert!(alive(pid as i32) && alive(grandchild));
    (stream, pid as i32, grandchild)
}

#[tokio::test]
async fn cancelling_kills_the_whole_tree() {
    let agent = Agent::start();
    // The controller still has its half open: the RESET is seen on the stream at once.
    let (stream, shell, grandchild) = start_tree(&agent, false).await;
    stream.reset(ResetCode::Cancelled, "the user pressed Ctrl-C");
    wait_until("the tree is dead", || !alive(shell) && !alive(grandchild)).await;
}

#[tokio::test]
async fn cancelling_after_closing_stdin_kills_the_whole_tree() {
    let agent = Agent::start();
    // The controller's half is closed: only the agent's probe can notice the RESET.
    let (stream, shell, grandchild) = start_tree(&agent, true).await;
    stream.reset(ResetCode::Cancelled, "the user pressed Ctrl-C");
    wait_until("the tree is dead", || !alive(shell) && !alive(grandchild)).await;
}

#[tokio::test]
async fn losing_the_channel_kills_the_whole_tree() {
    let agent = Agent::start();
    let (_stream, shell, grandchild) = start_tree(&agent, false).await;
    agent.cut();
    wait_until("the tree is dead", || !alive(shell) && !alive(grandchild)).await;
}

#[tokio::test]
async fn leftovers_die_with_the_process() {
    let agent = Agent::start();
    let ran = run(&agent, request(&["sh", "-c", "sleep 1000 & echo $!"])).await;
    assert_eq!(ran.end, exited(Some(0), None, false));
    let grandchild: i32 = String::from_utf8(ran.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the leftover is dead", || !alive(grandchild)).await;
}
