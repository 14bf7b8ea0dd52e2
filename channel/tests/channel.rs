//! The channel over in-memory pipes: streams, flow control, resets, loss, pings, calls.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use steward_channel::call;
use steward_channel::{Channel, ChannelEnd, DEFAULT_WINDOW, Incoming, Side, StreamError};
use steward_protocol::channel::{Frame, Open, ResetCode};
use steward_protocol::services::{Request, Response};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Messages a pipe holds, like a socket buffer.
const PIPE: usize = 64;

type Tx = PollSender<Bytes>;
type Rx = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

fn pipe() -> (Tx, Rx) {
    let (tx, rx) = mpsc::channel::<Bytes>(PIPE);
    let rx =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
        );
    (PollSender::new(tx), Box::pin(rx))
}

struct Pair {
    controller: Channel,
    agent: Channel,
    controller_incoming: Incoming,
    agent_incoming: Incoming,
    ends: tokio::task::JoinHandle<(ChannelEnd, ChannelEnd)>,
}

fn start_pair() -> Pair {
    let (c_tx, a_rx) = pipe();
    let (a_tx, c_rx) = pipe();
    let (controller, controller_incoming, c_driver) = Channel::start(c_tx, c_rx, Side::Controller);
    let (agent, agent_incoming, a_driver) = Channel::start(a_tx, a_rx, Side::Agent);
    let ends = tokio::spawn(async move { tokio::join!(c_driver, a_driver) });
    Pair {
        controller,
        agent,
        controller_incoming,
        agent_incoming,
        ends,
    }
}

/// Echoes every stream the agent accepts.
fn spawn_echo(mut incoming: Incoming) {
    tokio::spawn(async move {
        while let Some(accepted) = incoming.accept().await {
            tokio::spawn(async move {
                let mut s = accepted.stream;
                while let Some(Ok(chunk)) = s.recv().await {
                    if s.send(chunk).await.is_err() {
                        return;
                    }
                }
                let _ = s.finish().await;
            });
        }
    });
}

#[tokio::test]
async fn stream_round_trip_with_header_and_eof() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let mut s = p
        .controller
        .open(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let accepted = agent_incoming.accept().await.unwrap();
    assert_eq!(accepted.header, Bytes::from_static(b"hello"));
    let mut peer = accepted.stream;
    s.send(Bytes::from(vec![7u8; 200_000])).await.unwrap();
    s.finish().await.unwrap();
    let got = peer.recv.read_to_end(1 << 20).await.unwrap();
    assert_eq!(got.len(), 200_000);
    assert!(got.iter().all(|b| *b == 7));
    peer.finish().await.unwrap();
    assert!(s.recv().await.is_none(), "EOF from the peer");
}

#[tokio::test]
async fn either_side_opens_streams() {
    let p = start_pair();
    spawn_echo(p.controller_incoming);
    let mut s = p.agent.open(Bytes::new()).await.unwrap();
    assert_eq!(s.id() % 2, 0, "agent streams are even");
    s.send(Bytes::from_static(b"ping")).await.unwrap();
    s.finish().await.unwrap();
    assert_eq!(
        s.recv.read_to_end(100).await.unwrap(),
        Bytes::from_static(b"ping")
    );
}

