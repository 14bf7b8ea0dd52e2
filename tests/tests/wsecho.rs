//! `/wsecho` (compat §8) with the real websocat client.

use std::process::Stdio;

use steward_tests::Controller;

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
