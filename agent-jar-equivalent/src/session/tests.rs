//! Session-loop tests over an in-memory socket, on tokio's paused clock: the timeouts are
//! checked exactly and without real sleeps.

use std::pin::Pin;
use std::task::{Context, Poll};

use steward_protocol::channel::GoAwayCode;
use tokio::sync::mpsc;

use super::*;

/// What the agent did to its socket.
#[derive(Debug)]
enum Sent {
    Message(Message),
    Flush,
}

/// The agent's end of an in-memory WebSocket.
struct FakeSocket {
    incoming: mpsc::UnboundedReceiver<Result<Message, String>>,
    outgoing: mpsc::UnboundedSender<Sent>,
}

impl Stream for FakeSocket {
    type Item = Result<Message, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for FakeSocket {
    type Error = String;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), String> {
        self.outgoing
            .send(Sent::Message(message))
            .map_err(|_| "peer gone".to_owned())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        let _ = self.outgoing.send(Sent::Flush);
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
}

/// The controller's end.
struct Controller {
    to_agent: mpsc::UnboundedSender<Result<Message, String>>,
    from_agent: mpsc::UnboundedReceiver<Sent>,
}

impl Controller {
    fn send(&self, message: Message) {
        self.to_agent.send(Ok(message)).unwrap();
    }

    fn send_frame(&self, frame: Frame) {
        self.send(Message::binary(frame.encode()));
    }

    /// The next message the agent sent, skipping flushes.
    async fn next_message(&mut self) -> Message {
        loop {
            match self.from_agent.recv().await.expect("agent socket dropped") {
                Sent::Message(m) => return m,
                Sent::Flush => {}
            }
        }
    }

    async fn expect_agent_hello(&mut self) -> Hello {
        match self.next_message().await {
            Message::Binary(b) => match Frame::decode(&b) {
                Ok(Some(Frame::Hello(h))) => h,
                other => panic!("expected HELLO, got {other:?}"),
            },
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    async fn expect_close(&mut self, code: CloseCode) {
        match self.next_message().await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, code),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// Everything the agent did so far, without waiting.
    fn drain(&mut self) -> Vec<Sent> {
        std::iter::from_fn(|| self.from_agent.try_recv().ok()).collect()
    }
}

fn socket() -> (FakeSocket, Controller) {
    let (to_agent, incoming) = mpsc::unbounded_channel();
    let (outgoing, from_agent) = mpsc::unbounded_channel();
    (
        FakeSocket { incoming, outgoing },
        Controller {
            to_agent,
            from_agent,
        },
    )
}

fn params() -> SessionParams {
    SessionParams {
        node_name: "linux-1".into(),
        channel_version: 1,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        services: crate::services::Context::new(std::env::temp_dir()),
    }
}

fn controller_hello(idle_timeout_secs: u32) -> Frame {
    Frame::Hello(Hello {
        role: Role::Controller,
        channel_version: 1,
        software_version: "9.9.9".into(),
        node_name: "linux-1".into(),
        features: vec![],
        ping_interval_secs: 30,
        idle_timeout_secs,
    })
}

fn start(
    socket: FakeSocket,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<SessionOutcome> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move { run_session(socket, &params(), &shutdown).await })
}

#[tokio::test(start_paused = true)]
async fn hello_exchange_then_goaway() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());

    let hello = controller.expect_agent_hello().await;
    assert_eq!(
        hello,
        Hello {
            role: Role::Agent,
            channel_version: 1,
            software_version: steward_protocol::STEWARD_VERSION.into(),
            node_name: "linux-1".into(),
            features: vec![steward_protocol::channel::FEATURE_MUX.into()],
            ping_interval_secs: 0,
            idle_timeout_secs: 60,
        }
    );
    controller.send_frame(controller_hello(60));
    let goaway = GoAway {
        code: GoAwayCode::Disconnected,
        reason: "disconnected by admin".into(),
    };
    controller.send_frame(Frame::GoAway(goaway.clone()));
    controller.expect_close(CloseCode::Normal).await;
    controller.send(Message::Close(None));

    let outcome = session.await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome {
            established: true,
            end: SessionEnd::GoAway(goaway)
        }
    );
}

#[tokio::test(start_paused = true)]
async fn goaway_before_hello_is_not_established() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    controller.send_frame(Frame::GoAway(GoAway {
        code: GoAwayCode::Shutdown,
        reason: "restarting".into(),
    }));
    let outcome = session.await.unwrap();
    assert!(!outcome.established);
    assert!(matches!(outcome.end, SessionEnd::GoAway(g) if g.code == GoAwayCode::Shutdown));
}

#[tokio::test(start_paused = true)]
async fn silence_past_the_controllers_idle_timeout_is_a_dead_connection() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    controller.send_frame(controller_hello(45));
    let connected = Instant::now();

    // Traffic of any kind keeps the connection alive...
    tokio::time::sleep(Duration::from_secs(40)).await;
    controller.send(Message::Ping(Vec::new().into()));
    tokio::time::sleep(Duration::from_secs(40)).await;
    controller.send(Message::Pong(Vec::new().into()));

    // ...then 45 s of silence ends it.
    let outcome = session.await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome {
            established: true,
            end: SessionEnd::IdleTimeout(Duration::from_secs(45))
        }
    );
    assert_eq!(connected.elapsed(), Duration::from_secs(80 + 45));
    // The controller still got a close frame, in case it was only slow.
    let closes: Vec<_> = controller
        .drain()
        .into_iter()
        .filter(|s| matches!(s, Sent::Message(Message::Close(_))))
        .collect();
    assert_eq!(closes.len(), 1, "{closes:?}");
}