#[tokio::test]
async fn a_reader_that_stops_holds_the_sender_at_one_window() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let s = p.controller.open(Bytes::new()).await.unwrap();
    let (mut send, _recv) = s.into_split();
    let accepted = agent_incoming.accept().await.unwrap();
    let mut peer = accepted.stream;

    let sender = tokio::spawn(async move {
        let mut sent = 0usize;
        let chunk = Bytes::from(vec![1u8; 64 * 1024]);
        loop {
            if tokio::time::timeout(Duration::from_millis(300), send.send(chunk.clone()))
                .await
                .is_err()
            {
                return (sent, send);
            }
            sent += chunk.len();
        }
    });
    let (sent, mut send) = sender.await.unwrap();
    assert_eq!(
        sent, DEFAULT_WINDOW as usize,
        "the sender stops after exactly one window"
    );

    // Reading frees credit and the sender goes on.
    let mut read = 0;
    while read < DEFAULT_WINDOW as usize {
        read += peer.recv().await.unwrap().unwrap().len();
    }
    tokio::time::timeout(
        Duration::from_secs(5),
        send.send(Bytes::from(vec![2u8; 64 * 1024])),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn try_recv_takes_what_has_arrived_and_the_next_recv_gives_its_credit_back() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let mut s = p.controller.open(Bytes::new()).await.unwrap();
    let mut peer = agent_incoming.accept().await.unwrap().stream;
    assert_eq!(peer.recv.try_recv(), None, "nothing has arrived yet");

    const CHUNK: usize = 64 * 1024;
    let windows = 3;
    let sender = tokio::spawn(async move {
        for i in 0..windows * DEFAULT_WINDOW as usize / CHUNK {
            s.send(Bytes::from(vec![i as u8; CHUNK])).await.unwrap();
        }
        s.finish().await.unwrap();
    });
    // A whole window taken without waiting: the sender is now out of credit.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < DEFAULT_WINDOW as usize {
        match peer.recv.try_recv() {
            Some(chunk) => got.extend_from_slice(&chunk),
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "only {} bytes arrived",
                    got.len()
                );
                tokio::task::yield_now().await;
            }
        }
    }
    // Only `recv` returns credit; without it the sender would stall for good.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match peer.recv().await {
                Some(chunk) => got.extend_from_slice(&chunk.unwrap()),
                // EOF, held back by a `try_recv` or not, comes after every byte.
                None => break,
            }
            while let Some(more) = peer.recv.try_recv() {
                got.extend_from_slice(&more);
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the sender stalled after {} bytes", got.len());
    sender.await.unwrap();
    assert_eq!(got.len(), windows * DEFAULT_WINDOW as usize);
    assert!(
        got.chunks(CHUNK)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8)),
        "bytes out of order"
    );
    assert_eq!(peer.recv.try_recv(), None, "nothing after EOF");
}

#[tokio::test]
async fn dropping_the_reader_resets_the_sender() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let mut s = p.controller.open(Bytes::new()).await.unwrap();
    let accepted = agent_incoming.accept().await.unwrap();
    drop(accepted.stream);
    let err = loop {
        match s.send(Bytes::from(vec![0u8; 64 * 1024])).await {
            Ok(()) => tokio::task::yield_now().await,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            StreamError::Reset {
                code: ResetCode::Cancelled,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        s.recv().await,
        Some(Err(StreamError::Reset { .. }))
    ));
}

#[tokio::test]
async fn losing_the_connection_fails_every_stream_at_once() {
    let (c_tx, _a_rx) = pipe();
    let (a_tx, c_rx) = pipe();
    let (controller, _incoming, driver) = Channel::start(c_tx, c_rx, Side::Controller);
    let driver = tokio::spawn(driver);
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(controller.open(Bytes::new()).await.unwrap());
    }
    drop(a_tx); // the peer's side of the connection is gone
    assert_eq!(
        driver.await.unwrap(),
        ChannelEnd::Lost("connection closed".into())
    );
    for s in &mut streams {
        assert_eq!(
            s.recv().await,
            Some(Err(StreamError::ChannelLost("connection closed".into())))
        );
    }
    assert!(controller.open(Bytes::new()).await.is_err());
    assert!(controller.ping().await.is_err());
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let p = start_pair();
    let rtt = p.controller.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    p.agent.ping().await.unwrap();
}

#[tokio::test]
async fn typed_call() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    tokio::spawn(async move {
        let mut accepted = agent_incoming.accept().await.unwrap();
        let request = steward_protocol::services::decode_request(&accepted.header).unwrap();
        assert_eq!(request, Request::Sha256 { path: "/x".into() });
        assert!(accepted.stream.recv().await.is_none());
        call::reply(&mut accepted.stream, &Response::Sha256 { hex: "ab".into() })
            .await
            .unwrap();
    });
    let answer = call::call(&p.controller, &Request::Sha256 { path: "/x".into() })
        .await
        .unwrap();
    assert_eq!(answer, Response::Sha256 { hex: "ab".into() });
}

