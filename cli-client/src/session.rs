//! The PlainCLIProtocol session loop (compat §6), written once for both transports.
//!
//! The loop sees the connection as a [`Sink`] of [`Frame`]s going to the server and a
//! [`Stream`] of frames coming back; `ws.rs` and `http.rs` adapt a WebSocket and the two
//! halves of a full-duplex HTTP exchange to that shape, and the tests below use in-memory
//! channels. Two halves run concurrently in one task:
//!
//! - sending: every `ARG`, then `ENCODING`, `LOCALE`, `START`; then stdin as `STDIN` chunks
//!   and `END_STDIN` at end of input, with an optional `ENCODING` keepalive meanwhile;
//! - receiving: `STDOUT`/`STDERR` written and flushed as they arrive, until `EXIT`.
//!
//! `EXIT` ends the session at once, whatever the sending half is doing (it may be blocked
//! reading a terminal); the caller is expected to exit the process promptly after.

use std::pin::pin;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use steward_protocol::plaincli::{Frame, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};

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
    /// When set, an extra `ENCODING` frame goes out this often until the session ends
    /// (the full-duplex HTTP client's keepalive, compat §5).
    pub keepalive: Option<Duration>,
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

/// Runs one command over an established connection and returns its exit code.
///
/// The sink is dropped when this returns, which closes the sending direction.
pub async fn run<Si, St, I, O, E>(
    sink: Si,
    stream: St,
    setup: &Setup,
    stdio: &mut Stdio<I, O, E>,
) -> Result<i32, SessionError>
where
    Si: Sink<Frame, Error = SessionError>,
    St: Stream<Item = Result<Frame, SessionError>>,
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut send = pin!(send_half(sink, setup, &mut stdio.stdin));
    let mut receive = pin!(receive_half(stream, &mut stdio.stdout, &mut stdio.stderr));
    let mut send_done = false;
    let mut send_error = None;
    loop {
        tokio::select! {
            result = &mut receive => {
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
            }
        }
    }
}

/// Sends the preamble, then pumps stdin and keepalives. Ends after `END_STDIN` when there
/// is no keepalive; otherwise runs until dropped.
async fn send_half<Si, I>(sink: Si, setup: &Setup, stdin: &mut I) -> Result<(), SessionError>
where
    Si: Sink<Frame, Error = SessionError>,
    I: AsyncRead + Unpin,
{
    let mut sink = pin!(sink);
    for arg in &setup.args {
        sink.feed(Frame::Arg(arg.clone())).await?;
    }
    sink.feed(Frame::Encoding(ENCODING.to_owned())).await?;
    sink.feed(Frame::Locale(setup.locale.clone())).await?;
    sink.send(Frame::Start).await?;

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
                        sink.feed(Frame::Stdin(piece.freeze())).await?;
                    }
                    sink.flush().await?;
                }
                // A stdin we cannot read (closed descriptor, EIO) is treated as empty: most
                // commands do not read it, and they must still run.
                _ => {
                    stdin_open = false;
                    sink.send(Frame::EndStdin).await?;
                }
            },
            _ = tick(&mut keepalive), if keepalive.is_some() => {
                sink.send(Frame::Encoding(ENCODING.to_owned())).await?;
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

    fn pipes() -> (
        impl Sink<Frame, Error = SessionError>,
        impl Stream<Item = Result<Frame, SessionError>>,
        Harness,
    ) {
        let (sent_tx, sent) = mpsc::channel(4);
        let (replies, replies_rx) = mpsc::channel(4);
        let sink = futures_util::sink::unfold(sent_tx, |tx, frame| async move {
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
        let (code, seen) = tokio::join!(run(sink, stream, &setup, &mut stdio), server_side);

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
        let (code, received) = tokio::join!(run(sink, stream, &setup, &mut stdio), server_side);
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
    ) -> impl Sink<Frame, Error = SessionError> {
        struct Recording(std::sync::Arc<std::sync::Mutex<Vec<SinkEvent>>>);
        impl Sink<Frame> for Recording {
            type Error = SessionError;
            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), SessionError>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn start_send(
                self: std::pin::Pin<&mut Self>,
                frame: Frame,
            ) -> Result<(), SessionError> {
                self.0.lock().unwrap().push(match frame {
                    Frame::Stdin(b) => SinkEvent::Stdin(b.len()),
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
        send_half(recording_sink(events.clone()), &setup, &mut stdin)
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
        let (code, _server) = tokio::join!(run(sink, stream, &setup, &mut stdio), server_side);
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
        let (result, _sent) = tokio::join!(run(sink, stream, &setup, &mut stdio), server_side);
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
        let result = run(sink, stream, &setup, &mut stdio).await;
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
        let result = run(sink, stream, &setup, &mut stdio).await;
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
        let (result, ()) = tokio::join!(run(sink, stream, &setup, &mut stdio), closer);
        assert!(
            matches!(result, Err(SessionError::Connection(_))),
            "{result:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_sends_encoding_until_exit() {
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
        let (code, after_end) = tokio::join!(run(sink, stream, &setup, &mut stdio), server_side);
        assert_eq!(code.unwrap(), 0);
        assert_eq!(
            after_end,
            [
                Frame::Encoding("UTF-8".into()),
                Frame::Encoding("UTF-8".into())
            ]
        );
    }
}
