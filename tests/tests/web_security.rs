//! Requests a browser could be made to send, and bodies a stranger could trickle: a
//! state-changing request from another origin is refused with 403 and changes nothing,
//! programs (no `Origin`) are unaffected, a 401 does not invite a browser to store Basic
//! credentials, and a crumb is issued to whoever asks; a request body is read only once its
//! sender is known, within a deadline and a shared memory budget.

use std::io::{Read, Write};
use std::net::TcpStream;

use steward_tests::{Controller, DEADLINE, Freestyle, Gate, http_request, wait_until};

/// `METHOD path` with `headers` (full lines) and `body`, over HTTP/1.0; the answer.
fn request(
    c: &Controller,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut all = vec![c.admin_basic_auth_header()];
    all.extend(headers.iter().map(|h| h.to_string()));
    let lines: Vec<&str> = all.iter().map(String::as_str).collect();
    let answer = http_request(&c.addr, method, path, &lines, body.as_bytes());
    (answer.status, answer.text())
}

fn job_exists(c: &Controller, name: &str) -> bool {
    c.cli(&["get-job", name]).code == 0
}

#[test]
fn requests_from_another_origin_are_refused_and_programs_are_not() {
    let c = Controller::start();
    c.create_job("j1", &Freestyle::shell("true"));
    let copy = "/createItem?name=copied&mode=copy&from=j1";

    for origin in [
        "Origin: http://evil.example",
        "Origin: null",
        "Referer: http://evil.example/form.html",
    ] {
        let (status, text) = request(&c, "POST", copy, &[origin], "");
        assert_eq!(status, 403, "{origin}: {text}");
        assert!(text.starts_with("Cross-origin request refused"), "{text}");
        assert!(!job_exists(&c, "copied"), "{origin}");
    }
    // The build form posted as text/plain (no preflight): no build.
    let (status, _) = request(
        &c,
        "POST",
        "/job/j1/build",
        &["Origin: null", "Content-Type: text/plain"],
        "x",
    );
    assert_eq!(status, 403);
    assert!(c.list_builds("j1").is_empty());
    // Quieting down from another site: refused, and the controller is not quieting down.
    let (status, _) = request(&c, "POST", "/quietDown", &["Origin: null"], "");
    assert_eq!(status, 403);
    let (_, about) = request(&c, "GET", "/api/json", &[], "");
    assert!(about.contains("\"quietingDown\":false"), "{about}");

    // What the refused request claimed is logged quoted: it cannot pass for log fields.
    let forged = "Origin: http://x route=/cli/ws expected=https://ci";
    let (status, _) = request(&c, "POST", copy, &[forged], "");
    assert_eq!(status, 403);
    wait_until(DEADLINE, "the refusal is logged", || {
        c.log
            .contains("origin=\"http://x route=/cli/ws expected=https://ci\"")
    });
    let (status, _, _) = steward_tests::frames::upgrade(
        &c.addr,
        "/wsecho",
        &[
            ("Origin", "http://y route=/cli/ws"),
            (
                "Authorization",
                c.admin_basic_auth_header()
                    .trim_start_matches("Authorization: "),
            ),
        ],
    );
    assert_eq!(status, 403);
    wait_until(DEADLINE, "the WebSocket refusal is logged", || {
        c.log.contains("origin=\"http://y route=/cli/ws\"")
    });

    // The controller's own origin, and a program that sends none, are served.
    let own = format!("Origin: {}", c.url.trim_end_matches('/'));
    let (status, _) = request(&c, "POST", copy, &[&own], "");
    assert_eq!(status, 302);
    assert!(job_exists(&c, "copied"));
    let (status, _) = request(
        &c,
        "POST",
        "/createItem?name=again&mode=copy&from=j1",
        &[],
        "",
    );
    assert_eq!(status, 302);
    assert!(job_exists(&c, "again"));
}

#[test]
fn stopping_a_build_from_another_origin_is_refused() {
    let c = Controller::start();
    let gate = Gate::new();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "", 1, "NORMAL");
    let _agent = c.start_agent_in("n1", work.path());
    let script = format!("{}{}", gate.mark_script("running"), gate.wait_script("go"));
    c.create_job("held", &Freestyle::shell(&script));
    assert_eq!(c.cli(&["build", "held"]).code, 0);
    wait_until(DEADLINE, "the build runs", || gate.is_marked("running"));

    let (status, _) = request(&c, "POST", "/job/held/1/stop", &["Origin: null"], "");
    assert_eq!(status, 403);
    assert_eq!(c.list_builds("held")[0].result, "RUNNING");
    let (status, _) = request(&c, "POST", "/job/held/1/stop", &[], "");
    assert_eq!(status, 302);
    wait_until(DEADLINE, "the build is aborted", || {
        c.list_builds("held")[0].result == "ABORTED"
    });
}

