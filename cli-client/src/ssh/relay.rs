//! The byte pump between a local byte stream (the ProxyCommand's stdin and stdout, a
//! tunnelled TCP connection) and the controller's SSH WebSocket, whose binary messages
//! carry the raw SSH bytes both ways.
//!
//! Written over `AsyncRead`/`AsyncWrite` and a `Sink`/`Stream` of messages, so the tests run
//! it over in-memory pipes. Nothing queues without bound: a read from the input is sent
//! (and flushed to the socket) before the next read, and a message from the controller is
//! written to the output before the next is read, so a full stdout pipe stops the reading
//! of the WebSocket, and TCP's window then stops the controller.
//!
//! WebSocket has no half-close, but its close handshake is one: when the input ends we send
//! a close frame and keep writing what the controller still sends until it answers with its
//! own, for at most [`CLOSE_DRAIN`].

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

/// Most input bytes sent in one message: a few of ssh's 32 KiB packets when a transfer
/// queues them (fewer messages, fewer wake-ups), under the controller's 256 KiB cap; a
/// read returns what is there, so an interactive keystroke still goes out alone.
pub const READ_CHUNK: usize = 128 * 1024;
/// How long the controller has to finish once our input has ended (or it sent its close):
/// the SSH session is over by then, and only its last bytes and the close are due.
pub const CLOSE_DRAIN: Duration = Duration::from_secs(5);
/// Pings per idle timeout: the controller answers each one, so a third leaves two chances
/// before the timeout, as the CLI's own sessions do.
const PINGS_PER_IDLE_TIMEOUT: u32 = 3;

/// How a relayed connection ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The controller closed the WebSocket, with its close frame's code and reason if it
    /// gave them.
    Closed(Option<CloseFrame>),
    /// Our output is gone: the SSH client exited or closed the connection.
    OutputGone,
    /// Our input ended and the controller did not finish the close: not within
    /// [`CLOSE_DRAIN`], or it dropped the connection instead. The SSH client had ended its
    /// side, so nothing it waits for is lost.
    Drained,
}

impl End {
    /// A close with a code that is not a normal end says why, e.g. the agent's connection
    /// was lost: that reason, as the controller gave it.
    pub fn failure(&self) -> Option<String> {
        let End::Closed(Some(frame)) = self else {
            return None;
        };
        if matches!(frame.code, CloseCode::Normal | CloseCode::Away) {
            return None;
        }
        let code = u16::from(frame.code);
        let reason = steward_protocol::shown::shown(frame.reason.as_str()).into_owned();
        Some(if reason.is_empty() {
            format!("the controller closed the connection (WebSocket close code {code})")
        } else {
            format!("{reason} (WebSocket close code {code})")
        })
    }
}

/// Why a relayed connection failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("connection lost: {0}")]
    Connection(String),
    #[error(
        "connection lost: nothing came from the controller for {}s (-idleTimeout)",
        .0.as_secs()
    )]
    Idle(Duration),
    #[error("reading the SSH client's bytes: {0}")]
    Input(std::io::Error),
    #[error("writing to the SSH client: {0}")]
    Output(std::io::Error),
}

/// Relays `input` to the socket and the socket to `output` until either side ends.
///
/// With an `idle_timeout`, pings go out a third of it apart, and a controller from which
/// nothing (data, ping or pong) comes for that long is given up. Only time spent waiting
/// for the socket counts: a stalled output does not make the controller look dead.
pub async fn relay<R, W, S>(
    mut input: R,
    mut output: W,
    socket: S,
    idle_timeout: Option<Duration>,
) -> Result<End, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: Sink<Message, Error = tungstenite::Error>
        + Stream<Item = Result<Message, tungstenite::Error>>,
{
    let (sink, stream) = socket.split();
    let keepalive = idle_timeout.map(|t| t / PINGS_PER_IDLE_TIMEOUT);
    let mut up = pin!(upstream(&mut input, sink, keepalive));
    let mut down = pin!(downstream(stream, &mut output, idle_timeout));
    tokio::select! {
        end = &mut down => end,
        sent = &mut up => {
            // Our input ended (a close went out) or the socket refused a write: either way
            // the controller's side says how it ended, if it does so soon.
            match (sent, tokio::time::timeout(CLOSE_DRAIN, &mut down).await) {
                (_, Ok(Ok(end))) => Ok(end),
                // A bridge in front of the controller may drop the connection rather than
                // answer our close (websocat does).
                (Ok(()), Ok(Err(RelayError::Connection(_))) | Err(_)) => Ok(End::Drained),
                (Ok(()), Ok(Err(e))) => Err(e),
                (Err(e), _) => Err(e),
            }
        }
    }
}

