//! The CLI end to end, over WebSocket and full-duplex HTTP: identities, permissions, node
//! commands, bad input, fallback and refusals, with Jenkins' outputs and exit codes.

use steward_tests::{Controller, DEADLINE, run_cli, run_cli_env};

const ANONYMOUS_WHO_AM_I: &str = "Authenticated as: anonymous\nAuthorities:\n  anonymous\n";
const ADMIN_WHO_AM_I: &str = "Authenticated as: admin\nAuthorities:\n  authenticated\n";

#[test]
fn who_am_i_over_both_transports() {
    let c = Controller::start();
    for mode in ["-webSocket", "-http"] {
        let anon = c.cli_anonymous(&[mode, "who-am-i"]);
        assert_eq!(
            (anon.code, anon.stdout.as_str()),
            (0, ANONYMOUS_WHO_AM_I),
            "{mode}: {anon:?}"
        );
        let admin = c.cli(&[mode, "who-am-i"]);
        assert_eq!(
            (admin.code, admin.stdout.as_str()),
            (0, ADMIN_WHO_AM_I),
            "{mode}: {admin:?}"
        );
        let bearer = run_cli(&["-s", &c.url, mode, "-bearer", &c.token, "who-am-i"], "");
        assert_eq!(bearer.stdout, ADMIN_WHO_AM_I, "{mode}: {bearer:?}");
    }
}

