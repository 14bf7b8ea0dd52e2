//! The two requests of a full-duplex HTTP CLI session (`POST /cli?remoting=false`): who
//! may join a waiting download side, and how many may wait. docs/security.md lists each
//! case with its defence.
//!
//! - an upload side must authenticate as its download side did, or it is refused and
//!   nothing runs;
//! - half-open sessions (download sides without their upload) cannot lock authenticated
//!   users out: anonymous ones wait in a small pool of their own, bad credentials are
//!   answered at once, every waiting side is capped per address and expires quickly.

use std::time::{Duration, Instant};

use steward_protocol::plaincli::op;
use steward_tests::duplex::{self, Caller, Download, assert_exit, command_line, read_answer};
use steward_tests::{Controller, DEADLINE, Freestyle, run_cli, wait_until};

/// How long a download side waits for its upload side (`cli::duplex::PAIRING_TIMEOUT`).
const PAIRING_TIMEOUT: Duration = Duration::from_secs(5);
/// Authenticated download sides that may wait from one address
/// (`cli::duplex::MAX_PENDING_PER_ADDRESS`).
const MAX_PENDING_PER_ADDRESS: usize = 16;
/// Anonymous download sides that may wait at once (`cli::duplex::MAX_PENDING_ANONYMOUS`).
const MAX_PENDING_ANONYMOUS: usize = 32;
/// … and from one address (`cli::duplex::MAX_PENDING_ANONYMOUS_PER_ADDRESS`).
const MAX_PENDING_ANONYMOUS_PER_ADDRESS: usize = 4;
/// Half-open sessions an attacker opens in the lock-out scenario: what used to fill the
/// whole table (`cli::duplex::MAX_PENDING_SESSIONS`).
const FLOOD: usize = 256;

const ADMIN_WHO_AM_I: &str = "Authenticated as: admin\nAuthorities:\n  authenticated\n";
const ANONYMOUS_WHO_AM_I: &str = "Authenticated as: anonymous\nAuthorities:\n  anonymous\n";
/// `Authorization` with the admin's name and a token that is not theirs.
const WRONG_TOKEN: &str = "Authorization: Basic YWRtaW46d3Jvbmc=";

fn assert_no_panic(c: &Controller) {
    assert!(!c.log.contains("panicked"), "{}", c.log.text());
}