/// Sends the input as binary messages, and pings meanwhile; a close at the input's end.
async fn upstream<R, Si>(
    input: &mut R,
    sink: Si,
    keepalive: Option<Duration>,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    Si: Sink<Message, Error = tungstenite::Error>,
{
    let mut sink = pin!(sink);
    let lost = |e: tungstenite::Error| RelayError::Connection(e.to_string());
    let mut ticks = keepalive.map(|period| {
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks
    });
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        tokio::select! {
            // `read` is cancel safe: a ping going out first loses no input.
            read = input.read(&mut chunk) => match read {
                Ok(0) => break,
                Ok(n) => {
                    let data = Bytes::copy_from_slice(&chunk[..n]);
                    sink.send(Message::Binary(data)).await.map_err(lost)?;
                }
                Err(e) => return Err(RelayError::Input(e)),
            },
            () = tick(&mut ticks), if ticks.is_some() => {
                sink.send(Message::Ping(Bytes::new())).await.map_err(lost)?;
            }
        }
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    sink.send(Message::Close(Some(close))).await.map_err(lost)
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Writes the controller's binary messages to the output until it closes.
async fn downstream<St, W>(
    stream: St,
    output: &mut W,
    idle_timeout: Option<Duration>,
) -> Result<End, RelayError>
where
    St: Stream<Item = Result<Message, tungstenite::Error>>,
    W: AsyncWrite + Unpin,
{
    let mut stream = pin!(stream);
    // The controller's close, once it came: the stream is then read only to send our
    // answer to it (tungstenite writes it on the next read) and see the connection end.
    let mut closed: Option<Option<CloseFrame>> = None;
    loop {
        let limit = if closed.is_some() {
            Some(CLOSE_DRAIN)
        } else {
            idle_timeout
        };
        let next = match limit {
            Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return match closed {
                        Some(frame) => Ok(End::Closed(frame)),
                        None => Err(RelayError::Idle(limit)),
                    };
                }
            },
            None => stream.next().await,
        };
        match next {
            Some(Ok(Message::Binary(data))) => {
                let written = async {
                    output.write_all(&data).await?;
                    output.flush().await
                };
                match written.await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(End::OutputGone);
                    }
                    Err(e) => return Err(RelayError::Output(e)),
                }
            }
            Some(Ok(Message::Close(frame))) => closed = Some(frame),
            // Pings are answered by tungstenite as the stream is read; pongs and text only
            // prove the controller alive.
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return match closed {
                    Some(frame) => Ok(End::Closed(frame)),
                    None => Err(RelayError::Connection(e.to_string())),
                };
            }
            None => {
                return match closed {
                    Some(frame) => Ok(End::Closed(frame)),
                    None => Err(RelayError::Connection(
                        "the controller ended the connection without closing the WebSocket".into(),
                    )),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    type Server = WebSocketStream<tokio::io::DuplexStream>;

    async fn pair(buffer: usize) -> (WebSocketStream<tokio::io::DuplexStream>, Server) {
        let (client_io, server_io) = tokio::io::duplex(buffer);
        let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        (client, server)
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_until_the_controller_closes() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, mut user_in) = tokio::io::duplex(1024);
        let (mut user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));

        user_in.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        let Some(Ok(Message::Binary(up))) = server.next().await else {
            panic!("expected a binary message");
        };
        assert_eq!(up.as_ref(), b"SSH-2.0-OpenSSH_9.2\r\n");

        server
            .send(Message::Binary(Bytes::from_static(b"SSH-2.0-steward\r\n")))
            .await
            .unwrap();
        // A text message is no SSH data; it is passed over.
        server.send(Message::text("ignored")).await.unwrap();
        server.close(None).await.unwrap();
        while let Some(Ok(_)) = server.next().await {}
        drop(server);

        assert_eq!(relay.await.unwrap().unwrap(), End::Closed(None));
        let mut down = Vec::new();
        user_out.read_to_end(&mut down).await.unwrap();
        assert_eq!(down, b"SSH-2.0-steward\r\n");
    }

    #[tokio::test]
    async fn the_end_of_input_sends_a_close_and_waits_for_the_controllers() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, mut user_in) = tokio::io::duplex(1024);
        let (mut user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));

        user_in.write_all(b"bye").await.unwrap();
        drop(user_in);
        assert!(
            matches!(server.next().await, Some(Ok(Message::Binary(b))) if b.as_ref() == b"bye")
        );
        // The controller's last bytes, sent before it reads our close, still arrive.
        server
            .send(Message::Binary(Bytes::from_static(b"last")))
            .await
            .unwrap();
        let Some(Ok(Message::Close(Some(frame)))) = server.next().await else {
            panic!("expected a close");
        };
        assert_eq!(frame.code, CloseCode::Normal);
        // Reading on sends tungstenite's answer to the close.
        while let Some(Ok(_)) = server.next().await {}
        drop(server);

        let end = relay.await.unwrap().unwrap();
        assert!(
            matches!(&end, End::Closed(Some(f)) if f.code == CloseCode::Normal),
            "{end:?}"
        );
        assert_eq!(end.failure(), None);
        let mut down = Vec::new();
        user_out.read_to_end(&mut down).await.unwrap();
        assert_eq!(down, b"last");
    }

    #[tokio::test]
    async fn a_connection_dropped_after_our_close_is_a_normal_end() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, user_in) = tokio::io::duplex(1024);
        let (_user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));
        drop(user_in);
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
        // Dropped without the close answer.
        drop(server);
        assert_eq!(relay.await.unwrap().unwrap(), End::Drained);
    }

    #[tokio::test]
    async fn a_connection_dropped_while_our_input_goes_on_is_an_error() {
        let (client, server) = pair(64 * 1024).await;
        let (input, _user_in) = tokio::io::duplex(1024);
        let (_user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));
        drop(server);
        let result = relay.await.unwrap();
        assert!(
            matches!(result, Err(RelayError::Connection(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_close_with_an_error_code_says_why() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, _user_in) = tokio::io::duplex(1024);
        let (_user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));
        server
            .close(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "connection to agent linux-1 lost".into(),
            }))
            .await
            .unwrap();
        while let Some(Ok(_)) = server.next().await {}
        drop(server);
        let end = relay.await.unwrap().unwrap();
        assert_eq!(
            end.failure().as_deref(),
            Some("connection to agent linux-1 lost (WebSocket close code 1011)")
        );
        assert_eq!(End::Closed(None).failure(), None);
        assert_eq!(End::OutputGone.failure(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_output_stops_the_reading_of_the_socket() {
        // Small pipes everywhere: the controller can queue little before it must wait.
        let (client, mut server) = pair(16 * 1024).await;
        let (input, _user_in) = tokio::io::duplex(1024);
        let (mut user_out, output) = tokio::io::duplex(4 * 1024);
        let relay = tokio::spawn(relay(input, output, client, None));

        let message = Bytes::from(vec![7u8; 8 * 1024]);
        let total = 256;
        let sender = tokio::spawn(async move {
            for _ in 0..total {
                server.send(Message::Binary(message.clone())).await.unwrap();
            }
            server
        });
        // Nobody reads the output: once everything has settled (the paused clock moves only
        // when every task waits), the controller is still stuck far from the end.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!sender.is_finished(), "the relay buffered without bound");

        // Reading the output lets everything through.
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = vec![0; 64 * 1024];
            loop {
                match user_out.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got += n,
                }
            }
        });
        let mut server = sender.await.unwrap();
        server.close(None).await.unwrap();
        while let Some(Ok(_)) = server.next().await {}
        drop(server);
        assert_eq!(relay.await.unwrap().unwrap(), End::Closed(None));
        assert_eq!(reader.await.unwrap(), total * 8 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_that_does_not_read_stops_the_reading_of_the_input() {
        let (client, mut server) = pair(16 * 1024).await;
        let (input, mut user_in) = tokio::io::duplex(4 * 1024);
        let (_user_out, output) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, output, client, None));

        let total = 2 * 1024 * 1024;
        let writer = tokio::spawn(async move {
            user_in.write_all(&vec![1u8; total]).await.unwrap();
            user_in
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!writer.is_finished(), "the relay buffered without bound");

        // Reading on the controller's side lets everything through, in messages no larger
        // than READ_CHUNK.
        let mut got = 0;
        while got < total {
            let Some(Ok(Message::Binary(data))) = server.next().await else {
                panic!("expected a binary message");
            };
            assert!(data.len() <= READ_CHUNK);
            got += data.len();
        }
        drop(writer.await.unwrap());
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
        drop(server);
        assert_eq!(relay.await.unwrap().unwrap(), End::Drained);
    }

    #[tokio::test]
    async fn a_gone_output_ends_the_relay_quietly() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, _user_in) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(input, BrokenPipe, client, None));
        server
            .send(Message::Binary(Bytes::from_static(b"x")))
            .await
            .unwrap();
        assert_eq!(relay.await.unwrap().unwrap(), End::OutputGone);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_go_out_and_a_silent_controller_is_given_up() {
        let (client, mut server) = pair(64 * 1024).await;
        let (input, _user_in) = tokio::io::duplex(1024);
        let (_user_out, output) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(60);
        let start = Instant::now();
        let relay = tokio::spawn(relay(input, output, client, Some(idle)));
        // The first ping, a third of the way; then the controller goes silent (its socket
        // is no longer read, so no pong comes back either).
        assert!(matches!(server.next().await, Some(Ok(Message::Ping(_)))));
        assert_eq!(start.elapsed(), idle / 3);
        let result = relay.await.unwrap();
        assert!(
            matches!(result, Err(RelayError::Idle(d)) if d == idle),
            "{result:?}"
        );
        assert_eq!(start.elapsed(), idle);
    }

    /// An output whose reader has gone.
    struct BrokenPipe;

    impl AsyncWrite for BrokenPipe {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
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
}