#[test]
fn credentials_from_environment_and_files() {
    let c = Controller::start();
    let env = run_cli_env(
        &["-s", &c.url, "who-am-i"],
        "",
        &[
            ("JENKINS_USER_ID", "admin"),
            ("JENKINS_API_TOKEN", &c.token),
        ],
    );
    assert_eq!(env.stdout, ADMIN_WHO_AM_I, "{env:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, format!("admin:{}\n", c.token)).unwrap();
    let from_file = run_cli(
        &[
            "-s",
            &c.url,
            "-auth",
            &format!("@{}", file.display()),
            "who-am-i",
        ],
        "",
    );
    assert_eq!(from_file.stdout, ADMIN_WHO_AM_I, "{from_file:?}");
    let by_env_url = run_cli_env(
        &["-auth", &format!("admin:{}", c.token), "who-am-i"],
        "",
        &[("JENKINS_URL", &c.url)],
    );
    assert_eq!(by_env_url.stdout, ADMIN_WHO_AM_I, "{by_env_url:?}");
}

#[test]
fn wrong_token_is_refused_not_anonymous() {
    let c = Controller::start();
    for mode in ["-webSocket", "-http"] {
        let out = run_cli(
            &["-s", &c.url, mode, "-auth", "admin:wrong", "who-am-i"],
            "",
        );
        assert_eq!(out.code, 7, "{mode}: {out:?}");
        assert!(out.stderr.contains("ERROR: Bad credentials"), "{out:?}");
        assert!(!out.stdout.contains("anonymous"));
    }
}

#[test]
fn anonymous_may_only_ask_who_it_is() {
    let c = Controller::start();
    for args in [
        &["list-nodes"][..],
        &["version"],
        &["get-node", "x"],
        &["create-node", "x"],
        &["delete-node", "x"],
    ] {
        let out = c.cli_anonymous(args);
        assert_eq!(out.code, 6, "{args:?}: {out:?}");
        assert_eq!(
            out.stderr, "\nERROR: anonymous is missing the Overall/Read permission\n",
            "{args:?}"
        );
    }
    // `help` adds how to authenticate (tests/permissions.rs checks the text).
    let help = c.cli_anonymous(&["help"]);
    assert_eq!(help.code, 6);
    assert!(
        help.stderr
            .starts_with("\nERROR: You must authenticate to access this Jenkins.\nUsage: "),
        "{help:?}"
    );
    let unknown = c.cli_anonymous(&["no-such"]);
    assert_eq!(
        unknown.code, 2,
        "unknown command comes before the permission check"
    );
    assert!(unknown.stderr.contains("No such command no-such"));
}

#[test]
fn help_and_version() {
    let c = Controller::start();
    // An unknown command asked of `help`: the list, then Jenkins' error, exit 5.
    let nosuch = c.cli(&["help", "nosuch"]);
    assert_eq!(nosuch.code, 5, "{nosuch:?}");
    assert!(nosuch.stderr.contains("  who-am-i\n"), "{nosuch:?}");
    assert!(
        nosuch
            .stderr
            .ends_with("\nERROR: No such command nosuch. Available commands are above.\n"),
        "{nosuch:?}"
    );
    let help = c.cli(&["help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.is_empty(), "help goes to stderr");
    let names: Vec<&str> = help
        .stderr
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .map(str::trim)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for cmd in [
        "who-am-i",
        "create-node",
        "wait-node-offline",
        "list-nodes",
        "agent-command",
    ] {
        assert!(names.contains(&cmd), "{cmd} missing from help");
    }
    // `version` agrees with X-Jenkins, as in Jenkins; `-v` adds Steward's own.
    let version = c.cli(&["version"]);
    let x_jenkins = steward_tests::http_get(&c.addr, "/")
        .header("X-Jenkins")
        .unwrap()
        .to_owned();
    assert_eq!(version.stdout, format!("{x_jenkins}\n"));
    let verbose = c.cli(&["version", "-v"]);
    assert_eq!(
        verbose.stdout,
        format!(
            "{x_jenkins}\nSteward {}\n",
            steward_protocol::STEWARD_VERSION
        )
    );
}

const NODE_XML: &str = r#"<slave>
  <name>linux-1</name>
  <description>build box</description>
  <remoteFS>/home/ci/agent</remoteFS>
  <numExecutors>2</numExecutors>
  <mode>NORMAL</mode>
  <retentionStrategy class="hudson.slaves.RetentionStrategy$Always"/>
  <launcher class="hudson.slaves.JNLPLauncher">
    <workDirSettings><disabled>false</disabled><internalDir>remoting</internalDir>
      <failIfWorkDirIsMissing>false</failIfWorkDirIsMissing></workDirSettings>
    <webSocket>true</webSocket>
  </launcher>
  <label>linux x86_64</label>
  <nodeProperties/>
</slave>"#;

#[test]
fn create_get_update_delete_node_round_trip() {
    let c = Controller::start();
    for mode in ["-webSocket", "-http"] {
        let name = format!("node{mode}");
        let out = c.cli_with_stdin(&[mode, "create-node", &name], NODE_XML);
        assert_eq!(out.code, 0, "{out:?}");
        let got = c.cli(&[mode, "get-node", &name]);
        assert_eq!(got.code, 0);
        assert!(
            got.stdout
                .starts_with("<?xml version=\"1.1\" encoding=\"UTF-8\"?>\n<slave>\n"),
            "{}",
            got.stdout
        );
        assert!(got.stdout.contains(&format!("<name>{name}</name>")));
        assert!(got.stdout.contains("<label>linux x86_64</label>"));
        // What get-node prints, create-node takes back unchanged.
        let again = c.cli_with_stdin(&["create-node", "copy"], &got.stdout);
        assert_eq!(again.code, 0, "{again:?}");
        let copy = c.cli(&["get-node", "copy"]).stdout;
        assert_eq!(
            copy.replace("<name>copy</name>", &format!("<name>{name}</name>")),
            got.stdout
        );
        assert_eq!(c.cli(&["delete-node", "copy"]).code, 0);

        let exists = c.cli_with_stdin(&[mode, "create-node", &name], NODE_XML);
        assert_eq!(exists.code, 4);
        assert_eq!(
            exists.stderr,
            format!("\nERROR: Node '{name}' already exists\n")
        );

        let updated = NODE_XML
            .replace("linux x86_64", "linux arm64")
            .replace("<name>linux-1</name>", &format!("<name>{name}</name>"));
        assert_eq!(
            c.cli_with_stdin(&[mode, "update-node", &name], &updated)
                .code,
            0
        );
        assert!(
            c.cli(&["get-node", &name])
                .stdout
                .contains("<label>linux arm64</label>")
        );
        assert_eq!(c.cli(&[mode, "delete-node", &name]).code, 0);
        let gone = c.cli(&[mode, "get-node", &name]);
        assert_eq!(
            (gone.code, gone.stderr),
            (3, format!("\nERROR: No such node '{name}'\n"))
        );
    }
}

#[test]
fn delete_node_errors() {
    let c = Controller::start();
    c.create_node("a", "");
    let one = c.cli(&["delete-node", "ghost"]);
    assert_eq!(
        (one.code, one.stderr.as_str()),
        (3, "\nERROR: No such node 'ghost'\n")
    );
    let several = c.cli(&["delete-node", "a", "ghost", "phantom"]);
    assert_eq!(several.code, 5, "{several:?}");
    assert!(
        several
            .stderr
            .starts_with("ghost: No such node 'ghost'\nphantom: No such node 'phantom'\n"),
        "{several:?}"
    );
    assert!(several.stderr.contains("ERROR: "));
    assert_eq!(c.cli(&["get-node", "a"]).code, 3, "a was deleted");
}

#[test]
fn hostile_xml_is_refused_and_nothing_is_stored() {
    let c = Controller::start();
    let doctype = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><slave><name>&lol;</name></slave>";
    let out = c.cli_with_stdin(&["create-node", "evil"], doctype);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("DOCTYPE is not allowed"), "{out:?}");

    let huge = format!(
        "<slave><name>big</name><description>{}</description></slave>",
        "x".repeat(2 << 20)
    );
    let out = c.cli_with_stdin(&["create-node"], &huge);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("over the limit"), "{out:?}");

    let malformed = c.cli_with_stdin(&["create-node", "m"], "<slave><name>m</slave>");
    assert_eq!(malformed.code, 3);
    assert!(malformed.stderr.contains("malformed XML"), "{malformed:?}");

    let bad_value = c.cli_with_stdin(
        &["create-node", "v"],
        "<slave><numExecutors>lots</numExecutors></slave>",
    );
    assert_eq!(bad_value.code, 3);
    assert!(bad_value.stderr.contains("numExecutors"), "{bad_value:?}");

    assert_eq!(
        c.cli(&["list-nodes", "-json"]).stdout.trim(),
        "[]",
        "nothing stored"
    );
}

#[test]
fn bad_node_names_are_refused() {
    let c = Controller::start();
    for bad in ["a/b", "x?", "..", "semi;colon", "pipe|", ""] {
        let out = c.cli_with_stdin(&["create-node", bad], "<slave/>");
        assert_eq!(out.code, 3, "{bad:?}: {out:?}");
    }
    assert_eq!(c.cli(&["list-nodes", "-json"]).stdout.trim(), "[]");
}

#[test]
fn usage_errors() {
    let c = Controller::start();
    let client_option = run_cli(&["-s", &c.url, "-bogus", "who-am-i"], "");
    assert_eq!(client_option.code, 2, "{client_option:?}");
    assert!(
        client_option.stderr.to_lowercase().contains("usage"),
        "{client_option:?}"
    );
    let command_option = c.cli(&["list-nodes", "-bogus"]);
    assert_eq!(command_option.code, 2);
    assert!(
        command_option
            .stderr
            .contains("\"-bogus\" is not a valid option"),
        "{command_option:?}"
    );
    let missing = c.cli(&["get-node"]);
    assert_eq!(missing.code, 2);
}

#[test]
fn falls_back_to_http_when_websocket_cli_is_off() {
    let c = Controller::start_with(&["--no-websocket-cli"]);
    let out = c.cli(&["who-am-i"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ADMIN_WHO_AM_I),
        "{out:?}"
    );
    let notes: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(notes.len(), 1, "one line about the fallback: {out:?}");
    assert!(notes[0].to_lowercase().contains("http"), "{out:?}");
}

#[test]
fn origin_mismatch_is_refused_with_exit_15() {
    // The controller believes it is reached at another address, as behind a proxy that
    // does not pass the Host through.
    let c = Controller::start_with(&["--url", "https://ci.example.com/"]);
    let url = format!("http://{}/", c.addr);
    let out = run_cli(
        &[
            "-s",
            &url,
            "-webSocket",
            "-auth",
            &format!("admin:{}", c.token),
            "who-am-i",
        ],
        "",
    );
    assert_eq!(out.code, 15, "{out:?}");
    assert!(
        out.stderr
            .contains("CLI handshake failed with status code 403"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("Unexpected request origin (check your reverse proxy settings)"),
        "{out:?}"
    );
}

#[test]
fn unreachable_controller_is_exit_255_in_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let out = run_cli(&["-s", &url, "who-am-i"], "");
    assert_eq!(out.code, 255, "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn offline_online_and_wait_commands() {
    let c = Controller::start();
    c.create_node("linux-1", "linux");
    let _agent = c.agent("linux-1", &[]);
    assert_eq!(c.cli(&["wait-node-online", "linux-1"]).code, 0);
    assert_eq!(
        c.cli(&["offline-node", "-m", "disk full", "linux-1"]).code,
        0
    );
    let node = c.node_json("linux-1");
    assert_eq!(node["online"], false);
    assert_eq!(node["connected"], true);
    assert!(
        node["state"].as_str().unwrap().contains("disk full"),
        "{node}"
    );
    assert_eq!(c.cli(&["wait-node-offline", "linux-1"]).code, 0);
    let table = c.cli(&["list-nodes"]).stdout;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("offline (temporarily offline by admin: disk full)"),
        "{table}"
    );
    assert_eq!(c.cli(&["online-node", "linux-1"]).code, 0);
    c.wait_online("linux-1", true, DEADLINE);
    assert_eq!(c.cli(&["wait-node-online", "nope"]).code, 3);
}

#[test]
fn agent_command_prints_a_command_that_connects() {
    let c = Controller::start();
    c.create_node("linux-1", "");
    let out = c.cli(&["agent-command", "linux-1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("{}jnlpJars/agent", c.url)),
        "{}",
        out.stdout
    );
    let run_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("./agent "))
        .expect("run line");
    // The secret is read from a file (tests/tests/secrets.rs runs the printed lines as they
    // are); here the file is written in a directory of the test's own.
    assert!(run_line.contains("-secret @secret-file"), "{run_line}");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-file");
    std::fs::write(&secret_file, format!("{}\n", c.secret("linux-1"))).unwrap();
    let secret_arg = format!("@{}", secret_file.display());
    let args: Vec<&str> = run_line
        .split_whitespace()
        .skip(1)
        .map(|a| if a == "@secret-file" { &secret_arg } else { a })
        .collect();
    let agent = steward_tests::Agent::spawn(&args);
    c.wait_online("linux-1", true, DEADLINE);
    drop(agent);
    assert_eq!(c.cli_anonymous(&["agent-command", "linux-1"]).code, 6);
}

#[test]
fn agent_binary_is_served() {
    let c = Controller::start();
    let body = steward_tests::http_get(&c.addr, "/jnlpJars/agent");
    assert_eq!(body.status, 200);
    let expected = std::fs::read(steward_tests::bin("agent")).unwrap();
    assert_eq!(body.body.len(), expected.len());
    assert!(body.body == expected);
}

#[test]
fn root_and_login_answer() {
    let c = Controller::start();
    let root = steward_tests::http_get(&c.addr, "/");
    assert_eq!(root.status, 200);
    assert!(
        root.headers.to_lowercase().contains("x-jenkins: "),
        "{}",
        root.headers
    );
    assert_eq!(steward_tests::http_get(&c.addr, "/login").status, 200);
}

#[test]
fn without_url_the_origin_follows_the_address_used() {
    // No --url: a CLI that reaches the controller as `localhost` is not a cross-site request.
    let c = Controller::start();
    let port = c.addr.rsplit(':').next().unwrap();
    let via_localhost = format!("http://localhost:{port}/");
    let out = run_cli(
        &[
            "-s",
            &via_localhost,
            "-webSocket",
            "-auth",
            &format!("admin:{}", c.token),
            "who-am-i",
        ],
        "",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ADMIN_WHO_AM_I),
        "{out:?}"
    );
}

