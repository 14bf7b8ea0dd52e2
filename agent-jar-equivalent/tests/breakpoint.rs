//! The `breakpoint` command end to end on the agent's side: the real binary, started
//! through a symlink named `breakpoint`, talks to a relay on a temp socket, which talks to
//! a fake controller over a real channel on in-memory pipes. The fake controller hands each
//! call to the test, which decides the answer, so each test reads as the exchange it checks.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use steward_agent::breakpoint::{self, Relay};
use steward_agent::services::Context;
use steward_channel::{Channel, IncomingStream, Side};
use steward_protocol::agent_calls::{AgentCall, AgentReply, decode_call, encode_reply};
use steward_protocol::breakpoint::{
    self as wire, BreakpointCall, BreakpointClient, BreakpointCommand, BreakpointReply,
    BreakpointStatus, BuildRef,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, PollSender};

use common::within;

/// Messages a pipe holds, like a socket buffer.
const PIPE: usize = 64;

type Rx = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// One direction of a connection; it ends (as a lost connection) once `cut` is cancelled.
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

/// A call the fake controller received: what it asked, and where its answer goes.
struct Received {
    call: BreakpointCall,
    answer: oneshot::Sender<AgentReply>,
    /// Fires if the agent gives the call up (its stream reset or lost) before the answer.
    abandoned: oneshot::Receiver<()>,
}

/// One connection between the agent's context and a fake controller.
struct Connection {
    calls: mpsc::UnboundedReceiver<Received>,
    cut: CancellationToken,
    _tasks: tokio::task::JoinSet<()>,
}

impl Connection {
    /// Connects `context` to a new fake controller, as a (re)connected agent is.
    fn open(context: &Context) -> Connection {
        let cut = CancellationToken::new();
        let (c_tx, a_rx) = pipe(cut.clone());
        let (a_tx, c_rx) = pipe(cut.clone());
        let (_controller, mut incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
        let (agent, _agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            c_driver.await;
        });
        tasks.spawn(async move {
            a_driver.await;
        });
        tasks.spawn(async move {
            let mut handlers = tokio::task::JoinSet::new();
            while let Some(accepted) = incoming.accept().await {
                handlers.spawn(controller_side(accepted, calls_tx.clone()));
            }
        });
        context.set_controller(Some(agent));
        Connection {
            calls,
            cut,
            _tasks: tasks,
        }
    }

    /// The next call the controller received.
    async fn next(&mut self) -> Received {
        within(self.calls.recv())
            .await
            .expect("the fake controller ended")
    }
}

/// The controller's end of one agent call: decode it, hand it to the test, send its answer.
async fn controller_side(accepted: IncomingStream, calls: mpsc::UnboundedSender<Received>) {
    let IncomingStream { header, mut stream } = accepted;
    let AgentCall::Breakpoint(call) = decode_call(&header).expect("a well-formed agent call")
    else {
        panic!("not a breakpoint call");
    };
    stream
        .recv
        .read_to_end(1024)
        .await
        .expect("EOF after the call");
    let (answer, answered) = oneshot::channel();
    let (gave_up, abandoned) = oneshot::channel();
    let _ = calls.send(Received {
        call,
        answer,
        abandoned,
    });
    tokio::select! {
        Ok(reply) = answered => {
            let _ = stream.send(Bytes::from(encode_reply(&reply))).await;
            let _ = stream.finish().await;
        }
        _ = stream.send.closed() => {
            let _ = gave_up.send(());
        }
    }
}

