//! File descriptors and connection caps: idle sockets must not starve a controller.
//!
//! In the field, under systemd's soft limit of 1024 open files, 1,000 idle sockets took every
//! descriptor: new clients waited unanswered until they gave up, and the log said
//! `accept error: Too many open files` and nothing more. Each controller here runs under a
//! limit of a few hundred (set with `prlimit`, as a service manager would), so the tests
//! hold a few hundred sockets at most:
//!
//! - with the default caps, the connections past the cap are answered `503` at once, and
//!   the start-up log states the open-file limit it raised;
//! - with a cap above what the limit allows, accepting fails for want of descriptors: the
//!   waiting clients are still refused at once, the error is logged at most once a second
//!   with a count, and the controller serves again once the idle sockets are gone;
//! - one address past its own cap is refused while another address is served.
//!
//! docs/reliability.md, "File descriptors and connection caps", collects what they show.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use steward_tests::{Controller, DEADLINE, frames, wait_until};

/// The hard open-file limit the controllers run under.
const LIMIT: u64 = 256;
/// How soon a refused client must hear it: far below the 20 s clients waited in the field,
/// far above the scheduling delays of a loaded machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);
/// Idle sockets stay open for the whole test, well past its deadlines.
const HEADER_TIMEOUT: &str = "300";

/// What a client got for `GET /login`.
#[derive(Debug)]
enum Answer {
    Response {
        status: u16,
        text: String,
    },
    /// The connection was closed (or reset) with nothing to read.
    Closed,
    /// Nothing within [`REFUSED_WITHIN`]: the client is left hanging.
    Hanging,
}

