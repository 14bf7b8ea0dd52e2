//! `/wsecho` (compat §8) with the real websocat client.

use std::process::Stdio;

use steward_tests::{Controller, frames, http_request};

fn websocat_run(args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = steward_tests::websocat()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("websocat");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn text_comes_back_with_hello() {
    let c = Controller::start();
    let out = websocat_run(
        &[
            &format!("-H={}", c.admin_basic_auth_header()),
            &c.ws_url("wsecho"),
        ],
        b"world\nsteward\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello world\nhello steward\n",
        "{out:?}"
    );
}

#[test]
fn binary_comes_back_upper_cased() {
    let c = Controller::start();
    let out = websocat_run(
        &[
            "--binary",
            &format!("-H={}", c.admin_basic_auth_header()),
            &c.ws_url("wsecho"),
        ],
        b"abc-xyz 123",
    );
    assert_eq!(out.stdout, b"ABC-XYZ 123", "{out:?}");
}

#[test]
fn anonymous_gets_403() {
    let c = Controller::start();
    let out = websocat_run(&[&c.ws_url("wsecho")], b"x\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_cross_origin_websocket_is_refused_before_the_upgrade() {
    let c = Controller::start();
    let auth = c.admin_basic_auth_header();
    let (name, value) = auth.split_once(": ").unwrap();
    // A page on another site, or a sandboxed one (`null`), opening the echo with the
    // admin's credentials the browser holds.
    for origin in ["http://evil.example", "null"] {
        let (status, head, socket) =
            frames::upgrade(&c.addr, "/wsecho", &[(name, value), ("Origin", origin)]);
        assert_eq!(status, 403, "Origin: {origin}: {head}");
        assert!(socket.is_none());
    }
    let out = websocat_run(
        &[
            &format!("-H={auth}"),
            "--origin",
            "http://evil.example",
            &c.ws_url("wsecho"),
        ],
        b"x\n",
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        c.log.contains("refused a cross-origin WebSocket"),
        "the refusal is logged"
    );
    // The reason, in one line (read with a plain request: the refusal comes before any
    // upgrade).
    let refused = http_request(
        &c.addr,
        "GET",
        "/wsecho",
        &[&auth, "Origin: http://evil.example"],
        b"",
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.text().trim_end().lines().count(),
        1,
        "{}",
        refused.text()
    );
    assert!(
        refused.text().contains("Cross-origin"),
        "{}",
        refused.text()
    );

    // The controller's own origin, and programs that send none, still get their echo.
    let own = c.url.trim_end_matches('/').to_owned();
    let out = websocat_run(
        &[&format!("-H={auth}"), "--origin", &own, &c.ws_url("wsecho")],
        b"same site\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello same site\n",
        "{out:?}"
    );
    let out = websocat_run(&[&format!("-H={auth}"), &c.ws_url("wsecho")], b"program\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello program\n",
        "{out:?}"
    );
}
