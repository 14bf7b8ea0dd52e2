//! Users, passwords, API tokens and matrix permissions, through the real binaries: a user
//! refused with Jenkins' text until granted, a password working where a token does, tokens
//! created, listed and revoked, and anonymous given Overall/Read.

use base64::Engine;
use steward_tests::{Controller, Freestyle, http_request};

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

#[test]
fn a_user_is_refused_until_granted_and_authenticates_with_a_password_or_tokens() {
    let c = Controller::start();
    c.create_job("app", &Freestyle::shell("echo hi"));
    let out = c.cli(&[
        "create-user",
        "alice",
        "-full-name",
        "Alice Liddell",
        "-email",
        "alice@example.com",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.cli(&["create-user", "alice"]).code, 4, "taken");
    assert_eq!(c.cli(&["create-user", "anonymous"]).code, 3, "reserved");
    let set = c.cli_with_stdin(&["set-password", "alice"], "wonder-land-7\n");
    assert_eq!(set.code, 0, "{set:?}");

    // The password authenticates, and alice has what `authenticated` has: read, not build.
    let who = c.cli_as("alice", "wonder-land-7", &["who-am-i"], "");
    assert_eq!(who.code, 0, "{who:?}");
    assert!(
        who.stdout
            .starts_with("Authenticated as: alice\nAuthorities:\n  authenticated\n"),
        "{who:?}"
    );
    let refused = c.cli_as("alice", "wonder-land-7", &["build", "app"], "");
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("ERROR: alice is missing the Job/Build permission"),
        "{refused:?}"
    );
    let rest = http_request(
        &c.addr,
        "POST",
        "/job/app/build",
        &[&basic("alice", "wonder-land-7")],
        b"",
    );
    assert_eq!(rest.status, 403, "{}", rest.text());
    assert!(
        rest.text()
            .contains("alice is missing the Job/Build permission")
    );
    assert_eq!(c.cli_as("alice", "wrong", &["who-am-i"], "").code, 7);

    assert_eq!(
        c.cli(&[
            "grant-permissions",
            "alice",
            "Job/Build",
            "hudson.model.Item.Cancel"
        ])
        .code,
        0
    );
    let granted = c.cli(&["list-permissions"]);
    assert!(
        granted.stdout.contains("alice\tJob/Build\n")
            && granted.stdout.contains("alice\tJob/Cancel\n"),
        "{granted:?}"
    );
    assert!(
        granted.stdout.contains("admin\tOverall/Administer\n"),
        "{granted:?}"
    );
    assert_eq!(
        c.cli_as("alice", "wonder-land-7", &["build", "app"], "")
            .code,
        0
    );
    assert_eq!(c.cli(&["grant-permissions", "alice", "Job/Fly"]).code, 3);
    assert_eq!(c.cli(&["grant-permissions", "nobody", "Job/Build"]).code, 3);

    // Tokens: created (value shown once), listed without it, used, revoked at once.
    let token = c.cli_as(
        "alice",
        "wonder-land-7",
        &["create-api-token", "laptop"],
        "",
    );
    assert_eq!(token.code, 0, "{token:?}");
    let value = token.stdout.trim().to_owned();
    assert_eq!(value.len(), 34, "{token:?}");
    assert_eq!(c.cli_as("alice", &value, &["who-am-i"], "").code, 0);
    let listed = c.cli_as("alice", &value, &["list-api-tokens"], "");
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("\tlaptop\t"))
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(!listed.stdout.contains(&value));
    let uuid = line.split('\t').next().unwrap().to_owned();
    assert_eq!(
        c.cli_as("alice", &value, &["revoke-api-token", &uuid], "")
            .code,
        0
    );
    assert_eq!(
        c.cli_as("alice", &value, &["who-am-i"], "").code,
        7,
        "revoked at once"
    );
    // Another user's tokens are the administrator's business.
    assert_eq!(
        c.cli_as(
            "alice",
            "wonder-land-7",
            &["list-api-tokens", "-user", "admin"],
            ""
        )
        .code,
        6
    );

    let users = c.cli(&["list-users"]);
    assert!(
        users
            .stdout
            .contains("alice\tAlice Liddell\talice@example.com\tpassword\t0 tokens\n"),
        "{users:?}"
    );
    assert_eq!(c.cli(&["delete-user", "alice"]).code, 0);
    assert_eq!(
        c.cli_as("alice", "wonder-land-7", &["who-am-i"], "").code,
        7
    );
}

#[test]
fn admins_first_password_is_the_initial_token_and_anonymous_can_be_granted_read() {
    let c = Controller::start();
    // Without its token, the initial token still works as admin's password.
    let listed = c.cli(&["list-api-tokens"]);
    let uuid = listed.stdout.split('\t').next().unwrap().to_owned();
    assert!(listed.stdout.contains("\tinitial\t"), "{listed:?}");
    assert_eq!(c.cli(&["revoke-api-token", &uuid]).code, 0);
    assert_eq!(c.cli(&["who-am-i"]).code, 0, "the password");
    let bearer = http_request(
        &c.addr,
        "GET",
        "/api/json",
        &[&format!("Authorization: Bearer {}", c.token)],
        b"",
    );
    assert_eq!(bearer.status, 401, "a password is not a bearer token");

    assert_eq!(
        http_request(&c.addr, "GET", "/api/json", &[], b"").status,
        403
    );
    assert_eq!(
        c.cli(&["grant-permissions", "anonymous", "Overall/Read"])
            .code,
        0
    );
    assert_eq!(
        http_request(&c.addr, "GET", "/api/json", &[], b"").status,
        200
    );
    let who = c.cli_anonymous(&["who-am-i"]);
    assert!(
        who.stdout.starts_with("Authenticated as: anonymous\n"),
        "{who:?}"
    );
    assert_eq!(
        c.cli(&["revoke-permissions", "anonymous", "Overall/Read"])
            .code,
        0
    );
    assert_eq!(
        http_request(&c.addr, "GET", "/api/json", &[], b"").status,
        403
    );
    assert_eq!(
        c.cli(&["revoke-permissions", "admin", "Overall/Administer"])
            .code,
        4,
        "not your own"
    );
}