#[tokio::test]
async fn many_concurrent_streams_all_complete() {
    let p = start_pair();
    spawn_echo(p.agent_incoming);
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let channel = p.controller.clone();
        tasks.push(tokio::spawn(async move {
            let s = channel.open(Bytes::new()).await.unwrap();
            let (mut send, mut recv) = s.into_split();
            let writer = tokio::spawn(async move {
                for _ in 0..32 {
                    send.send(Bytes::from(vec![i; 64 * 1024])).await.unwrap();
                }
                send.finish().await.unwrap();
            });
            let mut total = 0;
            while let Some(chunk) = recv.recv().await {
                let chunk = chunk.unwrap();
                assert!(chunk.iter().all(|b| *b == i));
                total += chunk.len();
            }
            writer.await.unwrap();
            total
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 32 * 64 * 1024);
    }
    assert_eq!(
        p.controller.open_streams(),
        0,
        "finished streams are forgotten"
    );
}

/// A raw peer: we write frames by hand into the channel under test.
fn raw_peer() -> (
    Channel,
    Incoming,
    Tx,
    Rx,
    tokio::task::JoinHandle<ChannelEnd>,
) {
    let (c_tx, peer_rx) = pipe();
    let (peer_tx, c_rx) = pipe();
    let (channel, incoming, driver) = Channel::start(c_tx, c_rx, Side::Controller);
    (channel, incoming, peer_tx, peer_rx, tokio::spawn(driver))
}

async fn send_raw(tx: &mut Tx, bytes: Vec<u8>) {
    use futures_util::SinkExt;
    tx.send(Bytes::from(bytes)).await.unwrap();
}

#[tokio::test]
async fn unknown_core_frame_kind_ends_the_channel_with_a_reason() {
    let (_channel, _incoming, mut tx, _rx, driver) = raw_peer();
    send_raw(&mut tx, vec![0x30, 0, 0, 0, 0, 0]).await;
    assert_eq!(
        driver.await.unwrap(),
        ChannelEnd::Lost("protocol error: unknown channel frame kind 0x30".into())
    );
}

#[tokio::test]
async fn a_protocol_error_reaches_the_peer_as_goaway_before_the_end() {
    let (_channel, _incoming, mut tx, mut rx, driver) = raw_peer();
    send_raw(&mut tx, vec![0x00, 0, 0, 0, 0, 0]).await;
    assert!(
        matches!(driver.await.unwrap(), ChannelEnd::Lost(why) if why.starts_with("protocol error"))
    );
    // The driver has ended; the GOAWAY it queued was written before it did.
    use futures_util::StreamExt;
    let mut goaway = None;
    while let Some(Ok(m)) = rx.next().await {
        if let Ok(Some(Frame::GoAway(g))) = Frame::decode(&m) {
            goaway = Some(g);
            break;
        }
    }
    let goaway = goaway.expect("a GOAWAY before the end");
    assert_eq!(
        goaway.code,
        steward_protocol::channel::GoAwayCode::ProtocolError
    );
}

#[tokio::test]
async fn extension_frames_are_skipped() {
    let (channel, _incoming, mut tx, mut rx, _driver) = raw_peer();
    send_raw(&mut tx, vec![0x55, 0, 0, 0, 0, 0, 1, 2, 3]).await;
    send_raw(&mut tx, Frame::Ping { nonce: 9 }.encode()).await;
    use futures_util::StreamExt;
    let pong = rx.next().await.unwrap().unwrap();
    assert_eq!(Frame::decode(&pong), Ok(Some(Frame::Pong { nonce: 9 })));
    assert!(!channel.is_closed());
}

#[tokio::test]
async fn data_beyond_the_window_resets_the_stream() {
    let (_channel, mut incoming, mut tx, mut rx, _driver) = raw_peer();
    // The peer opens stream 2 and then ignores our window of DEFAULT_WINDOW.
    send_raw(
        &mut tx,
        Frame::Open {
            stream: 2,
            open: Open {
                window: DEFAULT_WINDOW,
                header: Bytes::new(),
            },
        }
        .encode(),
    )
    .await;
    let mut accepted = incoming.accept().await.unwrap();
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    for _ in 0..(DEFAULT_WINDOW as usize / chunk.len() + 1) {
        send_raw(
            &mut tx,
            Frame::Data {
                stream: 2,
                payload: chunk.clone(),
            }
            .encode(),
        )
        .await;
    }
    let mut got = 0;
    let err = loop {
        match accepted.stream.recv().await {
            Some(Ok(b)) => got += b.len(),
            Some(Err(e)) => break e,
            None => panic!("EOF"),
        }
    };
    assert!(got <= DEFAULT_WINDOW as usize);
    assert!(
        matches!(
            err,
            StreamError::Reset {
                code: ResetCode::ProtocolError,
                ..
            }
        ),
        "{err:?}"
    );
    use futures_util::StreamExt;
    let mut saw_reset = false;
    while let Some(Ok(m)) = rx.next().await {
        if let Ok(Some(Frame::Reset {
            stream: 2,
            code: ResetCode::ProtocolError,
            ..
        })) = Frame::decode(&m)
        {
            saw_reset = true;
            break;
        }
    }
    assert!(saw_reset, "the peer is told");
}

#[tokio::test]
async fn close_sends_goaway_and_fails_streams() {
    let p = start_pair();
    let mut s = p.agent.open(Bytes::new()).await.unwrap();
    p.controller
        .close(steward_protocol::channel::GoAway {
            code: steward_protocol::channel::GoAwayCode::Shutdown,
            reason: "bye".into(),
        })
        .await;
    let (c_end, a_end) = p.ends.await.unwrap();
    assert_eq!(c_end, ChannelEnd::Closed);
    assert!(
        matches!(a_end, ChannelEnd::GoAway(ref g) if g.reason == "bye"),
        "{a_end:?}"
    );
    assert!(matches!(s.recv().await, Some(Err(StreamError::ChannelLost(r))) if r.contains("bye")));
}

#[tokio::test]
async fn a_reply_then_drop_delivers_the_reply_before_the_reset() {
    // The answering side sends its reply and EOF, then drops the stream without reading the
    // opener's EOF: the opener must still get the whole reply.
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    tokio::spawn(async move {
        while let Some(accepted) = agent_incoming.accept().await {
            let mut s = accepted.stream;
            for _ in 0..16 {
                s.send(Bytes::from(vec![3u8; 64 * 1024])).await.unwrap();
            }
            s.finish().await.unwrap();
            drop(s);
        }
    });
    for _ in 0..20 {
        let mut s = p.controller.open(Bytes::new()).await.unwrap();
        let got = s.recv.read_to_end(2 << 20).await.unwrap();
        assert_eq!(got.len(), 16 * 64 * 1024);
    }
}

#[tokio::test]
async fn a_peer_reset_is_seen_without_sending_or_reading() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let mut s = p.controller.open(Bytes::new()).await.unwrap();
    s.finish().await.unwrap();
    let accepted = agent_incoming.accept().await.unwrap();
    let (send, mut recv) = accepted.stream.into_split();
    assert!(recv.recv().await.is_none(), "the opener finished");
    let waiting = tokio::spawn(async move { send.closed().await });
    drop(s);
    let why = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            why,
            StreamError::Reset {
                code: ResetCode::Cancelled,
                ..
            }
        ),
        "{why:?}"
    );
}

#[tokio::test]
async fn buffers_framed_in_place_arrive_like_plain_sends() {
    let p = start_pair();
    let mut agent_incoming = p.agent_incoming;
    let s = p.controller.open(Bytes::new()).await.unwrap();
    let (mut send, _recv) = s.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..40u8 {
            let mut buffer = steward_channel::data_buffer(64 * 1024);
            buffer.extend_from_slice(&[i; 64 * 1024]);
            send.send_buffer(buffer).await.unwrap();
        }
        send.finish().await.unwrap();
    });
    let mut peer = agent_incoming.accept().await.unwrap().stream;
    let all = peer.recv.read_to_end(8 << 20).await.unwrap();
    writer.await.unwrap();
    assert_eq!(all.len(), 40 * 64 * 1024);
    for (i, block) in all.chunks(64 * 1024).enumerate() {
        assert!(block.iter().all(|b| *b == i as u8), "block {i}");
    }
}