#[test]
fn an_upload_side_must_authenticate_as_its_download_side() {
    let c = Controller::start();
    let admin = c.admin_basic_auth_header();
    let bearer = format!("Authorization: Bearer {}", c.token);
    c.create_job("csrfcopy", &Freestyle::shell("true"));

    // The hole: an admin's download side, and an upload side with the same `Session` that
    // sends no credentials, or wrong ones, and a command. The upload is refused and runs
    // nothing; the download side waits on for its own client's upload, which then runs.
    for (case, upload_headers) in [
        ("no credentials", &[][..]),
        ("a wrong token", &[WRONG_TOKEN]),
    ] {
        let session = format!("hijack-{}", case.replace(' ', "-"));
        let mut download = Download::open(&c.addr, &session, Caller::with(&[&admin]));
        let mut upload = duplex::post_upload(
            &c.addr,
            &session,
            Caller::with(upload_headers),
            &command_line(&["delete-job", "csrfcopy"]),
        );
        let (status, _, reason) = read_answer(&mut upload);
        assert_eq!(status, 403, "{case}: the upload side is refused: {reason}");
        assert_eq!(reason.trim_end().lines().count(), 1, "{case}: {reason:?}");
        assert!(
            reason.starts_with("No CLI session waits for this upload side"),
            "{case}: {reason}"
        );
        assert_eq!(
            c.cli(&["get-job", "csrfcopy"]).code,
            0,
            "{case}: the job is still there"
        );
        // The session's own client comes: its command runs, as the admin.
        let mut own = duplex::post_upload(
            &c.addr,
            &session,
            Caller::with(&[&admin]),
            &command_line(&["who-am-i"]),
        );
        let frames = download.frames_to_end();
        assert_exit(case, &frames, 0);
        assert_eq!(duplex::text_of(&frames, op::STDOUT), ADMIN_WHO_AM_I);
        assert_eq!(read_answer(&mut own).0, 200);
        eprintln!("upload side with {case}: 403 `{}`", reason.trim_end());
    }
    // An upload side that authenticates as another identity than its download side (here:
    // the admin joining an anonymous download) is refused too; an upload to no session at
    // all gets the same answer, so an upload learns nothing about sessions.
    let mut download = Download::open(&c.addr, "other-identity", Caller::default());
    let mut upload = duplex::post_upload(
        &c.addr,
        "other-identity",
        Caller::with(&[&admin]),
        &command_line(&["who-am-i"]),
    );
    let refused = read_answer(&mut upload);
    assert_eq!(refused.0, 403);
    let mut nowhere = duplex::post_upload(
        &c.addr,
        "no-such-session",
        Caller::with(&[&admin]),
        &command_line(&["who-am-i"]),
    );
    let unknown = read_answer(&mut nowhere);
    assert_eq!((unknown.0, &unknown.2), (refused.0, &refused.2));
    drop(download.frames_to_end());

    // A client that sends its credentials on both sides, as jenkins-cli.jar does (Basic on
    // one side and Bearer on the other is the same identity): the command runs.
    let mut download = Download::open(&c.addr, "both-sides", Caller::with(&[&admin]));
    let mut upload = duplex::post_upload(
        &c.addr,
        "both-sides",
        Caller::with(&[&bearer]),
        &command_line(&["delete-job", "csrfcopy"]),
    );
    let frames = download.frames_to_end();
    assert_exit("credentials on both sides", &frames, 0);
    assert_eq!(read_answer(&mut upload).0, 200);
    assert_ne!(
        c.cli(&["get-job", "csrfcopy"]).code,
        0,
        "the job is deleted"
    );
    // Anonymous on both sides may still ask who it is.
    let mut download = Download::open(&c.addr, "anonymous", Caller::default());
    let mut upload = duplex::post_upload(
        &c.addr,
        "anonymous",
        Caller::default(),
        &command_line(&["who-am-i"]),
    );
    let frames = download.frames_to_end();
    assert_exit("anonymous on both sides", &frames, 0);
    assert_eq!(duplex::text_of(&frames, op::STDOUT), ANONYMOUS_WHO_AM_I);
    assert_eq!(read_answer(&mut upload).0, 200);

    // Our cli sends its credentials on both sides.
    let who = c.cli(&["-http", "who-am-i"]);
    assert_eq!(
        (who.code, who.stdout.as_str()),
        (0, ADMIN_WHO_AM_I),
        "{who:?}"
    );
    let anonymous = c.cli_anonymous(&["-http", "who-am-i"]);
    assert_eq!(
        (anonymous.code, anonymous.stdout.as_str()),
        (0, ANONYMOUS_WHO_AM_I),
        "{anonymous:?}"
    );
    assert!(
        c.log.contains("refused the upload side of a CLI session"),
        "the refusals are logged"
    );
    assert_no_panic(&c);
}

