//! Inbound agents end to end: the `/wsagents/` handshake in Jenkins' order, the real agent
//! in its connection forms, refusals, takeover by cookie, and reconnection after restarts.

use steward_protocol::channel::{Frame, GoAwayCode, Hello, Role};
use steward_protocol::handshake as hs;
use steward_tests::raw::{self, block_on, header, wsagents_url};
use steward_tests::{Controller, DEADLINE, Freestyle, Gate, http_request, wait_until};
use tokio_tungstenite::tungstenite::Message;

fn agent_headers<'a>(name: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (hs::HEADER_NODE_NAME, name),
        (hs::HEADER_SECRET_KEY, secret),
        (hs::HEADER_REMOTING_CAPABILITY, hs::REMOTING_CAPABILITY),
    ]
}

#[test]
fn missing_headers_get_400_and_are_logged() {
    let c = Controller::start();
    let (status, body) =
        block_on(raw::upgrade(&wsagents_url(&c.url), &[("Node-Name", "a")])).refused();
    assert_eq!((status, body.as_str()), (400, hs::MSG_MISSING_HEADERS));
    c.log.wait_for(
        "missing or unreadable header(s): Secret-Key, X-Remoting-Capability",
        DEADLINE,
    );
    assert!(c.log.contains("refused agent connection"));
}

#[test]
fn unknown_node_gets_400_no_such_agent() {
    let c = Controller::start();
    let (status, body) = block_on(raw::upgrade(
        &wsagents_url(&c.url),
        &agent_headers("ghost", &"0".repeat(64)),
    ))
    .refused();
    assert_eq!((status, body.as_str()), (400, "no such agent"));
    c.log.wait_for("node=\"ghost\"", DEADLINE);
}

