//! The PlainCLIProtocol session loop (compat §6), written once for both transports.
//!
//! The loop sees the connection as a [`Sink`] of [`Frame`]s going to the server and a
//! [`Stream`] of frames coming back; `ws.rs` and `http.rs` adapt a WebSocket and the two
//! halves of a full-duplex HTTP exchange to that shape, and the tests below use in-memory
//! channels. Two halves run concurrently in one task:
//!
//! - sending: every `ARG`, then `ENCODING`, `LOCALE`, `START`; then stdin as `STDIN` chunks
//!   and `END_STDIN` at end of input, with keepalives meanwhile ([`Outgoing::Keepalive`]:
//!   each transport sends its own kind) and `INTERRUPT` when the user interrupts;
//! - receiving: `STDOUT`/`STDERR` written and flushed as they arrive, until `EXIT`.
//!
//! `EXIT` ends the session at once, whatever the sending half is doing (it may be blocked
//! reading a terminal); the caller is expected to exit the process promptly after.
//!
//! An interrupt (SIGINT, SIGTERM) is told to a controller that honours it, which stops the
//! command and answers `EXIT`; the session then ends with 128 + the signal's number. It
//! waits at most [`INTERRUPT_GRACE`] for that answer, and not at all after a second
//! interrupt or with a controller that does not honour it (for which a closed connection is
//! the interrupt, as for jenkins-cli.jar).

use std::pin::pin;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use steward_protocol::plaincli::{Frame, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};

use crate::interrupt::{Interrupts, Signal};

/// Charset named in the `ENCODING` frame: we pass stdin bytes through untouched and write
/// output bytes as received, and every terminal we care about speaks UTF-8.
pub const ENCODING: &str = "UTF-8";
/// Largest `STDIN` payload we send: what jenkins-cli.jar sends at most, so any server that
/// takes the real client takes ours (and well under
/// [`steward_protocol::plaincli::MAX_FRAME_PAYLOAD`]).
pub const STDIN_CHUNK: usize = 60_000;
/// Most stdin bytes read at once. A read returns what is there, up to this: a file or a
/// fast pipe fills it, and its frames go out together with one flush, while a terminal's
/// line goes out as soon as it is typed.
pub const STDIN_READ: usize = 1024 * 1024;
/// How long an interrupted session waits for the controller to confirm it stopped the
/// command (its `EXIT`), which normally takes milliseconds; a controller that has stopped
/// answering must not keep the user's Ctrl-C waiting.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// Why a session ended without an exit code.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the connection closed before the command's exit code arrived")]
    ClosedBeforeExit,
    #[error("the controller sent a malformed frame: {0}")]
    BadFrame(#[from] FrameError),
    #[error("cannot encode a frame for the controller: {0}")]
    Encode(FrameError),
    #[error("connection lost: {0}")]
    Connection(String),
    #[error(
        "connection lost: nothing came from the controller for {}s (-idleTimeout): it is \
         stopped, overloaded or unreachable",
        .0.as_secs()
    )]
    Idle(Duration),
    #[error("writing to {stream}: {source}")]
    Output {
        stream: &'static str,
        source: std::io::Error,
    },
}

/// What the client says before `START`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The command name and its arguments, one `ARG` frame each.
    pub args: Vec<String>,
    /// Sent in the `LOCALE` frame.
    pub locale: String,
    /// When set, a keepalive goes out this often until the session ends (the full-duplex
    /// HTTP client's `ENCODING` frame, compat §5; a WebSocket ping).
    pub keepalive: Option<Duration>,
    /// Whether the controller honours `INTERRUPT` (it said so in its answer's
    /// `X-Steward-CLI`).
    pub interrupt: bool,
}

/// What the session hands its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Frame(Frame),
    /// Traffic that only shows the client is alive, sent as the transport sees fit.
    Keepalive,
}

/// The process's three standard streams, or test doubles.
pub struct Stdio<I, O, E> {
    pub stdin: I,
    pub stdout: O,
    pub stderr: E,
}