impl Answer {
    fn status(&self) -> Option<u16> {
        match self {
            Answer::Response { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends `GET /login` on `tcp` and reads the answer to its end.
fn get_login(mut tcp: TcpStream) -> Answer {
    tcp.set_read_timeout(Some(REFUSED_WITHIN)).unwrap();
    // The write may fail on a connection already refused; reading says what happened.
    let _ = tcp.write_all(b"GET /login HTTP/1.1\r\nHost: steward\r\nConnection: close\r\n\r\n");
    let mut all = Vec::new();
    let ended = match tcp.read_to_end(&mut all) {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    if !ended {
        return Answer::Hanging;
    }
    if all.is_empty() {
        return Answer::Closed;
    }
    let text = String::from_utf8_lossy(&all).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer::Response { status, text }
}

fn probe(addr: &str) -> Answer {
    get_login(TcpStream::connect(addr).expect("connect"))
}

/// `GET /login` from another loopback address than 127.0.0.1.
fn probe_from(source: &str, addr: &str) -> Answer {
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    let target: SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&source.into())
        .expect("bind the source address");
    socket.connect(&target.into()).expect("connect");
    get_login(socket.into())
}

/// Opens `n` connections that send nothing.
fn idle_sockets(addr: &str, n: u64) -> Vec<TcpStream> {
    (0..n)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle socket {i}: {e}")))
        .collect()
}

/// Whether the controller has answered or closed an idle socket (as opposed to holding it
/// or not having taken it yet).
fn refused(tcp: &TcpStream) -> bool {
    tcp.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let result = tcp.peek(&mut byte);
    tcp.set_nonblocking(false).unwrap();
    match result {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

/// Every `key=N` on the log lines that contain `needle`.
fn fields(log: &str, needle: &str, key: &str) -> Vec<u64> {
    let key = format!(" {key}=");
    log.lines()
        .filter(|line| line.contains(needle))
        .filter_map(|line| {
            let rest = &line[line.find(&key)? + key.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn assert_refused_for(answer: &Answer, needle: &str) {
    let Answer::Response { status: 503, text } = answer else {
        panic!("expected a 503 at once, got {answer:?}");
    };
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nConnection: close"), "{text}");
    assert!(head.contains("\r\nRetry-After: "), "{text}");
    assert_eq!(body.lines().count(), 1, "a one-line body: {body:?}");
    assert!(body.contains(needle), "the body names {needle:?}: {body:?}");
}

#[test]
fn idle_sockets_up_to_the_cap_leave_new_clients_refused_at_once_not_hanging() {
    // A service manager's low soft limit under a higher hard one.
    let c =
        Controller::start_with_nofile(LIMIT / 2, LIMIT, &["--http-header-timeout", HEADER_TIMEOUT]);
    c.log.wait_for("connection caps", DEADLINE);
    let log = c.log.text();
    assert!(
        log.contains(&format!(
            "raised the soft limit to the hard limit soft={LIMIT} hard={LIMIT} previous_soft={}",
            LIMIT / 2
        )),
        "the start-up log states the limits:\n{log}"
    );
    let caps = fields(&log, "connection caps", "max_connections");
    let cap = caps[0];
    assert!(
        cap > 0 && cap < LIMIT,
        "the default cap keeps descriptors for files: {cap} of {LIMIT}"
    );

    // The accept queue is first in, first out: the probe comes after every idle socket.
    let idle = idle_sockets(&c.addr, cap);
    let asked = Instant::now();
    let answer = probe(&c.addr);
    println!(
        "{cap} idle sockets (cap {cap}, limit {LIMIT}): the next client got {:?} after {:?}",
        answer.status(),
        asked.elapsed()
    );
    assert_refused_for(&answer, &format!("limit of {cap} (--max-connections)"));
    c.log
        .wait_for("refused connections: too many connections", DEADLINE);

    drop(idle);
    wait_until(DEADLINE, "GET /login answered 200 again", || {
        probe(&c.addr).status() == Some(200)
    });
    let out = c.cli(&["who-am-i"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!c.log.contains("panicked"), "{}", c.log.text());
}

#[test]
fn past_the_descriptor_limit_clients_are_refused_at_once_and_accept_errors_logged_once_a_second() {
    // A cap above what the limit allows, so accepting runs out of descriptors first (as
    // every accept did in the field, with no cap at all).
    let c = Controller::start_with_nofile(
        LIMIT,
        LIMIT,
        &[
            "--max-connections",
            "1000",
            "--http-header-timeout",
            HEADER_TIMEOUT,
        ],
    );
    c.log.wait_for("connection caps", DEADLINE);
    assert!(
        c.log.contains(&format!(
            "open-file limit (RLIMIT_NOFILE) soft={LIMIT} hard={LIMIT}"
        )),
        "the start-up log states the limits:\n{}",
        c.log.text()
    );
    assert!(
        c.log
            .contains("open files allowed for the controller's own files"),
        "a cap the limit cannot hold is warned about:\n{}",
        c.log.text()
    );

    let started = Instant::now();
    let excess = 64;
    let idle = idle_sockets(&c.addr, LIMIT + excess);
    let asked = Instant::now();
    let answer = probe(&c.addr);
    let waited = asked.elapsed();
    println!(
        "{} idle sockets (limit {LIMIT}): the next client got {answer:?} after {waited:?}",
        LIMIT + excess
    );
    match &answer {
        Answer::Response { .. } => assert_refused_for(&answer, "too many open files"),
        Answer::Closed => {}
        Answer::Hanging => panic!("the client was left hanging for {REFUSED_WITHIN:?}"),
    }
    // Every idle socket the controller had no descriptor for was refused too, not left in
    // the accept queue.
    wait_until(DEADLINE, "the idle sockets past the limit refused", || {
        idle.iter().filter(|tcp| refused(tcp)).count() as u64 >= excess
    });
    let refused_sockets = idle.iter().filter(|tcp| refused(tcp)).count() as u64;
    // While the table stays full, every new client is refused at once too, and the errors
    // go on being logged once a second.
    let mut probes = 0;
    wait_until(DEADLINE, "three accept error lines", || {
        let answer = probe(&c.addr);
        assert!(
            matches!(
                answer,
                Answer::Response { status: 503, .. } | Answer::Closed
            ),
            "a client while the table is full got {answer:?}"
        );
        probes += 1;
        c.log.count("accept error: Too many open files") >= 3
    });

    drop(idle);
    wait_until(DEADLINE, "GET /login answered 200 again", || {
        probe(&c.addr).status() == Some(200)
    });
    c.log
        .wait_for("accepting connections again after accept errors", DEADLINE);
    let elapsed = started.elapsed();
    let out = c.cli(&["who-am-i"]);
    assert_eq!(out.code, 0, "{out:?}");

    let log = c.log.text();
    let lines = fields(&log, "accept error: Too many open files", "errors");
    let recovery = fields(&log, "accepting connections again", "errors");
    let errors: u64 = lines.iter().chain(&recovery).sum();
    let refusals: u64 = fields(&log, "accept error: Too many open files", "refused")
        .iter()
        .chain(&fields(&log, "accepting connections again", "refused"))
        .sum();
    println!(
        "{} accept error lines in {elapsed:?}, counting {errors} errors and {refusals} refused connections ({refused_sockets} idle sockets refused, the first probe and {probes} more)",
        lines.len()
    );
    assert!(!lines.is_empty(), "the accept error is logged:\n{log}");
    assert!(
        lines.len() as u64 <= elapsed.as_secs() + 1,
        "at most one accept error line a second: {} in {elapsed:?}:\n{log}",
        lines.len()
    );
    assert!(
        errors > lines.len() as u64,
        "the lines count the errors they stand for:\n{log}"
    );
    assert!(
        refusals > refused_sockets + probes,
        "the lines count the connections refused (the idle sockets, the first probe and {probes} more): {refusals}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn one_address_past_its_cap_is_refused_and_another_is_served() {
    let per_address: u64 = 8;
    let c = Controller::start_with(&[
        "--max-connections-per-address",
        &per_address.to_string(),
        "--http-header-timeout",
        HEADER_TIMEOUT,
    ]);
    c.log.wait_for("connection caps", DEADLINE);
    assert!(
        c.log.contains(&format!(
            "max_connections_per_address={per_address} loopback_exempt=false"
        )),
        "given, the cap applies to loopback too:\n{}",
        c.log.text()
    );

    // Upgraded connections keep their place: two WebSockets and the rest idle sockets.
    let auth = c.admin_basic_auth_header();
    let (name, value) = auth.split_once(": ").unwrap();
    let mut sockets: Vec<_> = (0..2)
        .map(|_| {
            let (status, head, ws) = frames::upgrade(&c.addr, "/wsecho", &[(name, value)]);
            assert_eq!(status, 101, "{head}");
            ws.unwrap()
        })
        .collect();
    let idle = idle_sockets(&c.addr, per_address - 2);

    let answer = probe(&c.addr);
    assert_refused_for(
        &answer,
        &format!("from 127.0.0.1: the limit is {per_address} per address"),
    );
    let other = probe_from("127.0.0.2", &c.addr);
    assert_eq!(
        other.status(),
        Some(200),
        "another address is served: {other:?}"
    );

    // A WebSocket that ends gives its place back.
    sockets.pop();
    wait_until(DEADLINE, "127.0.0.1 served again", || {
        probe(&c.addr).status() == Some(200)
    });
    drop(idle);
    assert!(!c.log.contains("panicked"), "{}", c.log.text());
}