/// A relay on a temp work dir, and a directory with `breakpoint` linked to the agent.
struct Setup {
    work: tempfile::TempDir,
    context: Context,
    relay: Option<Relay>,
    command: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_patience(breakpoint::socket::CONTROLLER_PATIENCE)
    }

    fn with_patience(patience: Duration) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let context = Context::new(work.path().to_path_buf());
        let socket = breakpoint::socket_path(work.path());
        let relay = Relay::start_at(&socket, context.clone(), patience).unwrap();
        let command = work.path().join("bin").join("breakpoint");
        std::fs::create_dir_all(command.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agent"), &command).unwrap();
        Setup {
            work,
            context,
            relay: Some(relay),
            command,
        }
    }

    fn socket(&self) -> PathBuf {
        breakpoint::socket_path(self.work.path())
    }

    /// `breakpoint ARGS` as a step of build web #7 would run it (an SSH session's
    /// connection number when `connection` is given).
    fn run(&self, args: &[&str], connection: Option<u64>) -> tokio::task::JoinHandle<Output> {
        let mut command = tokio::process::Command::new(&self.command);
        command
            .args(args)
            .env_clear()
            .env("JOB_NAME", "web")
            .env("BUILD_NUMBER", "7")
            .env("STEWARD_BUILD_KEY", "k7")
            .env("STEWARD_AGENT_SOCKET", self.socket())
            .kill_on_drop(true);
        if let Some(connection) = connection {
            command.env("STEWARD_SSH_CONNECTION", connection.to_string());
        }
        tokio::spawn(async move { command.output().await.unwrap() })
    }

    /// `breakpoint ARGS` with no environment at all.
    async fn run_outside(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(&self.command);
        command.args(args).env_clear();
        within(command.output()).await.unwrap()
    }
}

async fn finished(run: tokio::task::JoinHandle<Output>) -> Output {
    within(run).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn web_7(command: BreakpointCommand, connection: Option<u64>) -> BreakpointCall {
    BreakpointCall {
        build: BuildRef {
            job: "web".into(),
            number: 7,
        },
        connection,
        build_key: "k7".into(),
        command,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const MINUTE: i64 = 60_000;

fn status() -> BreakpointStatus {
    let now = now_ms();
    BreakpointStatus {
        job: "web".into(),
        number: 7,
        node: "linux-1".into(),
        reason: "the build failed".into(),
        started_ms: now - 5 * MINUTE,
        // Half a minute over, so that "in 25 minutes" holds however long the test takes.
        expires_ms: now + 25 * MINUTE + 30_000,
        max_expires_ms: now + 4 * 60 * MINUTE,
        connect_by_ms: None,
        resume_on_logout: false,
        hold_until_ms: None,
        clients: vec![BreakpointClient {
            user: "alice".into(),
            ssh_user: Some("web-7".into()),
            key_fingerprint: Some("SHA256:abc".into()),
            address: "10.0.0.5".into(),
            since_ms: now - 3 * MINUTE,
        }],
    }
}

#[tokio::test]
async fn status_prints_the_breakpoint_for_people() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["status"], Some(12));
    let received = controller.next().await;
    assert_eq!(received.call, web_7(BreakpointCommand::Status, Some(12)));
    let status = status();
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Status(
            status.clone(),
        )));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Build web #7 on linux-1 is held at a breakpoint.");
    assert_eq!(lines[1], "Reason:      the build failed");
    assert!(
        lines[3].starts_with("Expires:     ") && lines[3].ends_with("Z (in 25 minutes)"),
        "{stdout}"
    );
    assert_eq!(lines[5], "Clients:");
    assert!(
        lines[6].starts_with("  alice (ssh user web-7, key SHA256:abc) from 10.0.0.5 since "),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "");
}

#[tokio::test]
async fn status_json_is_the_status_itself() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["status", "-json"], None);
    let received = controller.next().await;
    let status = status();
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Status(
            status.clone(),
        )));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["expiresMs"], status.expires_ms);
    assert_eq!(json["clients"][0]["sshUser"], "web-7");
    assert_eq!(json["connectByMs"], serde_json::Value::Null);
}