impl Stdio<tokio::io::Stdin, tokio::io::Stdout, tokio::io::Stderr> {
    /// The real stdin, stdout and stderr.
    pub fn process() -> Self {
        Stdio {
            stdin: tokio::io::stdin(),
            stdout: tokio::io::stdout(),
            stderr: tokio::io::stderr(),
        }
    }
}

/// Runs one command over an established connection and returns its exit code, or 128 +
/// the signal's number when the user interrupted it.
///
/// The sink is dropped when this returns, which closes the sending direction.
pub async fn run<Si, St, I, O, E>(
    sink: Si,
    stream: St,
    setup: &Setup,
    stdio: &mut Stdio<I, O, E>,
    interrupts: Interrupts,
) -> Result<i32, SessionError>
where
    Si: Sink<Outgoing, Error = SessionError>,
    St: Stream<Item = Result<Frame, SessionError>>,
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut signals = interrupts.clone();
    let mut send = pin!(send_half(sink, setup, &mut stdio.stdin, interrupts.clone()));
    let mut receive = pin!(receive_half(stream, &mut stdio.stdout, &mut stdio.stderr));
    let mut send_done = false;
    let mut send_error = None;
    let mut interrupted: Option<Signal> = None;
    let grace = tokio::time::sleep(Duration::ZERO);
    let mut grace = pin!(grace);
    loop {
        tokio::select! {
            result = &mut receive => {
                if let Some(signal) = interrupted {
                    return Ok(signal.exit_code());
                }
                // The server may close as soon as it sent EXIT, so a failed send only
                // explains a session that then also ends without one.
                return match (result, send_error) {
                    (Err(SessionError::ClosedBeforeExit), Some(send_error)) => Err(send_error),
                    (result, _) => result,
                };
            }
            result = &mut send, if !send_done => {
                send_done = true;
                send_error = result.err();
                // The interrupt cannot be told any more.
                if let Some(signal) = interrupted {
                    return Ok(signal.exit_code());
                }
            }
            (signal, count) = signals.next_counted() => {
                // A second interrupt (or two at once) means now.
                if interrupted.is_some() || count > 1 || !setup.interrupt || send_done {
                    return Ok(signal.exit_code());
                }
                // The send half tells the controller; wait for its EXIT.
                interrupted = Some(signal);
                grace.as_mut().reset(Instant::now() + INTERRUPT_GRACE);
            }
            () = &mut grace, if interrupted.is_some() => {
                return Ok(interrupted.map(Signal::exit_code).unwrap_or_default());
            }
        }
    }
}

/// Sends the preamble, then pumps stdin and keepalives, and `INTERRUPT` when the user
/// interrupts. Ends after `END_STDIN` when there is neither keepalive nor interrupt to
/// send; otherwise runs until dropped.
async fn send_half<Si, I>(
    sink: Si,
    setup: &Setup,
    stdin: &mut I,
    mut interrupts: Interrupts,
) -> Result<(), SessionError>
where
    Si: Sink<Outgoing, Error = SessionError>,
    I: AsyncRead + Unpin,
{
    let mut sink = pin!(sink);
    for arg in &setup.args {
        sink.feed(Outgoing::Frame(Frame::Arg(arg.clone()))).await?;
    }
    sink.feed(Outgoing::Frame(Frame::Encoding(ENCODING.to_owned())))
        .await?;
    sink.feed(Outgoing::Frame(Frame::Locale(setup.locale.clone())))
        .await?;
    sink.send(Outgoing::Frame(Frame::Start)).await?;

    let mut keepalive = setup.keepalive.map(|period| {
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks
    });
    let mut input = BytesMut::new();
    let mut stdin_open = true;
    loop {
        if stdin_open {
            input.reserve(STDIN_READ);
        }
        tokio::select! {
            // `read_buf` is cancel safe: when the keepalive fires first, no input is lost.
            read = stdin.read_buf(&mut input), if stdin_open => match read {
                Ok(n) if n > 0 => {
                    while !input.is_empty() {
                        let piece = input.split_to(input.len().min(STDIN_CHUNK));
                        sink.feed(Outgoing::Frame(Frame::Stdin(piece.freeze()))).await?;
                    }
                    sink.flush().await?;
                }
                // A stdin we cannot read (closed descriptor, EIO) is treated as empty: most
                // commands do not read it, and they must still run.
                _ => {
                    stdin_open = false;
                    sink.send(Outgoing::Frame(Frame::EndStdin)).await?;
                }
            },
            _ = tick(&mut keepalive), if keepalive.is_some() => {
                sink.send(Outgoing::Keepalive).await?;
            }
            signal = interrupts.next(), if setup.interrupt => {
                sink.send(Outgoing::Frame(Frame::Interrupt(signal.name().to_owned()))).await?;
            }
            else => return Ok(()),
        }
    }
}

