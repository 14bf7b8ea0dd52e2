//! Per-job grants (`hudson.security.AuthorizationMatrixProperty`, in both forms), jobs a
//! user may not read hidden as Jenkins hides them, anonymous `help`, and a token revoked
//! while a WebSocket CLI session is open refused at that session's command, through the
//! real binaries.

use base64::Engine;
use steward_protocol::plaincli::{self, Frame};
use steward_tests::frames::{self, RawWs};
use steward_tests::{Controller, DEADLINE, Freestyle, http_request};

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// A job whose `<properties>` hold the matrix property with `inner`.
fn with_matrix(inner: &str) -> String {
    Freestyle::shell("echo hi").xml().replace(
        "<properties>",
        &format!(
            "<properties><hudson.security.AuthorizationMatrixProperty>{inner}</hudson.security.AuthorizationMatrixProperty>"
        ),
    )
}

fn create_user(c: &Controller, name: &str, password: &str) {
    assert_eq!(c.cli(&["create-user", name]).code, 0);
    let set = c.cli_with_stdin(&["set-password", name], &format!("{password}\n"));
    assert_eq!(set.code, 0, "{set:?}");
}

#[test]
fn a_jobs_own_grants_add_to_the_global_ones_and_unreadable_jobs_are_not_found() {
    let c = Controller::start();
    create_user(&c, "alice", "alice-pw-1");
    create_user(&c, "bob", "bob-pw-1");
    // The new form (TYPE:PERMISSION:SID) and the old one (PERMISSION:SID).
    let granted = with_matrix(
        "<inheritanceStrategy class='org.jenkinsci.plugins.matrixauth.inheritance.InheritParentStrategy'/>\
         <permission>USER:hudson.model.Item.Build:alice</permission>\
         <permission>hudson.model.Item.Cancel:alice</permission>",
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "app"], &granted).code, 0);
    c.create_job("other", &Freestyle::shell("echo other"));
    // Only admin (Overall/Administer counts everywhere) and bob may read `secret`.
    let private = with_matrix(
        "<inheritanceStrategy class='org.jenkinsci.plugins.matrixauth.inheritance.NonInheritingStrategy'/>\
         <permission>USER:hudson.model.Item.Read:bob</permission>",
    );
    assert_eq!(
        c.cli_with_stdin(&["create-job", "secret"], &private).code,
        0
    );

    // The job's grant lets alice build it, and only it.
    let built = c.cli_as("alice", "alice-pw-1", &["build", "app"], "");
    assert_eq!(built.code, 0, "{built:?}");
    let refused = c.cli_as("alice", "alice-pw-1", &["build", "other"], "");
    assert_eq!(refused.code, 6, "{refused:?}");
    assert_eq!(
        refused.stderr,
        "\nERROR: alice is missing the Job/Build permission\n"
    );
    let rest = http_request(
        &c.addr,
        "POST",
        "/job/app/build",
        &[&basic("alice", "alice-pw-1")],
        b"",
    );
    assert_eq!(rest.status, 201, "{}", rest.text());
    let rest_other = http_request(
        &c.addr,
        "POST",
        "/job/other/build",
        &[&basic("alice", "alice-pw-1")],
        b"",
    );
    assert_eq!(rest_other.status, 403, "{}", rest_other.text());
    // The old form's Job/Cancel: alice may cancel app's queued builds (no node runs them).
    let queued = c.cli(&["queue"]);
    let id = queued
        .stdout
        .lines()
        .find(|l| l.contains("\tapp\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("{queued:?}"))
        .to_owned();
    assert_eq!(
        c.cli_as("alice", "alice-pw-1", &["cancel-queue", &id], "")
            .code,
        0
    );
    // bob has no such grant on app.
    let bob_build = c.cli_as("bob", "bob-pw-1", &["build", "app"], "");
    assert_eq!(bob_build.code, 6, "{bob_build:?}");

    // A job alice may not read does not exist for her, on the CLI and over REST, and is
    // not suggested; bob and admin see it.
    let hidden = c.cli_as("alice", "alice-pw-1", &["get-job", "secret"], "");
    assert_eq!(hidden.code, 3, "{hidden:?}");
    assert!(
        hidden.stderr.starts_with("\nERROR: No such job 'secret'")
            && !hidden.stderr.contains("perhaps you meant 'secret'"),
        "{hidden:?}"
    );
    let listed = c.cli_as("alice", "alice-pw-1", &["list-jobs"], "");
    assert_eq!(listed.stdout, "app\nother\n", "{listed:?}");
    assert_eq!(
        c.cli_as("bob", "bob-pw-1", &["list-jobs"], "").stdout,
        "app\nother\nsecret\n"
    );
    assert_eq!(c.cli(&["list-jobs"]).stdout, "app\nother\nsecret\n");
    let alice = basic("alice", "alice-pw-1");
    assert_eq!(
        http_request(&c.addr, "GET", "/job/secret/api/json", &[&alice], b"").status,
        404
    );
    let root = http_request(&c.addr, "GET", "/api/json", &[&alice], b"").json();
    let names: Vec<&str> = root["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "other"]);
    // bob reads secret, but the job does not inherit the global grants: not even Job/Read
    // of `authenticated` reaches other users there, and bob may not build it.
    assert_eq!(
        c.cli_as("bob", "bob-pw-1", &["list-builds", "secret"], "")
            .code,
        0
    );
    // Reading the configuration is Job/ExtendedRead, which Job/Read does not give.
    let config = c.cli_as("bob", "bob-pw-1", &["get-job", "secret"], "");
    assert_eq!(config.code, 6, "{config:?}");
    assert_eq!(
        c.cli_as("bob", "bob-pw-1", &["build", "secret"], "").code,
        6
    );

    // A malformed grant is refused with the line named, and nothing is created.
    let bad = with_matrix("<permission>hudson.model.Item.Build</permission>");
    let refused = c.cli_with_stdin(&["create-job", "bad"], &bad);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.contains("hudson.model.Item.Build")
            && refused.stderr.contains("PERMISSION:SID"),
        "{refused:?}"
    );
    assert_eq!(c.cli(&["get-job", "bad"]).code, 3);
}

#[test]
fn anonymous_help_says_how_to_authenticate() {
    let c = Controller::start();
    let help = c.cli_anonymous(&["help"]);
    assert_eq!(help.code, 6, "{help:?}");
    assert!(
        help.stderr
            .starts_with("\nERROR: You must authenticate to access this Jenkins.\nUsage: cli"),
        "{help:?}"
    );
    assert!(help.stderr.contains("-auth USER:TOKEN"), "{help:?}");
    assert!(help.stderr.contains("initialAdminToken"), "{help:?}");
}

/// A WebSocket CLI session opened by hand as `user:secret`, its arguments not sent yet.
fn open_session(c: &Controller, user: &str, secret: &str) -> RawWs {
    let origin = c.url.trim_end_matches('/').to_owned();
    let auth = basic(user, secret);
    let (name, value) = auth.split_once(": ").unwrap();
    let (status, head, ws) = frames::upgrade(
        &c.addr,
        "/cli/ws",
        &[("Origin", origin.as_str()), (name, value)],
    );
    assert_eq!(status, 101, "{head}");
    ws.unwrap()
}

/// Sends `args` and START; the session's stderr and exit code.
fn run(ws: &mut RawWs, args: &[&str]) -> (String, Option<i32>) {
    let mut frames_out: Vec<Frame> = args.iter().map(|a| Frame::Arg((*a).into())).collect();
    frames_out.push(Frame::Start);
    for frame in frames_out {
        let payload = plaincli::encode_ws(&frame).unwrap();
        ws.write(&frames::client_frame(true, frames::op::BINARY, &payload))
            .unwrap();
    }
    let mut stderr = Vec::new();
    loop {
        let Some(frame) = ws.read_frame(DEADLINE) else {
            return (String::from_utf8_lossy(&stderr).into_owned(), None);
        };
        if frame.opcode != frames::op::BINARY {
            continue;
        }
        match frame.payload.first() {
            Some(&plaincli::op::STDERR) => stderr.extend_from_slice(&frame.payload[1..]),
            Some(&plaincli::op::EXIT) => {
                let code = i32::from_be_bytes(frame.payload[1..5].try_into().unwrap());
                return (String::from_utf8_lossy(&stderr).into_owned(), Some(code));
            }
            _ => {}
        }
    }
}

#[test]
fn a_token_revoked_while_a_websocket_session_is_open_is_refused_at_its_command() {
    let c = Controller::start();
    create_user(&c, "alice", "alice-pw-1");
    let made = c.cli_as("alice", "alice-pw-1", &["create-api-token", "laptop"], "");
    assert_eq!(made.code, 0, "{made:?}");
    let token = made.stdout.trim().to_owned();

    // Open, and working: the same token in a session of its own.
    let mut before = open_session(&c, "alice", &token);
    assert_eq!(run(&mut before, &["who-am-i"]).1, Some(0));

    // A session opened with the token, then the token revoked before its command.
    let mut open = open_session(&c, "alice", &token);
    let listed = c.cli_as("alice", "alice-pw-1", &["list-api-tokens"], "");
    let uuid = listed
        .stdout
        .lines()
        .find(|l| l.contains("\tlaptop\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("{listed:?}"))
        .to_owned();
    assert_eq!(
        c.cli_as("alice", "alice-pw-1", &["revoke-api-token", &uuid], "")
            .code,
        0
    );
    let (stderr, code) = run(&mut open, &["who-am-i"]);
    assert_eq!(code, Some(7), "{stderr}");
    assert!(
        stderr.contains("ERROR: Bad credentials: the API token or password this session opened with is no longer valid"),
        "{stderr}"
    );
    // And a grant revoked meanwhile counts at the command too.
    assert_eq!(c.cli(&["grant-permissions", "alice", "Job/Create"]).code, 0);
    let mut session = open_session(&c, "alice", "alice-pw-1");
    assert_eq!(
        c.cli(&["revoke-permissions", "alice", "Job/Create"]).code,
        0
    );
    let (stderr, code) = run(&mut session, &["create-job", "late"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains("alice is missing the Job/Create permission"),
        "{stderr}"
    );
}