#[tokio::test]
async fn extend_sends_its_duration_and_prints_the_new_expiry() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["extend", "--for", "1h"], None);
    let received = controller.next().await;
    assert_eq!(
        received.call.command,
        BreakpointCommand::Extend {
            by_ms: Some(3_600_000)
        }
    );
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Status(status())));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Breakpoint extended: it now expires at ")
            && stdout.ends_with("Z (in 25 minutes).\n"),
        "{stdout}"
    );

    // Without --for the controller applies its default.
    let run = setup.run(&["extend"], None);
    let received = controller.next().await;
    assert_eq!(
        received.call.command,
        BreakpointCommand::Extend { by_ms: None }
    );
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Status(status())));
    assert_eq!(finished(run).await.status.code(), Some(0));
}

#[tokio::test]
async fn resume_says_resumed() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["resume"], Some(3));
    let received = controller.next().await;
    assert_eq!(received.call, web_7(BreakpointCommand::Resume, Some(3)));
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Resumed));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Resumed.\n");
}

#[tokio::test]
async fn refusals_and_controller_errors_exit_1_with_the_reason() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["status"], None);
    let _ = controller
        .next()
        .await
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Refused {
            message: "build web #7 is not held at a breakpoint".into(),
        }));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "breakpoint: build web #7 is not held at a breakpoint\n"
    );

    let run = setup.run(&["resume"], None);
    let _ = controller.next().await.answer.send(AgentReply::Error {
        message: "no such build".into(),
    });
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "breakpoint: no such build\n");
}

#[tokio::test]
async fn outside_a_build_or_without_arguments_it_says_so() {
    let setup = Setup::new();
    let out = setup.run_outside(&["status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "breakpoint: not inside a Steward build (JOB_NAME and BUILD_NUMBER are not set)\n"
    );

    let out = setup.run_outside(&[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "breakpoint: no command given\n{}",
            breakpoint::command::USAGE
        )
    );
    let out = setup.run_outside(&["extend", "--for", "soon"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("breakpoint: --for: duration \"soon\""));

    let out = setup.run_outside(&["--help"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), breakpoint::command::USAGE);
}

#[tokio::test]
async fn without_a_controller_the_command_is_told_so() {
    let setup = Setup::with_patience(Duration::from_millis(50));
    let out = finished(setup.run(&["status"], None)).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "breakpoint: the agent is not connected to the controller\n"
    );
}

#[tokio::test]
async fn without_an_agent_the_command_is_told_so() {
    let mut setup = Setup::new();
    setup.relay.take().unwrap().stop().await;
    let out = finished(setup.run(&["status"], None)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "breakpoint: cannot reach the agent at {}: ",
        setup.socket().display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
}

fn token(call: &BreakpointCall) -> &str {
    match &call.command {
        BreakpointCommand::Wait { token, .. } => token,
        other => panic!("not a wait: {other:?}"),
    }
}

#[tokio::test]
async fn wait_prints_how_the_breakpoint_ended() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["wait", "--for", "2h"], None);
    let received = controller.next().await;
    let BreakpointCommand::Wait { for_ms, token } = &received.call.command else {
        panic!("{:?}", received.call);
    };
    assert_eq!(*for_ms, Some(2 * 60 * MINUTE as u64));
    assert_eq!(token.len(), 32, "{token}");
    let _ = received
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Ended {
            how: "resumed by alice".into(),
        }));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Breakpoint ended: resumed by alice\n");
}

#[tokio::test]
async fn a_wait_is_asked_again_with_its_token_on_the_next_connection() {
    let setup = Setup::new();
    let mut first = Connection::open(&setup.context);
    let run = setup.run(&["wait"], None);
    let asked = first.next().await;
    // The connection drops while the breakpoint lasts; the agent connects again.
    first.cut.cancel();
    let mut second = Connection::open(&setup.context);
    let again = second.next().await;
    assert_eq!(again.call, asked.call, "the same call, token and all");
    let _ = again
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Ended {
            how: "expired".into(),
        }));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Breakpoint ended: expired\n");

    // Another invocation is another wait.
    let run = setup.run(&["wait"], None);
    let other = second.next().await;
    assert_ne!(token(&other.call), token(&asked.call));
    let _ = other
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Ended {
            how: "expired".into(),
        }));
    finished(run).await;
}