/// Waits for the next keepalive tick (pending forever without a keepalive).
async fn tick(keepalive: &mut Option<tokio::time::Interval>) {
    match keepalive {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Most stdout bytes gathered from frames that have already arrived before one write: a
/// command printing fast (`console -f` of a busy build) costs a write per batch rather than
/// per frame, and one printing slowly a write per frame, as soon as it comes.
const STDOUT_BATCH: usize = 1024 * 1024;

/// Copies output frames to stdout/stderr until `EXIT`. Stdout frames that are already
/// there are written together; nothing waits for a frame that has not arrived, and output
/// keeps its order across the two streams.
async fn receive_half<St, O, E>(
    stream: St,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<i32, SessionError>
where
    St: Stream<Item = Result<Frame, SessionError>>,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut stream = pin!(stream);
    let mut pending = BytesMut::new();
    loop {
        let frame = match stream.next().now_or_never() {
            Some(frame) if pending.len() < STDOUT_BATCH => frame,
            ready => {
                write_pending(stdout, &mut pending).await?;
                match ready {
                    Some(frame) => frame,
                    None => stream.next().await,
                }
            }
        };
        let Some(frame) = frame else { break };
        match frame? {
            Frame::Stdout(bytes) => pending.extend_from_slice(&bytes),
            Frame::Stderr(bytes) => {
                write_pending(stdout, &mut pending).await?;
                write_flush(stderr, &bytes, "stderr").await?
            }
            Frame::Exit(code) => {
                write_pending(stdout, &mut pending).await?;
                return Ok(code);
            }
            // Unknown opcodes below 0x80 and frames travelling the wrong way are skipped
            // (compat §6); fatal opcodes already arrived as errors.
            _ => {}
        }
    }
    write_pending(stdout, &mut pending).await?;
    Err(SessionError::ClosedBeforeExit)
}

/// Writes the stdout gathered so far, if any.
async fn write_pending<W: AsyncWrite + Unpin>(
    out: &mut W,
    pending: &mut BytesMut,
) -> Result<(), SessionError> {
    if pending.is_empty() {
        return Ok(());
    }
    write_flush(out, &pending.split(), "stdout").await
}

async fn write_flush<W: AsyncWrite + Unpin>(
    out: &mut W,
    bytes: &[u8],
    stream: &'static str,
) -> Result<(), SessionError> {
    async {
        out.write_all(bytes).await?;
        out.flush().await
    }
    .await
    .map_err(|source| SessionError::Output { stream, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;

    /// An in-memory connection: what the client sent, and a way to play the server.
    struct Harness {
        sent: mpsc::Receiver<Frame>,
        replies: mpsc::Sender<Result<Frame, SessionError>>,
    }

    /// How the in-memory transport shows a keepalive: a frame no session sends.
    fn keepalive_frame() -> Frame {
        Frame::Unknown {
            op: 0x7f,
            payload: Bytes::from_static(b"keepalive"),
        }
    }

    fn pipes() -> (
        impl Sink<Outgoing, Error = SessionError>,
        impl Stream<Item = Result<Frame, SessionError>>,
        Harness,
    ) {
        let (sent_tx, sent) = mpsc::channel(4);
        let (replies, replies_rx) = mpsc::channel(4);
        let sink = futures_util::sink::unfold(sent_tx, |tx, out: Outgoing| async move {
            let frame = match out {
                Outgoing::Frame(frame) => frame,
                Outgoing::Keepalive => keepalive_frame(),
            };
            tx.send(frame)
                .await
                .map_err(|_| SessionError::Connection("server stopped reading".into()))?;
            Ok(tx)
        });
        let stream = futures_util::stream::unfold(replies_rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (sink, stream, Harness { sent, replies })
    }

    fn setup(args: &[&str], keepalive: Option<Duration>) -> Setup {
        Setup {
            args: args.iter().map(|a| a.to_string()).collect(),
            locale: "en_US".into(),
            keepalive,
            interrupt: false,
        }
    }

    type TestStdio = Stdio<tokio::io::DuplexStream, Vec<u8>, Vec<u8>>;

    fn stdio() -> (TestStdio, tokio::io::DuplexStream) {
        let (stdin, feeder) = tokio::io::duplex(64);
        let stdio = Stdio {
            stdin,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        (stdio, feeder)
    }

    #[tokio::test]
    async fn preamble_stdin_output_and_exit() {
        let (sink, stream, mut server) = pipes();
        let (mut stdio, mut feeder) = stdio();
        let setup = setup(&["create-job", "x", "-flag"], None);

        let server_side = async move {
            let mut seen = Vec::new();
            // Preamble, then stdin until END_STDIN.
            feeder.write_all(b"<project/>").await.unwrap();
            drop(feeder);
            while let Some(frame) = server.sent.recv().await {
                let end = frame == Frame::EndStdin;
                seen.push(frame);
                if end {
                    break;
                }
            }
            for reply in [
                Frame::Stdout(Bytes::from_static(b"out")),
                Frame::Unknown {
                    op: 0x42,
                    payload: Bytes::new(),
                },
                Frame::Start, // wrong direction
                Frame::Stderr(Bytes::from_static(b"err")),
                Frame::Exit(4),
            ] {
                server.replies.send(Ok(reply)).await.unwrap();
            }
            seen
        };
        let (code, seen) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            server_side
        );

        assert_eq!(code.unwrap(), 4);
        assert_eq!(
            seen,
            [
                Frame::Arg("create-job".into()),
                Frame::Arg("x".into()),
                Frame::Arg("-flag".into()),
                Frame::Encoding("UTF-8".into()),
                Frame::Locale("en_US".into()),
                Frame::Start,
                Frame::Stdin(Bytes::from_static(b"<project/>")),
                Frame::EndStdin,
            ]
        );
        assert_eq!(stdio.stdout, b"out");
        assert_eq!(stdio.stderr, b"err");
    }

    #[tokio::test]
    async fn stdin_is_cut_into_chunks() {
        let (sink, stream, mut server) = pipes();
        let (mut stdio, mut feeder) = stdio();
        let setup = setup(&["x"], None);
        let input: Vec<u8> = (0..STDIN_CHUNK * 2 + 10).map(|i| i as u8).collect();

        let expected = input.clone();
        let server_side = async move {
            let writer = async move {
                feeder.write_all(&input).await.unwrap();
            };
            let reader = async {
                let mut received = Vec::new();
                while let Some(frame) = server.sent.recv().await {
                    match frame {
                        Frame::Stdin(b) => {
                            assert!(!b.is_empty() && b.len() <= STDIN_CHUNK);
                            received.extend_from_slice(&b);
                        }
                        Frame::EndStdin => break,
                        _ => {}
                    }
                }
                received
            };
            let ((), received) = tokio::join!(writer, reader);
            server.replies.send(Ok(Frame::Exit(0))).await.unwrap();
            received
        };
        let (code, received) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            server_side
        );
        assert_eq!(code.unwrap(), 0);
        assert_eq!(received, expected);
    }

    /// What a sink was asked to do, in order.
    #[derive(Debug, PartialEq)]
    enum SinkEvent {
        Stdin(usize),
        Flush,
        Other,
    }

    /// A sink that records its frames and flushes.
    fn recording_sink(
        events: std::sync::Arc<std::sync::Mutex<Vec<SinkEvent>>>,
    ) -> impl Sink<Outgoing, Error = SessionError> {
        struct Recording(std::sync::Arc<std::sync::Mutex<Vec<SinkEvent>>>);
        impl Sink<Outgoing> for Recording {
            type Error = SessionError;
            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), SessionError>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn start_send(
                self: std::pin::Pin<&mut Self>,
                out: Outgoing,
            ) -> Result<(), SessionError> {
                self.0.lock().unwrap().push(match out {
                    Outgoing::Frame(Frame::Stdin(b)) => SinkEvent::Stdin(b.len()),
                    _ => SinkEvent::Other,
                });
                Ok(())
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), SessionError>> {
                self.0.lock().unwrap().push(SinkEvent::Flush);
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), SessionError>> {
                self.poll_flush(cx)
            }
        }
        Recording(events)
    }

    #[tokio::test]
    async fn stdin_read_at_once_goes_out_in_chunks_with_one_flush() {
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let input = vec![7u8; STDIN_CHUNK * 3 + 10];
        // A slice reader returns everything asked for at once, as a file does.
        let mut stdin: &[u8] = &input;
        let setup = setup(&["x"], None);
        send_half(
            recording_sink(events.clone()),
            &setup,
            &mut stdin,
            Interrupts::none(),
        )
        .await
        .unwrap();
        let events = events.lock().unwrap();
        let start = events.iter().position(|e| *e == SinkEvent::Flush).unwrap() + 1;
        assert_eq!(
            events[start..],
            [
                SinkEvent::Stdin(STDIN_CHUNK),
                SinkEvent::Stdin(STDIN_CHUNK),
                SinkEvent::Stdin(STDIN_CHUNK),
                SinkEvent::Stdin(10),
                SinkEvent::Flush,
                SinkEvent::Other, // END_STDIN, sent and flushed
                SinkEvent::Flush,
            ]
        );
    }

    #[tokio::test]
    async fn exit_does_not_wait_for_stdin() {
        let (sink, stream, mut server) = pipes();
        // The feeder stays open: stdin never ends, like an idle terminal.
        let (mut stdio, _feeder) = stdio();
        let setup = setup(&["who-am-i"], None);
        let server_side = async move {
            while let Some(frame) = server.sent.recv().await {
                if frame == Frame::Start {
                    break;
                }
            }
            server.replies.send(Ok(Frame::Exit(0))).await.unwrap();
            server // keep the channels open
        };
        let (code, _server) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            server_side
        );
        assert_eq!(code.unwrap(), 0);
    }

    /// Each write taken, tagged with its stream, in order.
    type WriteLog = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, Vec<u8>)>>>;

    /// Records each write it takes in a log shared by both streams.
    struct Recorder {
        name: &'static str,
        log: WriteLog,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.log.lock().unwrap().push((self.name, buf.to_vec()));
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn recorders() -> (Recorder, Recorder, WriteLog) {
        let log = WriteLog::default();
        let out = Recorder {
            name: "out",
            log: std::sync::Arc::clone(&log),
        };
        let err = Recorder {
            name: "err",
            log: std::sync::Arc::clone(&log),
        };
        (out, err, log)
    }

    #[tokio::test]
    async fn stdout_frames_already_there_go_out_in_one_write_in_order_with_stderr() {
        let (mut out, mut err, log) = recorders();
        let frames = [
            Frame::Stdout(Bytes::from_static(b"a")),
            Frame::Stdout(Bytes::from_static(b"b")),
            Frame::Stderr(Bytes::from_static(b"e")),
            Frame::Stdout(Bytes::from_static(b"c")),
            Frame::Stdout(Bytes::from_static(b"d")),
            Frame::Exit(3),
        ];
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok));
        let code = receive_half(stream, &mut out, &mut err).await.unwrap();
        assert_eq!(code, 3);
        assert_eq!(
            *log.lock().unwrap(),
            [
                ("out", b"ab".to_vec()),
                ("err", b"e".to_vec()),
                ("out", b"cd".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn stdout_is_written_before_waiting_for_the_next_frame() {
        let (mut out, mut err, log) = recorders();
        let (frames, rx) = mpsc::channel(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        frames
            .send(Ok(Frame::Stdout(Bytes::from_static(b"line\n"))))
            .await
            .unwrap();
        let server = async {
            // The exit is only sent once the line is out: a client that held output
            // back until more arrived would wait here until the deadline.
            let deadline = Instant::now() + Duration::from_secs(10);
            while log.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "the line was never written");
                tokio::task::yield_now().await;
            }
            frames.send(Ok(Frame::Exit(0))).await.unwrap();
        };
        let (code, ()) = tokio::join!(receive_half(stream, &mut out, &mut err), server);
        assert_eq!(code.unwrap(), 0);
        assert_eq!(*log.lock().unwrap(), [("out", b"line\n".to_vec())]);
    }

    #[tokio::test]
    async fn stream_ending_before_exit_is_an_error() {
        let (sink, stream, server) = pipes();
        let (mut stdio, _feeder) = stdio();
        let setup = setup(&["help"], None);
        let server_side = async move {
            server
                .replies
                .send(Ok(Frame::Stdout(Bytes::from_static(b"partial"))))
                .await
                .unwrap();
            drop(server.replies);
            server.sent
        };
        let (result, _sent) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            server_side
        );
        assert!(matches!(result, Err(SessionError::ClosedBeforeExit)));
        assert_eq!(stdio.stdout, b"partial");
    }

    #[tokio::test]
    async fn stream_errors_end_the_session() {
        let (sink, stream, server) = pipes();
        let (mut stdio, _feeder) = stdio();
        let setup = setup(&["help"], None);
        let replies = server.replies.clone();
        replies
            .send(Err(SessionError::BadFrame(FrameError::FatalOpcode(0x80))))
            .await
            .unwrap();
        let result = run(sink, stream, &setup, &mut stdio, Interrupts::none()).await;
        assert!(matches!(
            result,
            Err(SessionError::BadFrame(FrameError::FatalOpcode(0x80)))
        ));
    }

    #[tokio::test]
    async fn exit_after_the_send_side_failed_still_counts() {
        let (sink, stream, server) = pipes();
        let Harness { sent, replies } = server;
        // The server stopped reading: every send fails.
        drop(sent);
        let (mut stdio, _feeder) = stdio();
        let setup = setup(&["help"], None);
        replies.send(Ok(Frame::Exit(6))).await.unwrap();
        let result = run(sink, stream, &setup, &mut stdio, Interrupts::none()).await;
        assert_eq!(result.unwrap(), 6);
    }

    #[tokio::test]
    async fn send_failure_explains_a_missing_exit() {
        let (sink, stream, server) = pipes();
        let Harness { sent, replies } = server;
        drop(sent);
        let (mut stdio, _feeder) = stdio();
        let setup = setup(&["help"], None);
        let closer = async move {
            // Let the send side fail first, then close without EXIT.
            tokio::task::yield_now().await;
            drop(replies);
        };
        let (result, ()) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            closer
        );
        assert!(
            matches!(result, Err(SessionError::Connection(_))),
            "{result:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keepalives_go_out_until_exit() {
        let (sink, stream, mut server) = pipes();
        let (mut stdio, feeder) = stdio();
        drop(feeder);
        let setup = setup(&["console", "job"], Some(Duration::from_secs(3)));
        let server_side = async move {
            let mut after_end = Vec::new();
            let mut ended = false;
            while let Some(frame) = server.sent.recv().await {
                if ended {
                    after_end.push(frame);
                    if after_end.len() == 2 {
                        break;
                    }
                } else {
                    ended = frame == Frame::EndStdin;
                }
            }
            server.replies.send(Ok(Frame::Exit(0))).await.unwrap();
            after_end
        };
        let (code, after_end) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, Interrupts::none()),
            server_side
        );
        assert_eq!(code.unwrap(), 0);
        assert_eq!(after_end, [keepalive_frame(), keepalive_frame()]);
    }

    /// Waits until the client has sent `START`.
    async fn until_start(server: &mut Harness) {
        while let Some(frame) = server.sent.recv().await {
            if frame == Frame::Start {
                return;
            }
        }
        panic!("no START");
    }

    fn interrupting(args: &[&str]) -> Setup {
        Setup {
            interrupt: true,
            ..setup(args, None)
        }
    }

    #[tokio::test]
    async fn an_interrupt_is_told_and_the_session_ends_with_the_signals_code() {
        let (sink, stream, mut server) = pipes();
        let (mut stdio, _feeder) = stdio();
        let (trigger, interrupts) = Interrupts::channel();
        let setup = interrupting(&["build", "j", "-s"]);
        let server_side = async move {
            until_start(&mut server).await;
            trigger.fire(Signal::Int);
            let told = loop {
                match server.sent.recv().await {
                    Some(frame @ Frame::Interrupt(_)) => break frame,
                    Some(_) => {}
                    None => panic!("no INTERRUPT"),
                }
            };
            // The controller stops the command and says so.
            for reply in [
                Frame::Stderr(Bytes::from_static(b"stopped\n")),
                Frame::Exit(130),
            ] {
                server.replies.send(Ok(reply)).await.unwrap();
            }
            (told, server)
        };
        let (code, (told, _server)) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, interrupts),
            server_side
        );
        assert_eq!(told, Frame::Interrupt("SIGINT".into()));
        assert_eq!(code.unwrap(), 130);
        assert_eq!(stdio.stderr, b"stopped\n");
    }

    #[tokio::test]
    async fn without_the_controllers_support_an_interrupt_ends_at_once_and_sends_nothing() {
        let (sink, stream, mut server) = pipes();
        let (mut stdio, _feeder) = stdio();
        let (trigger, interrupts) = Interrupts::channel();
        let setup = setup(&["build", "j", "-s"], None);
        let server_side = async move {
            until_start(&mut server).await;
            trigger.fire(Signal::Term);
            server
        };
        let (code, mut server) = tokio::join!(
            run(sink, stream, &setup, &mut stdio, interrupts),
            server_side
        );
        assert_eq!(code.unwrap(), 143);
        // The session is over: what it sent after START is all there is.
        let mut after_start = Vec::new();
        while let Ok(frame) = server.sent.try_recv() {
            after_start.push(frame);
        }
        assert!(
            !after_start.iter().any(|f| matches!(f, Frame::Interrupt(_))),
            "{after_start:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_interrupt_ends_after_the_grace_and_a_second_at_once() {
        for second in [false, true] {
            let (sink, stream, mut server) = pipes();
            let (mut stdio, _feeder) = stdio();
            let (trigger, interrupts) = Interrupts::channel();
            let setup = interrupting(&["build", "j", "-s"]);
            let started = Instant::now();
            let server_side = async move {
                until_start(&mut server).await;
                trigger.fire(Signal::Int);
                while !matches!(server.sent.recv().await, Some(Frame::Interrupt(_))) {}
                if second {
                    trigger.fire(Signal::Int);
                }
                // Never answers, and keeps the connection open.
                (server, trigger)
            };
            let (code, _server) = tokio::join!(
                run(sink, stream, &setup, &mut stdio, interrupts),
                server_side
            );
            assert_eq!(code.unwrap(), 130);
            let waited = started.elapsed();
            if second {
                assert!(waited < INTERRUPT_GRACE, "{waited:?}");
            } else {
                assert!(waited >= INTERRUPT_GRACE, "{waited:?}");
            }
        }
    }
}
