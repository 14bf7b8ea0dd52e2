//! Resilience (issue 4): what bad peers and sudden deaths do to a controller, with small N so
//! the file runs in the normal suite. Every figure these tests print is collected in
//! docs/reliability.md. The half-open agent (SIGSTOP) lives in tests/keepalive.rs.
//!
//! - a flood of bad `/wsagents/` handshakes of seven kinds, in parallel;
//! - WebSocket frame abuse after the upgrade, on agent and CLI sockets;
//! - full-duplex HTTP CLI abuse;
//! - a CLI that stops reading a command that produces 1 GB;
//! - kill -9 of the controller during a burst of `create-node`, `create-job` and `build`.
//!
//! File descriptors: the handshake flood holds up to about 900 sockets in the test and as
//! many in the controller (500 slowloris clients and 64 in flight for each of six kinds),
//! under the usual soft limit of 1024. It passes a `--max-connections` far above that, so
//! the connection caps (tested in connection_limits.rs) refuse none of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_protocol::channel::{FEATURE_MUX, Frame, Hello, Role};
use steward_protocol::handshake as hs;
use steward_protocol::plaincli::{self, MAX_FRAME_PAYLOAD};
use steward_tests::duplex::{self, Caller, Download, assert_exit, chunk, read_head};
use steward_tests::frames::{self, RawWs, client_close, client_frame, op};
use steward_tests::{Controller, DEADLINE, command, rss_bytes, run_cli, wait_until};

const MIB: u64 = 1024 * 1024;