#[test]
fn pings_must_come_before_the_idle_timeout() {
    let home = tempfile::tempdir().unwrap();
    let out = steward_tests::command("controller")
        .arg("--home")
        .arg(home.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ws-ping-interval",
            "0",
            "--ws-idle-timeout",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ws-ping-interval 0"), "{stderr}");
}

#[test]
fn a_url_with_a_wrong_path_is_not_a_controller_exit_3_in_one_line() {
    let c = Controller::start();
    let url = format!("{}nope/", c.url);
    let auth = format!("admin:{}", c.token);
    for mode in ["-webSocket", "-http"] {
        let out = run_cli(&["-s", &url, mode, "-auth", &auth, "who-am-i"], "");
        assert_eq!(out.code, 3, "{mode}: {out:?}");
        // One line: no fallback notice before it.
        assert_eq!(
            out.stderr,
            format!(
                "{url} does not look like a Jenkins-compatible controller (HTTP 404 there: is \
                 the path in the URL the controller's root?)\n"
            ),
            "{mode}"
        );
    }
}

/// A web server that is not Jenkins: every request gets the same page in `version`
/// (`HTTP/1.0`, as Python's `http.server` answers, or `HTTP/1.1`), and the connection
/// closes. Runs until the test process ends.
fn plain_web_server(version: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // The request head, up to its empty line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let page = "<html><body>Directory listing</body></html>";
            let _ = write!(
                stream,
                "{version} 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

#[test]
fn a_web_server_that_is_not_jenkins_is_exit_3_in_one_line() {
    for version in ["HTTP/1.0", "HTTP/1.1"] {
        let url = plain_web_server(version);
        for mode in ["-webSocket", "-http"] {
            let out = run_cli(&["-s", &url, mode, "who-am-i"], "");
            assert_eq!(out.code, 3, "{version} {mode}: {out:?}");
            assert_eq!(out.stderr.lines().count(), 1, "{version} {mode}: {out:?}");
            assert!(
                out.stderr.starts_with(&format!(
                    "{url} does not look like a Jenkins-compatible controller ("
                )),
                "{version} {mode}: {out:?}"
            );
            assert!(
                out.stderr.contains("HTTP 200") && out.stderr.contains("no X-Jenkins header"),
                "{version} {mode}: {out:?}"
            );
        }
    }
}

#[test]
fn an_unreadable_auth_file_is_exit_255_in_one_line() {
    let c = Controller::start();
    let missing = tempfile::tempdir().unwrap().path().join("nofile");
    let at_file = format!("@{}", missing.display());
    let out = run_cli(&["-s", &c.url, "-auth", &at_file, "who-am-i"], "");
    assert_eq!(out.code, 255, "{out:?}");
    // The one line says it all: no usage after it.
    assert_eq!(
        out.stderr,
        format!(
            "cannot read {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}