#[tokio::test(start_paused = true)]
async fn default_idle_timeout_applies_before_the_hello_and_hello_timeout_first() {
    let (socket, mut controller) = socket();
    let started = Instant::now();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    // A ping keeps the idle timer alive, but the hello deadline is fixed.
    controller.send(Message::Ping(Vec::new().into()));
    let outcome = session.await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome {
            established: false,
            end: SessionEnd::HelloTimeout
        }
    );
    assert_eq!(started.elapsed(), HELLO_TIMEOUT);
    controller.expect_close(CloseCode::Protocol).await;
}

#[tokio::test(start_paused = true)]
async fn zero_idle_timeout_disables_dead_connection_detection() {
    let (socket, mut controller) = socket();
    let shutdown = CancellationToken::new();
    let session = start(socket, &shutdown);
    controller.expect_agent_hello().await;
    controller.send_frame(controller_hello(0));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!session.is_finished());
    shutdown.cancel();
    controller.expect_close(CloseCode::Away).await;
    assert_eq!(session.await.unwrap().end, SessionEnd::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn pongs_are_flushed_at_once() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    controller.send_frame(controller_hello(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    controller.drain();

    controller.send(Message::Ping(Vec::new().into()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let after_ping = controller.drain();
    assert!(
        matches!(after_ping.as_slice(), [Sent::Flush]),
        "{after_ping:?}"
    );
    drop(controller);
    let outcome = session.await.unwrap();
    assert!(matches!(outcome.end, SessionEnd::Closed { code: None, .. }));
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_with_going_away() {
    let (socket, mut controller) = socket();
    let shutdown = CancellationToken::new();
    let session = start(socket, &shutdown);
    controller.expect_agent_hello().await;
    controller.send_frame(controller_hello(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    controller.expect_close(CloseCode::Away).await;
    controller.send(Message::Close(None));
    assert_eq!(
        session.await.unwrap(),
        SessionOutcome {
            established: true,
            end: SessionEnd::Shutdown
        }
    );
}

#[tokio::test(start_paused = true)]
async fn controller_close_ends_the_session() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    controller.send_frame(controller_hello(60));
    controller.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    })));
    assert_eq!(
        session.await.unwrap(),
        SessionOutcome {
            established: true,
            end: SessionEnd::Closed {
                code: Some(1001),
                reason: "bye".into()
            }
        }
    );
}

#[tokio::test(start_paused = true)]
async fn extension_frames_are_skipped() {
    let (socket, mut controller) = socket();
    let shutdown = CancellationToken::new();
    let session = start(socket, &shutdown);
    controller.expect_agent_hello().await;
    controller.send(Message::binary(vec![0x55, 0, 0, 0, 0, 0, 1, 2, 3]));
    controller.send_frame(controller_hello(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    let outcome = session.await.unwrap();
    assert_eq!(
        outcome,
        SessionOutcome {
            established: true,
            end: SessionEnd::Shutdown
        }
    );
}

#[tokio::test(start_paused = true)]
async fn protocol_errors_close_with_1002() {
    let bad_messages: Vec<(&str, Vec<Message>)> = vec![
        ("text", vec![Message::text("hello")]),
        ("short frame", vec![Message::binary(vec![0x01, 0])]),
        (
            "unknown core kind",
            vec![Message::binary(vec![0x30, 0, 0, 0, 0, 0])],
        ),
        (
            "stream frame",
            vec![Message::binary(Frame::Eof { stream: 3 }.encode())],
        ),
        (
            "agent role",
            vec![Message::binary(
                Frame::Hello(Hello {
                    role: Role::Agent,
                    ..match controller_hello(60) {
                        Frame::Hello(h) => h,
                        _ => unreachable!(),
                    }
                })
                .encode(),
            )],
        ),
        (
            "second hello",
            vec![
                Message::binary(controller_hello(60).encode()),
                Message::binary(controller_hello(60).encode()),
            ],
        ),
    ];
    for (what, messages) in bad_messages {
        let (socket, mut controller) = socket();
        let session = start(socket, &CancellationToken::new());
        controller.expect_agent_hello().await;
        let established = messages.len() > 1;
        for m in messages {
            controller.send(m);
        }
        controller.expect_close(CloseCode::Protocol).await;
        let outcome = session.await.unwrap();
        assert_eq!(outcome.established, established, "{what}");
        assert!(
            matches!(outcome.end, SessionEnd::ProtocolError(_)),
            "{what}: {:?}",
            outcome.end
        );
    }
}

#[tokio::test(start_paused = true)]
async fn read_errors_end_the_session() {
    let (socket, mut controller) = socket();
    let session = start(socket, &CancellationToken::new());
    controller.expect_agent_hello().await;
    controller
        .to_agent
        .send(Err("reset by peer".into()))
        .unwrap();
    assert_eq!(
        session.await.unwrap().end,
        SessionEnd::Transport("reset by peer".into())
    );
}