/// Pseudo-random bytes (xorshift), the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The controller's log must not show a panic.
fn assert_no_panic(c: &Controller) {
    assert!(
        !c.log.contains("panicked"),
        "the controller panicked:\n{}",
        c.log.text()
    );
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `get-node NAME`'s XML.
fn node_xml(c: &Controller, name: &str) -> String {
    let out = c.cli(&["get-node", name]);
    assert_eq!(out.code, 0, "get-node {name}: {out:?}");
    out.stdout
}

/// The names `list-nodes -json` shows, sorted.
fn node_names(c: &Controller) -> Vec<String> {
    let out = c.cli(&["list-nodes", "-json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut names: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// Issue 4, item 2: Bad handshakes in parallel
// ---------------------------------------------------------------------------------------

/// Bad handshakes of each kind.
const PER_KIND: usize = 500;
/// Bad handshakes of one kind in flight at once (slowloris clients all wait together).
const IN_FLIGHT: usize = 64;
/// The controller's `--http-header-timeout` in the flood test.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The flood's `--max-connections`, far above the ~900 connections it holds at once, so
/// that no bad handshake meets the cap instead of the check it is sent for. (With 1000,
/// some got 503: a connection counts until the controller sees its client's close, so the
/// controller counts more than the test holds. The default cap under a limit of 1024 would
/// be 768.)
const FLOOD_MAX_CONNECTIONS: &str = "10000";
/// A header byte from a slowloris client this often.
const TRICKLE_EVERY: Duration = Duration::from_millis(100);
/// Slack for a loaded 2-core machine on "closed within the header timeout".
const TIMEOUT_SLACK: Duration = Duration::from_secs(3);
/// How far above its baseline the controller's RSS may stay after a flood. The allocator
/// keeps freed memory for reuse (steward_channel::allocator), so the peak of the flood's
/// buffers may stay resident; a leak of even 10 KiB per bad request (3,500 of them) would
/// not fit.
const FLOOD_RSS_TOLERANCE: u64 = 32 * MIB;

/// One bad handshake's outcome.
#[derive(Debug)]
enum Answer {
    Status {
        status: u16,
        body: Vec<u8>,
    },
    /// The connection closed (EOF or reset) after `bytes` bytes of an answer.
    Closed {
        after: Duration,
        bytes: usize,
    },
    /// A slowloris connection still open after the deadline.
    Open {
        #[allow(dead_code)] // shown in the failure message
        trickle: bool,
    },
}

/// Sends `request` on a new connection and reads the answer's status and body (by
/// `Content-Length`). A failed write is not the end: the controller may answer (431) and
/// close while a large request is still being written.
async fn exchange(addr: &str, request: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.write_all(request).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < end + 4 + length {
                    match tcp.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                let body = buf[end + 4..].to_vec();
                return Answer::Status { status, body };
            }
            match tcp.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => {
                    return Answer::Closed {
                        after: start.elapsed(),
                        bytes: buf.len(),
                    };
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("an answer or a close within the deadline")
}

/// A client that never finishes its request head: it sends nothing (`trickle` false) or a
/// byte every [`TRICKLE_EVERY`]. Returns how the connection ended, or `Open` if it was still
/// open after [`DEADLINE`].
async fn slowloris(addr: &str, trickle: bool) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    if trickle {
        let _ = tcp
            .write_all(b"GET /wsagents/ HTTP/1.1\r\nHost: x\r\nNode-Name: ")
            .await;
    }
    let mut chunk = [0u8; 1024];
    let mut ticks = tokio::time::interval(TRICKLE_EVERY);
    let ended = async {
        loop {
            tokio::select! {
                read = tcp.read(&mut chunk) => {
                    return match read {
                        Ok(0) | Err(_) => Answer::Closed { after: start.elapsed(), bytes: 0 },
                        Ok(n) => Answer::Closed { after: start.elapsed(), bytes: n },
                    };
                }
                _ = ticks.tick(), if trickle => {
                    if tcp.write_all(b"a").await.is_err() {
                        return Answer::Closed { after: start.elapsed(), bytes: 0 };
                    }
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, ended)
        .await
        .unwrap_or(Answer::Open { trickle })
}

/// An upgrade request for `/wsagents/` with these agent headers (and no others).
fn agent_upgrade(addr: &str, headers: &[(&str, &str)], upgrade: bool) -> Vec<u8> {
    let mut request = format!("GET /wsagents/ HTTP/1.1\r\nHost: {addr}\r\n");
    if upgrade {
        request.push_str(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Runs `make(i)` for `i` in `0..count` with at most `in_flight` at once; all answers.
async fn flood<F, Fut>(count: usize, in_flight: usize, make: F) -> Vec<Answer>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter((0..count).map(make))
        .buffer_unordered(in_flight)
        .collect()
        .await
}

fn assert_all_status(kind: &str, answers: &[Answer], status: u16, body: Option<&str>) {
    assert_eq!(answers.len(), PER_KIND);
    for answer in answers {
        match answer {
            Answer::Status { status: s, body: b } if *s == status => {
                if let Some(expected) = body {
                    assert_eq!(String::from_utf8_lossy(b), expected, "{kind}");
                }
            }
            other => panic!("{kind}: expected {status}, got {other:?}"),
        }
    }
}

/// One round of the flood: [`PER_KIND`] bad handshakes of each of the seven kinds, all kinds
/// at once. Checks every answer; returns the slowest slowloris close.
fn flood_round(runtime: &tokio::runtime::Runtime, addr: &str, secret: &str) -> Duration {
    let cap = hs::REMOTING_CAPABILITY;
    let oversized = "x".repeat(80 * 1024);
    let (missing, wrong, unknown, plain, big, garbage, slow) = runtime.block_on(async {
        let missing = flood(PER_KIND, IN_FLIGHT, |_| {
            let request = agent_upgrade(
                addr,
                &[("Node-Name", "good"), ("X-Remoting-Capability", cap)],
                true,
            );
            async move { exchange(addr, &request).await }
        });
        let wrong = flood(PER_KIND, IN_FLIGHT, |_| {
            let bad = "0".repeat(64);
            let request = agent_upgrade(
                addr,
                &[
                    ("Node-Name", "good"),
                    ("Secret-Key", &bad),
                    ("X-Remoting-Capability", cap),
                ],
                true,
            );
            async move { exchange(addr, &request).await }
        });
        let unknown = flood(PER_KIND, IN_FLIGHT, |i| {
            let name = format!("ghost-{i}");
            let request = agent_upgrade(
                addr,
                &[
                    ("Node-Name", &name),
                    ("Secret-Key", &"0".repeat(64)),
                    ("X-Remoting-Capability", cap),
                ],
                true,
            );
            async move { exchange(addr, &request).await }
        });
        let plain = flood(PER_KIND, IN_FLIGHT, |_| {
            // Everything right for a node with no connection, except the upgrade.
            let request = agent_upgrade(
                addr,
                &[
                    ("Node-Name", "idle"),
                    ("Secret-Key", secret),
                    ("X-Remoting-Capability", cap),
                    ("X-Steward-Channel", "steward-channel/1"),
                ],
                false,
            );
            async move { exchange(addr, &request).await }
        });
        let big = flood(PER_KIND, IN_FLIGHT, |_| {
            let request = agent_upgrade(addr, &[("X-Padding", &oversized)], true);
            async move { exchange(addr, &request).await }
        });
        let garbage = flood(PER_KIND, IN_FLIGHT, |i| {
            let request = noise(i as u64, 1024);
            async move { exchange(addr, &request).await }
        });
        // All at once: each holds its connection for the header timeout.
        let slow = flood(PER_KIND, PER_KIND, |i| async move {
            slowloris(addr, i % 2 == 0).await
        });
        tokio::join!(missing, wrong, unknown, plain, big, garbage, slow)
    });
    assert_all_status(
        "missing header",
        &missing,
        400,
        Some(hs::MSG_MISSING_HEADERS),
    );
    assert_all_status("wrong secret", &wrong, 403, Some(""));
    assert_all_status("unknown node", &unknown, 400, Some(hs::MSG_NO_SUCH_AGENT));
    assert_all_status("not an upgrade", &plain, 400, None);
    for answer in &plain {
        let Answer::Status { body, .. } = answer else {
            unreachable!()
        };
        let body = String::from_utf8_lossy(body).to_ascii_lowercase();
        assert!(body.contains("upgrade"), "{body}");
    }
    assert_all_status("oversized headers", &big, 431, Some(""));
    assert_all_status("garbage", &garbage, 400, Some(""));
    assert_eq!(slow.len(), PER_KIND);
    let still_open: Vec<_> = slow
        .iter()
        .filter(|a| matches!(a, Answer::Open { .. }))
        .collect();
    assert!(
        still_open.is_empty(),
        "{} slowloris connections still open after {DEADLINE:?}: {still_open:?}",
        still_open.len()
    );
    let mut slowest = Duration::ZERO;
    for answer in &slow {
        let Answer::Closed { after, bytes: 0 } = answer else {
            panic!("slowloris: expected a close without an answer, got {answer:?}");
        };
        assert!(
            *after >= HEADER_TIMEOUT.mul_f32(0.9) && *after <= HEADER_TIMEOUT + TIMEOUT_SLACK,
            "slowloris closed after {after:?}, header timeout {HEADER_TIMEOUT:?}"
        );
        slowest = slowest.max(*after);
    }

    slowest
}

#[test]
fn bad_handshakes_in_parallel_get_their_status_and_change_nothing() {
    let timeout = HEADER_TIMEOUT.as_secs().to_string();
    let c = Controller::start_with(&[
        "--http-header-timeout",
        &timeout,
        "--max-connections",
        FLOOD_MAX_CONNECTIONS,
    ]);
    let agent = c.connected_agent("good", "");
    c.create_node("idle", "");
    let before_good = node_xml(&c, "good");
    let before_idle = node_xml(&c, "idle");
    let connection = c.node_json("good")["remoteAddress"].clone();
    let connected_before = c.log.count("agent connected");
    let refused_before = c.log.count("refused agent connection");
    let secret = c.secret("idle");
    let baseline = rss_bytes(c.pid());
    let fds_before = open_fds(c.pid());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let slowest = flood_round(&runtime, &c.addr, &secret);
    let elapsed = started.elapsed();
    let peak = rss_bytes(c.pid());
    drop(runtime);

    // Nothing changed: the same nodes with the same configuration, no ghost created, the
    // idle node never registered, the good agent on its first connection and working.
    assert_eq!(node_names(&c), ["good", "idle"]);
    assert_eq!(node_xml(&c, "good"), before_good);
    assert_eq!(node_xml(&c, "idle"), before_idle);
    assert!(!c.is_online("idle"));
    let good = c.node_json("good");
    assert_eq!(good["online"], true);
    assert_eq!(good["remoteAddress"], connection, "the same connection");
    assert_eq!(
        agent.output.count("Connected"),
        1,
        "{}",
        agent.output.text()
    );
    assert_eq!(c.log.count("agent connected"), connected_before);
    let exec = c.cli(&["exec-on-node", "good", "--", "echo", "still here"]);
    assert_eq!((exec.code, exec.stdout.as_str()), (0, "still here\n"));
    // Every refusal that reached the handler is logged once, with its reason.
    wait_until(DEADLINE, "every refusal logged", || {
        c.log.count("refused agent connection") - refused_before >= 4 * PER_KIND
    });
    assert_eq!(
        c.log.count("refused agent connection") - refused_before,
        4 * PER_KIND
    );

    let mut after = rss_bytes(c.pid());
    wait_until(DEADLINE, "controller memory back near its baseline", || {
        after = rss_bytes(c.pid());
        after <= baseline + FLOOD_RSS_TOLERANCE
    });
    // Every connection's socket is gone: a connection task that lingered would hold one.
    wait_until(
        DEADLINE,
        "the controller's descriptors back to their baseline",
        || open_fds(c.pid()) <= fds_before,
    );
    eprintln!(
        "{} bad handshakes in {elapsed:?} (slowest slowloris closed after {slowest:?}); \
         controller RSS {} KiB before, {} KiB at the end of the flood, {} KiB after; \
         {fds_before} descriptors before and after",
        7 * PER_KIND,
        baseline / 1024,
        peak / 1024,
        after / 1024
    );
    assert_no_panic(&c);
}

// ---------------------------------------------------------------------------------------
// Issue 4, item 3: Frame-level abuse after the upgrade
// ---------------------------------------------------------------------------------------

/// What one abuse case sends after the upgrade.
struct Abuse {
    name: &'static str,
    bytes: Vec<u8>,
    /// The close code the controller must answer with.
    close: u16,
}

/// The cases both sockets get; `max` is the socket's message limit.
fn frame_abuses(max: usize) -> Vec<Abuse> {
    // Garbage whose first byte sets reserved bits, so it is a protocol error however the
    // rest reads (random bytes could also parse as a frame header announcing a huge
    // length, which is 1009, or a small one still waiting for its payload).
    let mut garbage = noise(7, 4096);
    garbage[0] |= 0x70;
    let mut after_close = client_close(1000);
    after_close.extend(client_frame(true, op::BINARY, b"after close"));
    after_close.extend(client_frame(true, op::TEXT, b"after close"));
    let mut fragments = client_frame(false, op::BINARY, &vec![0u8; max / 2]);
    fragments.extend(client_frame(false, op::CONTINUATION, &vec![0u8; max / 2]));
    fragments.extend(client_frame(true, op::CONTINUATION, &vec![0u8; max / 2]));
    vec![
        Abuse {
            name: "text message",
            bytes: client_frame(true, op::TEXT, b"hello"),
            close: 1003,
        },
        Abuse {
            name: "text message with invalid UTF-8",
            bytes: client_frame(true, op::TEXT, &[0xff, 0xfe, 0xfd]),
            close: 1007,
        },
        Abuse {
            name: "oversized message",
            bytes: client_frame(true, op::BINARY, &vec![0u8; max + 1024]),
            close: 1009,
        },
        Abuse {
            name: "oversized message in fragments",
            bytes: fragments,
            close: 1009,
        },
        Abuse {
            name: "frame header announcing 1 TiB",
            bytes: {
                let mut b = vec![0x80 | op::BINARY, 0x80 | 127];
                b.extend_from_slice(&(1u64 << 40).to_be_bytes());
                b.extend_from_slice(&[1, 2, 3, 4]);
                b
            },
            close: 1009,
        },
        Abuse {
            name: "garbage bytes",
            bytes: garbage,
            close: 1002,
        },
        Abuse {
            name: "unknown data opcode 0x3",
            bytes: client_frame(true, 0x3, b"?"),
            close: 1002,
        },
        Abuse {
            name: "unknown control opcode 0xB",
            bytes: client_frame(true, 0xb, b"?"),
            close: 1002,
        },
        Abuse {
            name: "unmasked frame",
            bytes: vec![0x80 | op::BINARY, 1, 0],
            close: 1002,
        },
        Abuse {
            name: "frames after a close",
            bytes: after_close,
            // The controller answers the close with its code and ignores the rest.
            close: 1000,
        },
    ]
}

/// Opens `/wsagents/` for `node` and completes the HELLO exchange, so the socket is in the
/// multiplexed channel phase.
fn agent_in_channel_phase(c: &Controller, node: &str) -> RawWs {
    let secret = c.secret(node);
    let (status, head, ws) = frames::upgrade(
        &c.addr,
        "/wsagents/",
        &[
            (hs::HEADER_NODE_NAME, node),
            (hs::HEADER_SECRET_KEY, &secret),
            (hs::HEADER_REMOTING_CAPABILITY, hs::REMOTING_CAPABILITY),
            (hs::HEADER_CHANNEL_PROTOCOL, "steward-channel/1"),
        ],
    );
    assert_eq!(status, 101, "{head}");
    let mut ws = ws.unwrap();
    let hello = ws.read_frame(DEADLINE).expect("the controller's HELLO");
    assert!(
        matches!(Frame::decode(&hello.payload), Ok(Some(Frame::Hello(_)))),
        "{hello:?}"
    );
    let ours = Frame::Hello(Hello {
        role: Role::Agent,
        channel_version: 1,
        software_version: "resilience-test".into(),
        node_name: node.into(),
        features: vec![FEATURE_MUX.into()],
        ping_interval_secs: 0,
        idle_timeout_secs: 0,
    });
    ws.write(&client_frame(true, op::BINARY, &ours.encode()))
        .unwrap();
    ws
}

/// Opens `/cli/ws` as the admin, before `START`.
fn cli_socket(c: &Controller) -> RawWs {
    let origin = c.url.trim_end_matches('/').to_owned();
    let auth = c.admin_basic_auth_header();
    let auth = auth.strip_prefix("Authorization: ").unwrap();
    let (status, head, ws) = frames::upgrade(
        &c.addr,
        "/cli/ws",
        &[("Origin", &origin), ("Authorization", auth)],
    );
    assert_eq!(status, 101, "{head}");
    ws.unwrap()
}

/// The close code of `ending`, failing unless the TCP connection was also closed.
fn close_code(what: &str, ending: &frames::Ending) -> u16 {
    assert!(ending.tcp_closed, "{what}: TCP connection left open");
    ending
        .close
        .as_ref()
        .and_then(|f| f.close_code())
        .unwrap_or_else(|| panic!("{what}: no close frame with a code: {ending:?}"))
}

#[test]
fn frame_abuse_gets_the_documented_close_codes_and_spares_other_sessions() {
    let c = Controller::start();
    let agent = c.connected_agent("good", "");
    let connection = c.node_json("good")["remoteAddress"].clone();
    // A CLI command running through the whole test: `cat` on the good agent.
    let auth = format!("admin:{}", c.token);
    let mut cat = command("cli")
        .args(["-s", &c.url, "-auth", &auth])
        .args(["exec-on-node", "good", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cat_in = cat.stdin.take().unwrap();
    let mut cat_out = BufReader::new(cat.stdout.take().unwrap());
    writeln!(cat_in, "before").unwrap();
    let mut line = String::new();
    cat_out.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");

    let agent_cases = frame_abuses(steward_protocol::channel::MAX_MESSAGE_LEN);
    let mut seen = Vec::new();
    for (i, case) in agent_cases.iter().enumerate() {
        let node = format!("abuser-{i}");
        c.create_node(&node, "");
        let mut ws = agent_in_channel_phase(&c, &node);
        let started = Instant::now();
        let _ = ws.write(&case.bytes);
        let ending = ws.read_until_close(DEADLINE);
        let code = close_code(&format!("agent: {}", case.name), &ending);
        assert_eq!(code, case.close, "agent: {}: {ending:?}", case.name);
        seen.push(format!(
            "agent {}: close {code} in {:?}",
            case.name,
            started.elapsed()
        ));
        c.wait_online(&node, false, DEADLINE);
    }
    // A malformed channel frame (kind 0x00) in a well-formed binary message: GOAWAY
    // (ProtocolError), then 1002.
    c.create_node("abuser-channel", "");
    let mut ws = agent_in_channel_phase(&c, "abuser-channel");
    ws.write(&client_frame(true, op::BINARY, &[0, 0, 0, 0, 0, 0]))
        .unwrap();
    let ending = ws.read_until_close(DEADLINE);
    assert_eq!(close_code("agent: bad channel frame", &ending), 1002);
    assert!(
        ending
            .data
            .iter()
            .any(|f| matches!(Frame::decode(&f.payload), Ok(Some(Frame::GoAway(_))))),
        "a GOAWAY before the close: {ending:?}"
    );

    let cli_cases = frame_abuses(MAX_FRAME_PAYLOAD + 1);
    for case in &cli_cases {
        let mut ws = cli_socket(&c);
        let started = Instant::now();
        let _ = ws.write(&case.bytes);
        let ending = ws.read_until_close(DEADLINE);
        let code = close_code(&format!("cli: {}", case.name), &ending);
        assert_eq!(code, case.close, "cli: {}: {ending:?}", case.name);
        if case.close != 1000 {
            // Before START every ending is an EXIT (2), the client's broken socket included.
            let exit = ending.data.last().map(|f| f.payload.clone());
            assert_eq!(
                exit.as_deref(),
                Some(&[plaincli::op::EXIT, 0, 0, 0, 2][..]),
                "cli: {}: {ending:?}",
                case.name
            );
        }
        seen.push(format!(
            "cli {}: close {code} in {:?}",
            case.name,
            started.elapsed()
        ));
    }
    // A fatal PlainCLI opcode (0x80 and up) in a well-formed binary message: 1002.
    let mut ws = cli_socket(&c);
    ws.write(&client_frame(true, op::BINARY, &[0x80])).unwrap();
    let ending = ws.read_until_close(DEADLINE);
    assert_eq!(close_code("cli: fatal opcode", &ending), 1002);

    // The others carried on: the good agent on its first connection, the command still
    // running and answering.
    let good = c.node_json("good");
    assert_eq!(good["online"], true);
    assert_eq!(good["remoteAddress"], connection);
    assert_eq!(
        agent.output.count("Connected"),
        1,
        "{}",
        agent.output.text()
    );
    writeln!(cat_in, "after").unwrap();
    drop(cat_in);
    let mut rest = String::new();
    cat_out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "after\n");
    let status = cat.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_no_panic(&c);
    for line in seen {
        eprintln!("{line}");
    }
}

// ---------------------------------------------------------------------------------------
// Issue 4, item 4: Full-duplex HTTP abuse
// ---------------------------------------------------------------------------------------

/// The duplex pairing timeout (`cli::pairing::PAIRING_TIMEOUT`).
const PAIRING_TIMEOUT: Duration = Duration::from_secs(5);
/// Download sides one user may have waiting at once (`cli::pairing::MAX_PENDING_PER_USER`):
/// all of these are the admin's.
const MAX_PENDING_PER_USER: usize = 64;
/// … from one address (`cli::pairing::MAX_PENDING_PER_ADDRESS`).
const MAX_PENDING_PER_ADDRESS: usize = 16;

/// `POST /cli?remoting=false` with the admin's credentials (see `steward_tests::duplex`).
fn post_side(c: &Controller, session: &str, side: &str) -> std::net::TcpStream {
    let auth = c.admin_basic_auth_header();
    duplex::post_side(&c.addr, session, side, Caller::with(&[&auth]))
}

/// A download side with the admin's credentials, past its first `0x00` byte.
fn download_side(c: &Controller, session: &str) -> Download {
    let auth = c.admin_basic_auth_header();
    Download::open(&c.addr, session, Caller::with(&[&auth]))
}

/// How many of the admin's download sides the controller takes before answering 503 (at
/// most one more than [`MAX_PENDING_PER_USER`] are tried, [`MAX_PENDING_PER_ADDRESS`] from
/// each of as many loopback addresses as that takes); all of them hang up before this
/// returns.
fn pending_capacity(c: &Controller) -> usize {
    // Each call names its sessions afresh: the sides a previous call hung up may still be
    // pending in the controller, and a name still pending is refused as a duplicate.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let auth = c.admin_basic_auth_header();
    let mut open = Vec::new();
    for i in 0..=MAX_PENDING_PER_USER {
        let source = format!("127.0.0.{}", 100 + i / MAX_PENDING_PER_ADDRESS);
        let from = Caller {
            headers: &[&auth],
            source: Some(&source),
        };
        let mut tcp = duplex::post_side(&c.addr, &format!("capacity-{call}-{i}"), "download", from);
        let (status, head, _) = read_head(&mut tcp);
        match status {
            200 => open.push(tcp),
            503 => break,
            other => panic!("a download side got {other}: {head}"),
        }
    }
    open.len()
}

#[test]
fn duplex_http_abuse_gets_clean_errors_and_leaks_nothing() {
    // Without the WebSocket CLI, the harness's own CLI calls use full-duplex HTTP too.
    let c = Controller::start_with(&["--no-websocket-cli"]);
    assert_eq!(c.cli(&["who-am-i"]).code, 0);
    let baseline = rss_bytes(c.pid());

    // A download whose upload goes to another Session: it waits out the pairing timeout,
    // so it runs alongside the other cases.
    let waiting = std::thread::spawn({
        let mut download = download_side(&c, "mismatch-down");
        let started = Instant::now();
        move || {
            let frames = download.frames_to_end();
            (frames, started.elapsed())
        }
    });
    let mut up = post_side(&c, "mismatch-up", "upload");
    let (status, _, body) = read_head(&mut up);
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("No CLI session waits for this upload side"),
        "{body:?}"
    );

    // An upload without any download side.
    let started = Instant::now();
    let mut lonely = post_side(&c, "lonely", "upload");
    assert_eq!(read_head(&mut lonely).0, 403);
    eprintln!("upload without download: 403 in {:?}", started.elapsed());

    // Corrupt uploads: each download side gets its EXIT 2 at once, the upload its answer.
    let cases: [(&str, Vec<u8>); 4] = [
        ("negative length", vec![0x80, 0, 0, 0, plaincli::op::ARG]),
        (
            "length 2^31-1",
            vec![0x7f, 0xff, 0xff, 0xff, plaincli::op::STDIN],
        ),
        ("length 1 MiB + 1", {
            let mut b = ((MAX_FRAME_PAYLOAD + 1) as u32).to_be_bytes().to_vec();
            b.push(plaincli::op::STDIN);
            b
        }),
        ("truncated frame", {
            let mut b = 100u32.to_be_bytes().to_vec();
            b.push(plaincli::op::STDIN);
            b.extend_from_slice(&[0u8; 10]);
            b
        }),
    ];
    for (name, bytes) in &cases {
        let started = Instant::now();
        let session = format!("corrupt-{}", name.replace(' ', "-"));
        let mut download = download_side(&c, &session);
        let mut up = post_side(&c, &session, "upload");
        chunk(&mut up, bytes);
        if *name == "truncated frame" {
            // The body ends inside the frame.
            up.write_all(b"0\r\n\r\n").unwrap();
        }
        let frames = download.frames_to_end();
        let stderr = assert_exit(name, &frames, 2);
        assert!(
            stderr.contains("Connection closed before arguments received"),
            "{stderr}"
        );
        let (status, _, _) = read_head(&mut up);
        assert_eq!(status, 200, "{name}: the upload request is answered");
        eprintln!("{name}: EXIT 2 in {:?}", started.elapsed());
        // The session is gone: its id can be used again.
        drop(download_side(&c, &session));
    }

    // A download whose client hangs up at once is forgotten at once: the id is free again.
    drop(download_side(&c, "hangup"));
    wait_until(DEADLINE, "a hung-up session forgotten", || {
        let mut tcp = post_side(&c, "hangup", "download");
        read_head(&mut tcp).0 == 200
    });

    let (frames, waited) = waiting.join().unwrap();
    let stderr = assert_exit("pairing timeout", &frames, 2);
    assert!(stderr.contains("no upload side arrived"), "{stderr}");
    assert!(
        waited >= PAIRING_TIMEOUT - Duration::from_millis(500)
            && waited <= PAIRING_TIMEOUT + TIMEOUT_SLACK,
        "the download side ended after {waited:?}"
    );
    eprintln!("download without upload: EXIT 2 after {waited:?}");
    drop(download_side(&c, "mismatch-down"));

    // Nothing pending is left: exactly MAX_PENDING_PER_USER of the admin's download sides
    // fit again (the sides above that hung up are forgotten as their tasks notice), and
    // again once those have hung up in turn.
    for round in ["after the abuse", "after a full house hung up"] {
        wait_until(DEADLINE, &format!("no CLI session pending {round}"), || {
            pending_capacity(&c) == MAX_PENDING_PER_USER
        });
    }

    let who = c.cli(&["who-am-i"]);
    assert_eq!(who.code, 0, "{who:?}");
    let mut after = rss_bytes(c.pid());
    wait_until(DEADLINE, "controller memory back near its baseline", || {
        after = rss_bytes(c.pid());
        after <= baseline + FLOOD_RSS_TOLERANCE
    });
    eprintln!(
        "duplex abuse: controller RSS {} KiB before, {} KiB after",
        baseline / 1024,
        after / 1024
    );
    assert_no_panic(&c);
}

// ---------------------------------------------------------------------------------------
// Issue 4, item 5: Slow consumer
// ---------------------------------------------------------------------------------------

/// How long the stopped CLI is watched once the producer is blocked.
const STOPPED_FOR: Duration = Duration::from_secs(3);
/// The controller's RSS may grow this much over its baseline while the client is stopped.
const SLOW_CONSUMER_BOUND: u64 = 64 * MIB;

fn process_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Bytes a process has written (`wchar` in /proc/PID/io).
fn bytes_written(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_stopped_cli_keeps_controller_memory_bounded_and_killing_it_ends_the_command() {
    let c = Controller::start();
    let _agent = c.connected_agent("producer", "");
    let baseline = rss_bytes(c.pid());
    let auth = format!("admin:{}", c.token);
    let mut cli = command("cli")
        .args([
            "-s",
            &c.url,
            "-auth",
            &auth,
            "exec-on-node",
            "producer",
            "--",
        ])
        .args(["sh", "-c", "echo $$ >&2; exec head -c 1000000000 /dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(cli.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let producer: u32 = line.trim().parse().expect("the producer's pid");
    let received = Arc::new(AtomicU64::new(0));
    let drain = std::thread::spawn({
        let received = received.clone();
        let mut stdout = cli.stdout.take().unwrap();
        move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    wait_until(DEADLINE, "output flowing", || {
        received.load(Ordering::Relaxed) > 16 * MIB
    });
    let status = std::process::Command::new("kill")
        .args(["-STOP", &cli.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // From here on the controller's RSS stays under the bound, checked every few ms.
    let stopped = Instant::now();
    let mut peak = 0;
    let mut check = || {
        let rss = rss_bytes(c.pid());
        peak = peak.max(rss);
        assert!(
            rss <= baseline + SLOW_CONSUMER_BOUND,
            "controller RSS {} KiB over its baseline {} KiB after {:?} of a stopped client",
            rss / 1024,
            baseline / 1024,
            stopped.elapsed()
        );
        assert!(process_alive(producer), "the producer still runs, blocked");
    };
    // The buffers between the stopped client and the producer fill, then the producer
    // blocks: what it has written stops changing (for a second: 40 polls of 25 ms).
    let mut written = Vec::new();
    wait_until(DEADLINE, "the producer blocked by backpressure", || {
        check();
        written.push(bytes_written(producer).expect("/proc/PID/io of the producer"));
        let last = *written.last().unwrap();
        written.len() >= 40 && written[written.len() - 40..].iter().all(|w| *w == last)
    });
    let blocked_after = stopped.elapsed();
    let produced = *written.last().unwrap();
    let held = Instant::now();
    while held.elapsed() < STOPPED_FOR {
        check();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        bytes_written(producer),
        Some(produced),
        "the producer stays blocked while the client is stopped"
    );

    let killed = Instant::now();
    cli.kill().unwrap();
    let _ = cli.wait();
    wait_until(DEADLINE, "the producer killed on the agent", || {
        !process_alive(producer)
    });
    let ended_in = killed.elapsed();
    let _ = drain.join();
    let mut after = rss_bytes(c.pid());
    wait_until(DEADLINE, "controller memory back near its baseline", || {
        after = rss_bytes(c.pid());
        after <= baseline + SLOW_CONSUMER_BOUND
    });
    eprintln!(
        "stopped client: producer blocked {blocked_after:?} after the stop, having written {} MiB; \
         controller RSS {} KiB before, peak {} KiB while stopped, {} KiB after; the producer \
         died {ended_in:?} after the client was killed",
        produced / MIB,
        baseline / 1024,
        peak / 1024,
        after / 1024
    );
    assert_eq!(c.cli(&["who-am-i"]).code, 0);
    assert_no_panic(&c);
}

// ---------------------------------------------------------------------------------------
// Issue 4, item 6: Durability
// ---------------------------------------------------------------------------------------

/// `create-node`, `create-job` and `build` commands started at once (a third each). The
/// controller is killed as soon as one of each kind is acknowledged, while most are still
/// in flight.
const BURST: usize = 96;
/// The job the burst's `build` commands queue, on the agent connected before the burst.
const BURST_JOB: &str = "burst-build";

fn inbound_node_xml(name: &str, executors: u32, labels: &str) -> String {
    format!(
        "<slave><name>{name}</name><remoteFS></remoteFS><numExecutors>{executors}</numExecutors>\
         <mode>NORMAL</mode><launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true\
         </webSocket></launcher><label>{labels}</label></slave>"
    )
}

fn job_xml(name: &str) -> String {
    format!(
        "<project><description>{name}</description><builders><hudson.tasks.Shell>\
         <command>echo {name}</command></hudson.tasks.Shell></builders></project>"
    )
}

/// A concurrent job on label `burst` that prints its parameter `N`.
const BUILD_JOB_XML: &str = "<project><assignedNode>burst</assignedNode>\
    <concurrentBuild>true</concurrentBuild><properties><hudson.model.ParametersDefinitionProperty>\
    <parameterDefinitions><hudson.model.StringParameterDefinition><name>N</name><defaultValue>\
    </defaultValue></hudson.model.StringParameterDefinition></parameterDefinitions>\
    </hudson.model.ParametersDefinitionProperty></properties><builders><hudson.tasks.Shell>\
    <command>echo \"built $N\"</command></hudson.tasks.Shell></builders></project>";

/// The job names `list-jobs` shows.
fn job_names(c: &Controller) -> Vec<String> {
    let out = c.cli(&["list-jobs"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.lines().map(str::to_owned).collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Create {
    Node,
    Job,
    Build,
}

#[test]
fn acknowledged_creates_survive_kill_9_and_the_database_stays_sound() {
    let mut c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().to_str().unwrap().to_owned();
    let out = c.cli_with_stdin(
        &["create-node"],
        &inbound_node_xml("burst-agent", 4, "burst"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let _agent = c.agent("burst-agent", &["-workDir", &work_dir]);
    c.wait_online("burst-agent", true, DEADLINE);
    let out = c.cli_with_stdin(&["create-job", BURST_JOB], BUILD_JOB_XML);
    assert_eq!(out.code, 0, "{out:?}");

    let url = c.url.clone();
    let auth = format!("admin:{}", c.token);
    // (kind, name or parameter) of every command the controller acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<(Create, String)>::new()));
    let threads: Vec<_> = (0..BURST)
        .map(|i| {
            let (url, auth, acknowledged) = (url.clone(), auth.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let base = ["-s", url.as_str(), "-auth", auth.as_str()];
                let (kind, name, out) = match i % 3 {
                    0 => {
                        let name = format!("burst-{i}");
                        let xml = inbound_node_xml(&name, 1, "");
                        let out = run_cli(&[&base[..], &["create-node"]].concat(), &xml);
                        (Create::Node, name, out)
                    }
                    1 => {
                        let name = format!("burst-{i}");
                        let args = [&base[..], &["create-job", &name]].concat();
                        let out = run_cli(&args, &job_xml(&name));
                        (Create::Job, name, out)
                    }
                    _ => {
                        let n = format!("N={i}");
                        let args = [&base[..], &["build", BURST_JOB, "-p", &n]].concat();
                        (Create::Build, i.to_string(), run_cli(&args, ""))
                    }
                };
                if out.code == 0 {
                    acknowledged.lock().unwrap().push((kind, name));
                }
                out
            })
        })
        .collect();
    wait_until(DEADLINE, "a node, a job and a build acknowledged", || {
        let acknowledged = acknowledged.lock().unwrap();
        [Create::Node, Create::Job, Create::Build]
            .iter()
            .all(|kind| acknowledged.iter().any(|(k, _)| k == kind))
    });
    c.kill();
    // The unacknowledged ones failed with an exit code and a reason, none hung.
    let mut failures = std::collections::BTreeMap::<i32, (usize, String)>::new();
    for thread in threads {
        let out = thread.join().unwrap();
        if out.code != 0 {
            assert!(!out.stderr.trim().is_empty(), "a failed command says why");
            let entry = failures.entry(out.code).or_default();
            entry.0 += 1;
            entry.1 = out
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned();
        }
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < BURST,
        "the kill came after the whole burst: nothing was tested"
    );
    c.kill_and_restart();

    for (kind, name) in &acknowledged {
        match kind {
            Create::Job => {
                let out = c.cli(&["get-job", name]);
                assert_eq!(out.code, 0, "get-job {name}: {out:?}");
                assert!(
                    out.stdout
                        .contains(&format!("<command>echo {name}</command>")),
                    "{out:?}"
                );
            }
            Create::Node => {
                let xml = node_xml(&c, name);
                assert!(xml.contains(&format!("<name>{name}</name>")), "{xml}");
            }
            Create::Build => {}
        }
    }
    // Whatever else is there is whole: only names of the burst, each readable.
    let names = node_names(&c);
    for name in &names {
        assert!(name.starts_with("burst-"), "{names:?}");
        node_xml(&c, name);
    }
    let jobs = job_names(&c);
    for name in &jobs {
        assert!(name.starts_with("burst-"), "{jobs:?}");
        assert_eq!(c.cli(&["get-job", name]).code, 0, "job {name} is readable");
    }

    // Every acknowledged build was queued durably: it runs once, after the restart if not
    // before, and ends SUCCESS with its own number; builds the controller took but could not
    // acknowledge run too, whole.
    let mut builds = Vec::new();
    wait_until(DEADLINE, "the queue drained and every build ended", || {
        let queue = c.cli(&["queue"]);
        let list = c.cli(&["list-builds", BURST_JOB, "-n", "1000"]);
        builds = list.stdout.lines().map(str::to_owned).collect();
        queue.stdout.is_empty() && !list.stdout.contains("RUNNING")
    });
    let mut numbers = std::collections::BTreeSet::new();
    let mut built = std::collections::BTreeSet::new();
    for line in &builds {
        let fields: Vec<&str> = line.split('\t').collect();
        let number = fields[0].trim_start_matches('#');
        if fields[1] != "SUCCESS" {
            let console = c.cli(&["console", BURST_JOB, number]).stdout;
            panic!("{line}\n{console}\ncontroller log:\n{}", c.log.text());
        }
        assert!(
            numbers.insert(number.to_owned()),
            "number reused: {builds:?}"
        );
        let n = fields[6].strip_prefix("N=").expect("the parameter");
        assert!(built.insert(n.to_owned()), "N={n} built twice: {builds:?}");
        let console = c.cli(&["console", BURST_JOB, number]);
        assert!(
            console.stdout.contains(&format!("\nbuilt {n}\n")),
            "{console:?}"
        );
        assert!(
            console.stdout.ends_with("Finished: SUCCESS\n"),
            "{console:?}"
        );
        // One continuous log: what a restart rewrote is not there twice.
        for once in [
            "Started from command line by admin\n",
            "Finished: ",
            "[burst-build] $ ",
        ] {
            assert_eq!(
                console.stdout.matches(once).count(),
                1,
                "{once}: {console:?}"
            );
        }
    }
    for (kind, n) in &acknowledged {
        if *kind == Create::Build {
            assert!(
                built.contains(n),
                "acknowledged build N={n} is lost: {builds:?}"
            );
        }
    }

    let db = rusqlite::Connection::open_with_flags(
        c.home().join("steward.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let acked = |kind| acknowledged.iter().filter(|(k, _)| *k == kind).count();
    eprintln!(
        "kill -9 during {BURST} create-nodes, create-jobs and builds: {} nodes, {} jobs and {} \
         builds acknowledged, all present; {} nodes, {} jobs and {} builds (all SUCCESS, \
         numbers unique) after the restart; integrity_check ok; failures by exit code: \
         {failures:?}",
        acked(Create::Node),
        acked(Create::Job),
        acked(Create::Build),
        names.len(),
        jobs.len(),
        builds.len()
    );
}