#[tokio::test]
async fn a_wait_outlives_a_restarted_agent() {
    let mut setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["wait"], None);
    let asked = controller.next().await;
    // The agent stops (its relay with it) and a new one starts on the same work dir.
    setup.relay.take().unwrap().stop().await;
    within(asked.abandoned).await.expect("the call given up");
    let context = Context::new(setup.work.path().to_path_buf());
    setup.relay = Some(Relay::start(setup.work.path(), context.clone()).unwrap());
    let mut controller = Connection::open(&context);
    let again = controller.next().await;
    assert_eq!(again.call, asked.call, "the same call, token and all");
    let _ = again
        .answer
        .send(AgentReply::Breakpoint(BreakpointReply::Ended {
            how: "resumed by bob".into(),
        }));
    let out = finished(run).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Breakpoint ended: resumed by bob\n");
}

#[tokio::test]
async fn a_command_that_goes_away_gives_its_call_up() {
    let setup = Setup::new();
    let mut controller = Connection::open(&setup.context);
    let run = setup.run(&["wait"], None);
    let received = controller.next().await;
    run.abort(); // kill_on_drop: the command dies with its task.
    within(received.abandoned)
        .await
        .expect("the agent resets the call's stream");
}

#[tokio::test]
async fn the_socket_is_private_replaces_a_stale_one_and_goes_away_at_the_end() {
    let work = tempfile::tempdir().unwrap();
    let socket = breakpoint::socket_path(work.path());
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, b"left by an earlier run").unwrap();
    let context = Context::new(work.path().to_path_buf());
    let relay = Relay::start(work.path(), context).unwrap();
    assert_eq!(relay.path(), socket);
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(socket.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["agent.sock"], "no temp directory left");
    relay.stop().await;
    assert!(!socket.exists());
}

/// Sends raw bytes to the relay and reads its answer.
async fn raw(socket: &Path, bytes: &[u8]) -> BreakpointReply {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut header = [0; 4];
    within(stream.read_exact(&mut header)).await.unwrap();
    let mut body = vec![0; wire::frame_len(header).unwrap()];
    stream.read_exact(&mut body).await.unwrap();
    wire::unframe(&body).unwrap()
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused_with_the_reason() {
    let setup = Setup::new();
    let too_big = ((wire::MAX_LOCAL_MESSAGE + 1) as u32).to_be_bytes();
    assert_eq!(
        raw(&setup.socket(), &too_big).await,
        BreakpointReply::Refused {
            message: format!(
                "message of {} bytes is over the limit of {}",
                wire::MAX_LOCAL_MESSAGE + 1,
                wire::MAX_LOCAL_MESSAGE
            )
        }
    );
    let garbage = [0, 0, 0, 2, 0xff, 0xff];
    let BreakpointReply::Refused { message } = raw(&setup.socket(), &garbage).await else {
        panic!("garbage was not refused");
    };
    assert!(message.starts_with("malformed message: "), "{message}");
}

#[tokio::test]
async fn steps_find_the_command_and_the_socket() {
    use steward_protocol::services::Response;
    use steward_protocol::steps::StepSpec;

    let agent = common::Agent::start();
    let spec = StepSpec {
        script: b"echo \"socket=$STEWARD_AGENT_SOCKET\"\necho \"path=$PATH\"\n".to_vec(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
    };
    let answer = common::steps::start(&agent, "bp", "ws", &spec).await;
    assert!(matches!(answer, Response::StepStarted { .. }), "{answer:?}");
    let tailed = common::steps::tail(&agent, "bp", 0).await;
    let log = text(&tailed.log);
    let work = agent.work.path();
    assert!(
        log.contains(&format!(
            "\nsocket={}\n",
            breakpoint::socket_path(work).display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "\npath={}:/usr/bin:/bin\n",
            breakpoint::bin::bin_path(work).display()
        )),
        "{log}"
    );
}