#[test]
fn a_401_does_not_invite_a_browser_to_keep_basic_credentials_and_crumbs_are_issued() {
    let c = Controller::start();
    let wrong = http_request(
        &c.addr,
        "GET",
        "/api/json",
        &["Authorization: Basic YWRtaW46d3Jvbmc="],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let challenge = wrong
        .header("WWW-Authenticate")
        .unwrap_or_default()
        .to_owned();
    assert!(
        !challenge.to_ascii_lowercase().starts_with("basic"),
        "{challenge}"
    );

    let (status, text) = request(&c, "GET", "/crumbIssuer/api/json", &[], "");
    assert_eq!(status, 200, "{text}");
    let crumb: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(crumb["crumbRequestField"], "Jenkins-Crumb");
    assert_eq!(crumb["crumb"].as_str().map(str::len), Some(64));
    // A crumb sent back changes nothing.
    let field = format!("Jenkins-Crumb: {}", crumb["crumb"].as_str().unwrap());
    let (status, _) = request(&c, "POST", "/quietDown", &[&field], "");
    assert_eq!(status, 302);
    // Anonymous callers get none.
    assert_eq!(
        http_request(&c.addr, "GET", "/crumbIssuer/api/json", &[], b"").status,
        403
    );
}

/// Sends a request head announcing a body of `length` bytes, and no body; the status of
/// the answer that comes (a socket read timeout of [`DEADLINE`] fails the test).
fn head_only(c: &Controller, path: &str, auth: Option<&str>, length: usize) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(&c.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/xml\r\nContent-Length: {length}\r\n",
        c.addr
    );
    if let Some(auth) = auth {
        head.push_str(auth);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = stream
            .read(&mut byte)
            .unwrap_or_else(|e| panic!("no answer to {path} without its body: {e}"));
        assert!(n > 0, "connection closed before an answer to {path}");
        got.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, stream)
}

#[test]
fn a_body_is_read_only_once_its_sender_is_known() {
    let c = Controller::start();
    c.create_job("j1", &Freestyle::shell("true"));
    c.create_node("n1", "");
    let body_routes = [
        "/job/j1/config.xml",
        "/createItem?name=x",
        "/job/j1/build",
        "/computer/doCreateItem",
        "/computer/n1/config.xml",
    ];
    let wrong = "Authorization: Basic YWRtaW46d3Jvbmc=";
    for path in body_routes {
        // Anonymous and wrong credentials are answered on the headers, body or not.
        assert_eq!(head_only(&c, path, None, 2_097_152).0, 403, "{path}");
        assert_eq!(head_only(&c, path, Some(wrong), 2_097_152).0, 401, "{path}");
    }
    // A body over the limit is refused before it is read.
    let admin = c.admin_basic_auth_header();
    assert_eq!(
        head_only(&c, "/job/j1/config.xml", Some(&admin), 2_097_153).0,
        413
    );
    // Nothing changed.
    assert!(!job_exists(&c, "x"));
}

#[test]
fn a_body_must_arrive_in_time_and_one_caller_holds_few_at_once() {
    let c = Controller::start_with(&["--http-body-timeout", "8"]);
    c.create_job("j1", &Freestyle::shell("true"));
    let admin = c.admin_basic_auth_header();
    // Four bodies of one caller are read; the rest of that caller's are refused at once.
    let mut holding = Vec::new();
    let mut refused = 0;
    std::thread::scope(|s| {
        let started: Vec<_> = (0..20)
            .map(|_| {
                let admin = admin.clone();
                let addr = c.addr.clone();
                s.spawn(move || {
                    let mut stream = TcpStream::connect(&addr).unwrap();
                    stream.set_read_timeout(Some(DEADLINE)).unwrap();
                    let head = format!(
                        "POST /job/j1/config.xml HTTP/1.1\r\nHost: {addr}\r\n{admin}\r\n\
                         Content-Length: 2097152\r\n\r\n"
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream
                })
            })
            .collect();
        for handle in started {
            holding.push(handle.join().unwrap());
        }
    });
    // Those refused answered at once; the others answer 408 at their deadline.
    let mut timed_out = 0;
    for mut stream in holding {
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        match answer.split_whitespace().nth(1) {
            Some("503") => refused += 1,
            Some("408") => timed_out += 1,
            other => panic!("unexpected answer {other:?}: {answer}"),
        }
    }
    assert_eq!((timed_out, refused), (4, 16));
    // The budget is whole again: a normal update goes through.
    let xml = Freestyle::shell("echo updated").xml();
    let answer = http_request(
        &c.addr,
        "POST",
        "/job/j1/config.xml",
        &[&admin],
        xml.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}