#[test]
fn tokens_are_made_and_revoked_over_jenkins_rest() {
    let c = Controller::start();
    assert_eq!(c.cli(&["create-user", "bob"]).code, 0);
    assert_eq!(
        c.cli_with_stdin(&["set-password", "bob"], "builder-bob-1\n")
            .code,
        0
    );
    let path = "/user/bob/descriptorByName/jenkins.security.ApiTokenProperty";
    let made = http_request(
        &c.addr,
        "POST",
        &format!("{path}/generateNewToken"),
        &[
            &basic("bob", "builder-bob-1"),
            "Content-Type: application/x-www-form-urlencoded",
        ],
        b"newTokenName=ci",
    );
    assert_eq!(made.status, 200, "{}", made.text());
    let json = made.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["data"]["tokenName"], "ci");
    let value = json["data"]["tokenValue"].as_str().unwrap().to_owned();
    let uuid = json["data"]["tokenUuid"].as_str().unwrap().to_owned();
    let me = http_request(
        &c.addr,
        "GET",
        "/user/bob/api/json",
        &[&basic("bob", &value)],
        b"",
    );
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], "bob");
    // Another user's tokens are not bob's to make.
    let other = http_request(
        &c.addr,
        "POST",
        "/user/admin/descriptorByName/jenkins.security.ApiTokenProperty/generateNewToken",
        &[&basic("bob", &value)],
        b"",
    );
    assert_eq!(other.status, 403);
    let revoked = http_request(
        &c.addr,
        "POST",
        &format!("{path}/revoke?tokenUuid={uuid}"),
        &[&basic("bob", "builder-bob-1")],
        b"",
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(
        http_request(
            &c.addr,
            "GET",
            "/user/bob/api/json",
            &[&basic("bob", &value)],
            b""
        )
        .status,
        401
    );
}

#[test]
fn wrong_credentials_are_refused_everywhere_and_the_home_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let c = Controller::start();
    for path in ["/", "/login", "/no/such/page", "/api/json"] {
        let wrong = http_request(
            &c.addr,
            "GET",
            path,
            &[&basic("admin", "not-the-password")],
            b"",
        );
        assert_eq!(wrong.status, 401, "{path}");
    }
    assert_eq!(http_request(&c.addr, "GET", "/", &[], b"").status, 200);
    c.create_job("private", &Freestyle::shell("true"));
    let (_agent, _work) = c.node_with_agent("n1");
    assert_eq!(c.cli(&["build", "private", "-s"]).code, 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(c.home()), 0o700);
    assert_eq!(mode(&c.home().join("steward.db")), 0o600);
    assert_eq!(mode(&c.home().join("jobs/private/builds/1/log")), 0o600);
}

#[test]
fn password_parameters_never_show_in_plain_text() {
    let c = Controller::start();
    let (_agent, _work) = c.node_with_agent("n1");
    let job = |label: &str| {
        format!(
            "<project><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>\
               <hudson.model.StringParameterDefinition><name>BRANCH</name><defaultValue>main</defaultValue></hudson.model.StringParameterDefinition>\
               <hudson.model.PasswordParameterDefinition><name>PW</name><defaultValue></defaultValue></hudson.model.PasswordParameterDefinition>\
             </parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>\
             <assignedNode>{label}</assignedNode><builders><hudson.tasks.Shell><command>test \"$PW\" = hunter2</command></hudson.tasks.Shell></builders></project>"
        )
    };
    assert_eq!(
        c.cli_with_stdin(&["create-job", "deploy"], &job("n1")).code,
        0
    );
    assert_eq!(
        c.cli(&["build", "deploy", "-s", "-p", "PW=hunter2"]).code,
        0,
        "the step got it"
    );
    let listed = c.cli(&["list-builds", "deploy"]);
    assert!(listed.stdout.contains("BRANCH=main PW=****"), "{listed:?}");
    let auth = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", c.token))
    );
    let build = http_request(&c.addr, "GET", "/job/deploy/1/api/json", &[&auth], b"").text();
    assert!(!build.contains("hunter2"), "{build}");
    // Waiting in the queue: no node has the label.
    assert_eq!(
        c.cli_with_stdin(&["create-job", "waiting"], &job("nowhere"))
            .code,
        0
    );
    assert_eq!(c.cli(&["build", "waiting", "-p", "PW=hunter2"]).code, 0);
    let queue = c.cli(&["queue"]);
    assert!(
        queue.stdout.contains("PW=****") && !queue.stdout.contains("hunter2"),
        "{queue:?}"
    );
    let rest = http_request(&c.addr, "GET", "/queue/api/json", &[&auth], b"").text();
    assert!(!rest.contains("hunter2"), "{rest}");
}