#[test]
fn wrong_secret_gets_403_agent_retries_and_node_stays_offline() {
    let c = Controller::start();
    c.create_node("linux-1", "linux");
    let (status, body) = block_on(raw::upgrade(
        &wsagents_url(&c.url),
        &agent_headers("linux-1", &"0".repeat(64)),
    ))
    .refused();
    assert_eq!((status, body.as_str()), (403, ""));

    let agent = steward_tests::Agent::spawn(&[
        "-webSocket",
        "-url",
        &c.url,
        "-name",
        "linux-1",
        "-secret",
        &"1".repeat(64),
    ]);
    wait_until(
        DEADLINE,
        "two failed attempts with a backoff between them",
        || {
            agent.output.count("Failed to connect") >= 2
                && agent.output.contains("Waiting 1 seconds before retry")
        },
    );
    assert!(
        agent.output.contains("Handshake error"),
        "{}",
        agent.output.text()
    );
    // What the 403 means, in words.
    assert!(
        agent
            .output
            .contains("The controller refused the secret for node linux-1"),
        "{}",
        agent.output.text()
    );
    assert!(!c.is_online("linux-1"));
    let log = c.log.text();
    assert!(
        log.contains("reason=\"wrong secret\"")
            && log.contains("node=\"linux-1\"")
            && log.contains("remote=127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn agent_connects_with_url_and_name() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "linux");
    let node = c.node_json("linux-1");
    assert_eq!(node["agentVersion"], steward_protocol::STEWARD_VERSION);
    assert_eq!(node["state"], "online");
}

#[test]
fn agent_connects_with_encrypted_jnlp_url() {
    let c = Controller::start();
    c.create_node("jnlp-1", "");
    let work = tempfile::tempdir().unwrap();
    let jnlp = format!("{}computer/jnlp-1/jenkins-agent.jnlp", c.url);
    let secret = c.secret("jnlp-1");
    let agent = steward_tests::Agent::spawn(&[
        "-jnlpUrl",
        &jnlp,
        "-secret",
        &secret,
        "-workDir",
        work.path().to_str().unwrap(),
    ]);
    c.wait_online("jnlp-1", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    wait_until(DEADLINE, "agent log file in the work dir", || {
        std::fs::read_dir(work.path().join("remoting/logs"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    });
}

#[test]
fn agent_connects_with_plain_jnlp_url_and_credentials() {
    let c = Controller::start();
    c.create_node("jnlp-2", "");
    let jnlp = format!("{}computer/jnlp-2/slave-agent.jnlp", c.url);
    let creds = format!("admin:{}", c.token);
    let agent = steward_tests::Agent::spawn(&["-jnlpUrl", &jnlp, "-jnlpCredentials", &creds]);
    c.wait_online("jnlp-2", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
}

#[test]
fn second_agent_with_same_name_is_refused_and_first_stays() {
    let c = Controller::start();
    let _first = c.connected_agent("linux-1", "");
    let before = c.node_json("linux-1")["remoteAddress"].clone();

    let secret = c.secret("linux-1");
    let (status, body) = block_on(raw::upgrade(
        &wsagents_url(&c.url),
        &agent_headers("linux-1", &secret),
    ))
    .refused();
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "linux-1 is already connected to this controller. Rejecting this connection."
    );

    let second = c.agent("linux-1", &[]);
    wait_until(DEADLINE, "second agent refused", || {
        second.output.contains("Failed to connect")
    });
    let after = c.node_json("linux-1");
    assert_eq!(after["online"], true);
    assert_eq!(
        after["remoteAddress"], before,
        "the first connection is the one still live"
    );
}

/// A Steward-protocol connection made by hand: headers, hello exchange.
async fn raw_steward_agent(
    url: &str,
    node: &str,
    secret: &str,
    cookie: Option<&str>,
) -> (raw::Socket, String) {
    let offer = hs::channel_offer(hs::CHANNEL_VERSIONS);
    let mut headers = agent_headers(node, secret);
    headers.push((hs::HEADER_CHANNEL_PROTOCOL, &offer));
    if let Some(c) = cookie {
        headers.push((hs::HEADER_CONNECTION_COOKIE, c));
    }
    let (mut socket, answer) = raw::upgrade(&wsagents_url(url), &headers).await.accepted();
    assert_eq!(
        header(&answer, hs::HEADER_CHANNEL_PROTOCOL),
        Some("steward-channel/1")
    );
    let cookie = header(&answer, hs::HEADER_CONNECTION_COOKIE)
        .expect("cookie")
        .to_owned();
    let Some(Message::Binary(bytes)) = raw::next_data(&mut socket).await else {
        panic!("no hello")
    };
    let Ok(Some(Frame::Hello(hello))) = Frame::decode(&bytes) else {
        panic!("not a hello")
    };
    assert_eq!(
        (hello.role, hello.node_name.as_str()),
        (Role::Controller, node)
    );
    let ours = Frame::Hello(Hello {
        role: Role::Agent,
        channel_version: 1,
        software_version: "raw-test".into(),
        node_name: node.into(),
        features: vec![],
        ping_interval_secs: 0,
        idle_timeout_secs: 60,
    });
    raw::send(&mut socket, Message::Binary(ours.encode().into())).await;
    (socket, cookie)
}

#[test]
fn reconnect_with_live_cookie_takes_over() {
    let c = Controller::start();
    c.create_node("linux-1", "");
    let secret = c.secret("linux-1");
    block_on(async {
        let (mut first, cookie) = raw_steward_agent(&c.url, "linux-1", &secret, None).await;
        assert!(hs::is_well_formed_cookie(&cookie));
        let (_second, cookie2) = raw_steward_agent(&c.url, "linux-1", &secret, Some(&cookie)).await;
        assert_eq!(cookie2, cookie, "the controller keeps the presented cookie");
        // The first connection is told why it ends, then closed.
        let Some(Message::Binary(bytes)) = raw::next_data(&mut first).await else {
            panic!("no goaway")
        };
        let Ok(Some(Frame::GoAway(g))) = Frame::decode(&bytes) else {
            panic!("not a goaway")
        };
        assert_eq!(g.code, GoAwayCode::Replaced);
        assert!(raw::next_data(&mut first).await.is_none());
        assert!(
            tokio::task::spawn_blocking({
                let url = c.url.clone();
                let token = c.token.clone();
                move || {
                    let out = steward_tests::run_cli(
                        &[
                            "-s",
                            &url,
                            "-auth",
                            &format!("admin:{token}"),
                            "list-nodes",
                            "-json",
                        ],
                        "",
                    );
                    out.stdout.contains("\"online\": true")
                }
            })
            .await
            .unwrap()
        );
    });
}

#[test]
fn channel_version_mismatch_is_a_400_naming_both_versions() {
    let c = Controller::start();
    c.create_node("linux-1", "");
    let secret = c.secret("linux-1");
    let mut headers = agent_headers("linux-1", &secret);
    headers.push((hs::HEADER_CHANNEL_PROTOCOL, "steward-channel/99"));
    let (status, body) = block_on(raw::upgrade(&wsagents_url(&c.url), &headers)).refused();
    assert_eq!(status, 400);
    let expected = "channel protocol version mismatch: the agent speaks steward-channel/99, this controller speaks steward-channel/1";
    assert_eq!(body, expected);
    c.log.wait_for(expected, DEADLINE);
}

#[test]
fn java_agent_handshake_is_accepted_and_held_with_a_status() {
    let c = Controller::start();
    c.create_node("java-1", "");
    let secret = c.secret("java-1");
    block_on(async {
        // What agent.jar sends (compat §1.1): no Steward channel header.
        let (socket, answer) =
            raw::upgrade(&wsagents_url(&c.url), &agent_headers("java-1", &secret))
                .await
                .accepted();
        assert_eq!(
            header(&answer, hs::HEADER_REMOTING_CAPABILITY),
            Some(hs::REMOTING_CAPABILITY)
        );
        assert_eq!(
            header(&answer, hs::HEADER_REMOTING_MINIMUM_VERSION),
            Some(hs::REMOTING_MINIMUM_VERSION)
        );
        assert!(hs::is_well_formed_cookie(
            header(&answer, hs::HEADER_CONNECTION_COOKIE).unwrap()
        ));
        assert_eq!(header(&answer, hs::HEADER_CHANNEL_PROTOCOL), None);
        let url = c.url.clone();
        let token = c.token.clone();
        let node = tokio::task::spawn_blocking(move || {
            steward_tests::run_cli(
                &[
                    "-s",
                    &url,
                    "-auth",
                    &format!("admin:{token}"),
                    "list-nodes",
                    "-json",
                ],
                "",
            )
            .stdout
        })
        .await
        .unwrap();
        assert!(
            node.contains(
                "connected with a Java agent.jar, which cannot run builds; use the agent binary from /jnlpJars/agent"
            ),
            "{node}"
        );
        drop(socket);
    });
    assert_eq!(
        c.log
            .count("a Java agent.jar connected: holding the connection"),
        1,
        "logged once"
    );
}

#[test]
fn node_with_another_launcher_is_not_an_inbound_agent() {
    let c = Controller::start();
    let xml = "<slave><name>ssh-1</name><numExecutors>1</numExecutors><launcher class=\"hudson.plugins.sshslaves.SSHLauncher\"/></slave>";
    assert_eq!(c.cli_with_stdin(&["create-node"], xml).code, 0);
    let secret = c.secret("ssh-1");
    let (status, body) = block_on(raw::upgrade(
        &wsagents_url(&c.url),
        &agent_headers("ssh-1", &secret),
    ))
    .refused();
    assert_eq!(
        (status, body.as_str()),
        (400, "ssh-1 is not an inbound agent")
    );
}

#[test]
fn agent_reconnects_after_controller_is_killed_and_restarted() {
    let mut c = Controller::start();
    c.create_node("linux-1", "linux x86_64");
    let before = c.cli(&["get-node", "linux-1"]).stdout;
    let agent = c.agent("linux-1", &[]);
    c.wait_online("linux-1", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    let connects_before = agent.output.count("Connected");

    c.kill_and_restart();
    wait_until(DEADLINE, "agent notices the drop", || {
        agent.output.contains("Terminated")
    });
    c.wait_online("linux-1", true, DEADLINE * 2);
    assert!(agent.output.count("Connected") > connects_before);
    assert_eq!(
        c.cli(&["get-node", "linux-1"]).stdout,
        before,
        "config survives the restart"
    );
}

#[test]
fn disconnect_node_drops_the_agent_which_reconnects() {
    let c = Controller::start();
    let agent = c.connected_agent("linux-1", "");
    let out = c.cli(&["disconnect-node", "-m", "maintenance", "linux-1"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(DEADLINE, "agent told why", || {
        agent.output.contains("maintenance")
    });
    wait_until(DEADLINE, "agent back", || {
        agent.output.count("Connected") >= 2
    });
    c.wait_online("linux-1", true, DEADLINE);
}

#[test]
fn deleted_node_goes_offline_and_its_name_is_refused() {
    let c = Controller::start();
    c.create_node("linux-1", "");
    let agent = c.agent("linux-1", &[]);
    c.wait_online("linux-1", true, DEADLINE);
    assert_eq!(c.cli(&["delete-node", "linux-1"]).code, 0);
    wait_until(DEADLINE, "agent dropped", || {
        agent.output.contains("Terminated")
    });
    wait_until(DEADLINE, "reconnect refused", || {
        c.log.contains("reason=\"no such node\"")
    });
}

#[test]
fn no_reconnect_exits_when_the_connection_ends() {
    let c = Controller::start();
    c.create_node("once", "");
    let mut agent = c.agent("once", &["-noReconnect"]);
    c.wait_online("once", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    assert_eq!(c.cli(&["disconnect-node", "once"]).code, 0);
    assert_eq!(agent.wait_exit(DEADLINE), 0);
    assert_eq!(agent.output.count("Connected"), 1);
}

#[test]
fn no_reconnect_after_bails_out() {
    let c = Controller::start();
    // No such node: every attempt is refused.
    let mut agent = steward_tests::Agent::spawn(&[
        "-webSocket",
        "-url",
        &c.url,
        "-name",
        "ghost",
        "-secret",
        &"0".repeat(64),
        "-noReconnectAfter",
        "2s",
    ]);
    assert_eq!(agent.wait_exit(DEADLINE), 0);
    assert!(
        agent.output.contains("Bailing out after 2s"),
        "{}",
        agent.output.text()
    );
    // The 400's body, with what it means; the minute's wait is cut short by the deadline.
    assert!(
        agent.output.contains(
            "The controller refused the connection: no such agent (it has no node named ghost"
        ),
        "{}",
        agent.output.text()
    );
}

#[test]
fn agent_waits_for_the_controller_to_come_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let agent = steward_tests::Agent::spawn(&[
        "-webSocket",
        "-url",
        &url,
        "-name",
        "early",
        "-secret",
        &"0".repeat(64),
    ]);
    wait_until(DEADLINE, "retries while nothing listens", || {
        agent.output.count("Failed to connect") >= 2
    });
    assert!(
        agent.output.contains("Setting up agent: early"),
        "{}",
        agent.output.text()
    );
    assert!(
        agent.output.contains("Waiting 1 seconds before retry"),
        "{}",
        agent.output.text()
    );
}

#[test]
fn bad_agent_options_print_usage() {
    let mut agent = steward_tests::Agent::spawn(&["-webSocket", "-bogus"]);
    assert_eq!(agent.wait_exit(DEADLINE), 2);
    assert!(
        agent.output.text().to_lowercase().contains("usage"),
        "{}",
        agent.output.text()
    );
    let mut conflict = steward_tests::Agent::spawn(&[
        "-jnlpUrl",
        "http://127.0.0.1:1/x.jnlp",
        "-url",
        "http://127.0.0.1:1/",
    ]);
    assert_eq!(conflict.wait_exit(DEADLINE), 2);
    assert!(
        conflict.output.contains("-jnlpUrl cannot be combined"),
        "{}",
        conflict.output.text()
    );
}

#[test]
fn unicode_node_names_connect() {
    let c = Controller::start();
    let _agent = c.connected_agent("büild-ünï", "");
    assert_eq!(c.node_json("büild-ünï")["state"], "online");
}

#[test]
fn an_empty_secret_is_a_wrong_secret() {
    let c = Controller::start();
    c.create_node("linux-1", "");
    let (status, _) = block_on(raw::upgrade(
        &wsagents_url(&c.url),
        &agent_headers("linux-1", ""),
    ))
    .refused();
    assert_eq!(status, 403);
}

#[test]
fn the_jnlp_document_of_a_node_with_a_space_has_valid_urls() {
    let c = Controller::start();
    c.create_node("my node", "");
    let auth = c.admin_basic_auth_header();
    let get = |path: &str| http_request(&c.addr, "GET", path, &[&auth], b"");
    let answer = get("/computer/my%20node/jenkins-agent.jnlp");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let root = steward_protocol::xml::parse_document(&answer.text()).expect("the JNLP is XML");
    // Valid as written: parsing (which would encode a raw space) leaves each unchanged.
    let written = root.attribute("codebase").expect("a codebase");
    assert_eq!(written, format!("{}computer/my%20node/", c.url));
    let codebase = url::Url::parse(written).expect("the codebase is a URL");
    assert_eq!(codebase.as_str(), written);
    let jar = root
        .child_elements()
        .find(|e| e.name == "resources")
        .and_then(|r| r.child_elements().find(|e| e.name == "jar"))
        .and_then(|j| j.attribute("href"))
        .expect("a jar href");
    assert_eq!(
        url::Url::parse(jar)
            .expect("the jar's href is a URL")
            .as_str(),
        jar
    );

    // The codebase leads to the node's routes.
    let again = get(&format!("{}jenkins-agent.jnlp", codebase.path()));
    assert_eq!(again.status, 200, "{}", again.text());
    let node = get(&format!("{}api/json", codebase.path()));
    assert_eq!(node.status, 200, "{}", node.text());
    assert_eq!(node.json()["displayName"], "my node");

    // And the agent, given the document's address, connects.
    let jnlp = codebase.join("jenkins-agent.jnlp").unwrap();
    let secret = c.secret("my node");
    let work = tempfile::tempdir().unwrap();
    let agent = steward_tests::Agent::spawn(&[
        "-jnlpUrl",
        jnlp.as_str(),
        "-secret",
        &secret,
        "-workDir",
        work.path().to_str().unwrap(),
    ]);
    c.wait_online("my node", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
}

#[test]
fn deleting_a_node_aborts_its_build_at_once_and_its_agent_tries_once_a_minute() {
    let c = Controller::start();
    let (agent, _work) = c.node_with_agent("n3");
    let gate = Gate::new();
    let pid_file = gate.dir().join("pid");
    // The step's shell becomes the long sleep, so its pid is the sleep's.
    let script = format!("echo $$ > \"{}\"\nexec sleep 300\n", pid_file.display());
    c.create_job("long", &Freestyle::shell(&script).label("n3"));
    assert_eq!(c.cli(&["build", "long"]).code, 0);
    let mut pid = String::new();
    wait_until(DEADLINE, "the step's sleep runs", || {
        pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        pid.trim().parse::<u32>().is_ok()
    });
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    assert!(proc_dir.exists());

    let deleted = c.cli(&["delete-node", "n3"]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    // Aborted at once (the reconnect grace, 60 s, would outlast this wait), the step killed
    // on the agent, which was still connected.
    assert_eq!(c.wait_result("long", 1), "ABORTED");
    let console = c.console("long", 1);
    assert!(
        console.ends_with("Build was aborted\nNode n3 was deleted by admin\nFinished: ABORTED\n"),
        "{console}"
    );
    assert!(!console.contains("was lost"), "{console}");
    wait_until(DEADLINE, "the step's process is gone", || {
        !proc_dir.exists()
    });

    // The agent is told why, is refused from then on with the controller's reason, and
    // tries once a minute.
    agent
        .output
        .wait_for("node n3 was deleted by admin", DEADLINE);
    agent.output.wait_for(
        "The controller refused the connection: no such agent (it has no node named n3",
        DEADLINE,
    );
    agent
        .output
        .wait_for("Waiting 60 seconds before retry", DEADLINE);
    assert!(
        !agent.output.contains("Waiting 10 seconds before retry"),
        "{}",
        agent.output.text()
    );

    // Created again, the node gets its agent back at the next try, within the minute.
    c.create_node_with("n3", "", 1, "NORMAL");
    c.wait_online("n3", true, std::time::Duration::from_secs(75));
    assert_eq!(
        agent.output.count("Connected"),
        2,
        "{}",
        agent.output.text()
    );
}

#[test]
fn a_node_held_by_a_java_agent_is_offline_for_builds_and_waits() {
    let c = Controller::start();
    c.create_node("java-1", "");
    c.create_job("j", &Freestyle::shell("true").label("java-1"));
    let secret = c.secret("java-1");
    // What agent.jar sends (compat §1.1), held open on a runtime of its own, which answers
    // the controller's pings while the test runs the cli.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut socket, _) = runtime
        .block_on(raw::upgrade(
            &wsagents_url(&c.url),
            &agent_headers("java-1", &secret),
        ))
        .accepted();
    let held = runtime.spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = socket.next().await {}
    });
    let waiting_online = c.cli_spawn(&["wait-node-online", "java-1"]);

    let reason = "connected with a Java agent.jar, which cannot run builds; use the agent binary from /jnlpJars/agent";
    wait_until(DEADLINE, "the node shows its agent", || {
        c.node_json("java-1")["connected"] == true
    });
    let node = c.node_json("java-1");
    assert_eq!(node["online"], false, "{node}");
    assert_eq!(node["offlineReason"], reason, "{node}");
    assert_eq!(node["state"], format!("offline ({reason})"), "{node}");
    let table = c.cli(&["list-nodes"]).stdout;
    assert!(table.contains(&format!("offline ({reason})")), "{table}");

    let rest = http_request(
        &c.addr,
        "GET",
        "/computer/java-1/api/json",
        &[&c.admin_basic_auth_header()],
        b"",
    )
    .json();
    assert_eq!(rest["offline"], true, "{rest}");
    assert_eq!(rest["offlineCauseReason"], reason, "{rest}");

    // Waits see it offline.
    assert_eq!(c.cli(&["wait-node-offline", "java-1"]).code, 0);
    // A build waits, saying which node and why.
    assert_eq!(c.cli(&["build", "j"]).code, 0);
    c.wait_queued(
        "j",
        "All nodes of label ‘java-1’ are offline; the agent of ‘java-1’ is a Java agent.jar, \
         which cannot run builds",
    );
    let mut waiting_online = waiting_online;
    assert!(!waiting_online.has_exited(), "wait-node-online returned");

    // Our agent in its place: the node is online, the wait ends and the build runs.
    held.abort();
    drop(runtime);
    let work = tempfile::tempdir().unwrap();
    let _agent = c.agent("java-1", &["-workDir", work.path().to_str().unwrap()]);
    let out = waiting_online.wait(DEADLINE);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.wait_result("j", 1), "SUCCESS");
}