#[test]
fn half_open_sessions_cannot_lock_an_authenticated_cli_out() {
    let c = Controller::start();
    let admin = c.admin_basic_auth_header();

    // The attack: FLOOD anonymous download sides that never send their upload side, from
    // 16 addresses. The first one is watched to its end, to see when it expires.
    let opened = Instant::now();
    let mut first = Download::open(&c.addr, "anonymous-first", Caller::default());
    let first = std::thread::spawn(move || {
        let frames = first.frames_to_end();
        (frames, opened.elapsed())
    });
    let mut waiting = Vec::new();
    let mut refused = Vec::new();
    for i in 0..FLOOD {
        let source = format!("127.0.0.{}", 10 + i % 16);
        let from = Caller {
            headers: &[],
            source: Some(&source),
        };
        match Download::try_open(&c.addr, &format!("anonymous-{i}"), from) {
            Ok(download) => waiting.push((source, download)),
            Err((503, _, reason)) => refused.push(reason),
            Err((status, head, body)) => panic!("anonymous side {i}: {status} {head}\n{body}"),
        }
    }
    let flood_took = opened.elapsed();
    eprintln!(
        "{FLOOD} anonymous download sides in {flood_took:?}: {} wait, {} refused",
        waiting.len() + 1,
        refused.len()
    );
    let who = c.cli(&["-http", "who-am-i"]);
    assert_eq!(
        (who.code, who.stdout.as_str()),
        (0, ADMIN_WHO_AM_I),
        "the admin's cli during the flood: {who:?}"
    );
    // When the flood ran within one pairing timeout, none of its sides expired before the
    // others came, and the counts are of sides waiting at once: the pool full, bar the
    // watched one. (A machine too loaded for that still checked the admin's cli above.)
    if flood_took < PAIRING_TIMEOUT {
        assert_eq!(waiting.len(), MAX_PENDING_ANONYMOUS - 1);
    } else {
        eprintln!("the flood took {flood_took:?}: its sides were not all waiting at once");
    }
    for source in waiting.iter().map(|(s, _)| s) {
        let from_source = waiting.iter().filter(|(s, _)| s == source).count();
        assert!(from_source <= MAX_PENDING_ANONYMOUS_PER_ADDRESS, "{source}");
    }
    assert!(
        refused.iter().all(|r| r.contains("anonymous CLI sessions")),
        "{:?}",
        refused.first()
    );

    // Bad credentials hold no place: each download side is answered at once with the
    // reason and exit 7, as our cli shows them.
    let mut answered = Vec::new();
    for i in 0..FLOOD {
        let mut download =
            Download::open(&c.addr, &format!("bad-{i}"), Caller::with(&[WRONG_TOKEN]));
        let stderr = assert_exit("bad credentials", &download.frames_to_end(), 7);
        assert_eq!(stderr, "\nERROR: Bad credentials\n");
        // The connection stays open, as an attacker's would.
        answered.push(download);
    }
    let wrong = run_cli(
        &["-s", &c.url, "-http", "-auth", "admin:wrong", "who-am-i"],
        "",
    );
    assert_eq!(wrong.code, 7, "{wrong:?}");
    assert_eq!(wrong.stderr, "\nERROR: Bad credentials\n", "{wrong:?}");
    let who = c.cli(&["-http", "who-am-i"]);
    assert_eq!(who.code, 0, "after the bad credentials: {who:?}");

    // Authenticated download sides are capped per address: another address, the admin's
    // own cli among them, is not affected.
    let mut held = Vec::new();
    for i in 0..MAX_PENDING_PER_ADDRESS {
        let from = Caller {
            headers: &[&admin],
            source: Some("127.0.0.2"),
        };
        held.push(Download::open(&c.addr, &format!("held-{i}"), from));
    }
    let from = Caller {
        headers: &[&admin],
        source: Some("127.0.0.2"),
    };
    match Download::try_open(&c.addr, "one-too-many", from) {
        Err((503, _, reason)) => {
            assert!(reason.contains("from 127.0.0.2"), "{reason}");
            eprintln!("past the per-address cap: 503 `{}`", reason.trim_end());
        }
        Ok(_) => panic!("a download side past the per-address cap was accepted"),
        Err((status, head, body)) => panic!("{status} {head}\n{body}"),
    }
    let from = Caller {
        headers: &[&admin],
        source: Some("127.0.0.3"),
    };
    drop(Download::open(&c.addr, "another-address", from));
    let who = c.cli(&["-http", "who-am-i"]);
    assert_eq!(who.code, 0, "beside a full address: {who:?}");

    // Waiting sides expire quickly, with the reason and EXIT 2, and their places are free
    // again.
    let (frames, expired) = first.join().unwrap();
    let stderr = assert_exit("no upload side", &frames, 2);
    assert!(stderr.contains("no upload side arrived"), "{stderr}");
    assert!(
        expired >= PAIRING_TIMEOUT - Duration::from_millis(500),
        "a waiting side expired after {expired:?}, before the pairing timeout"
    );
    eprintln!("a waiting download side expired after {expired:?}");
    wait_until(DEADLINE, "the anonymous pool free again", || {
        c.cli_anonymous(&["-http", "who-am-i"]).code == 0
    });
    assert_no_panic(&c);
}
