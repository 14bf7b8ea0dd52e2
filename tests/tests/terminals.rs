//! Terminals on nodes, end to end: `create-terminal` and friends, `cli attach-terminal`
//! clients sharing one PTY session on a real agent, and the session outliving its clients,
//! its agent and the controller.

use steward_tests::terminals::{SHELL, TerminalClient, asciinema, holders};
use steward_tests::{Controller, DEADLINE};

const NODE: &str = "n1";

fn create(c: &Controller, name: &str, extra: &[&str]) {
    let mut args = vec!["create-terminal", name, "-node", NODE];
    args.extend_from_slice(extra);
    let out = c.cli(&args);
    assert_eq!(out.code, 0, "create-terminal: {out:?}");
}

#[test]
fn two_clients_share_one_shell() {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let _agent = c.start_agent_in(NODE, work.path());
    create(&c, "t1", &["-param", &format!("cmd={SHELL}")]);

    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("[Enter '^Ec?' for help]", DEADLINE);
    a.wait_for("$ ", DEADLINE);
    let mut b = TerminalClient::attach(&c, "t1", &[]);
    b.wait_for("$ ", DEADLINE);

    a.type_text("echo from-$((40+2))\r");
    a.wait_for("from-42", DEADLINE);
    b.wait_for("from-42", DEADLINE);
    b.type_text("echo second-$((1+1))\r");
    a.wait_for("second-2", DEADLINE);
    b.wait_for("second-2", DEADLINE);

    assert_eq!(a.detach(DEADLINE), 0, "{}", a.text());
    assert!(a.text().contains("[detached]"));
    assert_eq!(b.detach(DEADLINE), 0);
}

fn setup(terminal_args: &[&str]) -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    setup_with(&[], terminal_args)
}

fn setup_with(
    controller_args: &[&str],
    terminal_args: &[&str],
) -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start_with(controller_args);
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    create(&c, "t1", terminal_args);
    (c, agent, work)
}

fn shell() -> Vec<String> {
    vec!["-param".into(), format!("cmd={SHELL}")]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The terminal's `get-terminal -json`.
fn terminal_json(c: &Controller, name: &str) -> serde_json::Value {
    let out = c.cli(&["get-terminal", name, "-json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn read_only_clients_watch_and_their_keys_are_dropped() {
    let (c, _agent, _work) = setup(&args(&shell()));
    let mut rw = TerminalClient::attach(&c, "t1", &[]);
    rw.wait_for("$ ", DEADLINE);
    let mut ro = TerminalClient::attach(&c, "t1", &["-read-only"]);
    ro.wait_for("=== Attached to read-only session ===", DEADLINE);
    ro.type_text("echo nope-$((1+1))\r");
    rw.type_text("echo yes-$((2+2))\r");
    rw.wait_for("yes-4", DEADLINE);
    ro.wait_for("yes-4", DEADLINE);
    // The read-only keys reached nothing: not the shell, not its echo.
    assert!(!rw.text().contains("nope"), "{}", rw.text());
    assert!(!ro.text().contains("nope-2"), "{}", ro.text());
    // ^Ecw lists both, with their modes.
    ro.type_text("\x05cw");
    ro.wait_for("2 client(s) attached to t1", DEADLINE);
    assert!(ro.text().contains("read-only") && ro.text().contains("read-write"));
    assert_eq!(ro.detach(DEADLINE), 0);
    assert_eq!(rw.detach(DEADLINE), 0);
}

#[test]
fn the_terminal_takes_the_smallest_read_write_window() {
    let (c, _agent, _work) = setup(&args(&shell()));
    let mut a = TerminalClient::attach_tty(&c, "t1", &[], 120, 40);
    a.wait_for("$ ", DEADLINE);
    let mut b = TerminalClient::attach_tty(&c, "t1", &[], 100, 50);
    // A read-only client's small window does not count.
    let ro = TerminalClient::attach_tty(&c, "t1", &["-read-only"], 20, 5);
    ro.wait_for("read-only session", DEADLINE);
    b.wait_for("$ ", DEADLINE);
    // `stty size` prints ROWS COLS; the marker comes after, so the size is read once the
    // resize has reached the shell.
    a.type_text("stty size; echo size-$((1))\r");
    a.wait_for("size-1", DEADLINE);
    assert!(a.text().contains("40 100"), "{}", a.text());
    b.detach(DEADLINE);
    a.type_text("stty size; echo size-$((2))\r");
    a.wait_for("size-2", DEADLINE);
    assert!(a.text().contains("40 120"), "{}", a.text());
    a.resize_tty(90, 30);
    // The window change travels as a message; wait for the shell to see it.
    let mut n = 3;
    steward_tests::wait_until(DEADLINE, "the resize reaches the shell", || {
        a.type_text(&format!("stty size; echo size-$(({n}))\r"));
        a.wait_for(&format!("size-{n}"), DEADLINE);
        n += 1;
        a.text().contains("30 90")
    });
    assert_eq!(a.detach(DEADLINE), 0);
    drop(ro);
}

#[test]
fn a_client_that_comes_back_sees_the_screen_and_replays_the_last_lines() {
    let (c, _agent, _work) = setup(&args(&shell()));
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("for i in $(seq 1 40); do echo row-$i; done; echo done-$((3*3))\r");
    a.wait_for("done-9", DEADLINE);
    assert_eq!(a.detach(DEADLINE), 0);

    // Nobody attached; the shell runs on. A new client gets the screen at once.
    let mut b = TerminalClient::attach(&c, "t1", &[]);
    b.wait_for("done-9", DEADLINE);
    assert!(b.text().contains("row-40"), "{}", b.text());
    // The screen is 24 rows: rows scrolled off are not on it...
    assert!(!b.text().contains("row-10\r"), "{}", b.text());
    // ...but ^Ecr replays the last 30 lines, which reach back to them.
    b.type_text("\x05cr");
    b.wait_for("row-14", DEADLINE);
    assert!(b.text().contains("row-39"), "{}", b.text());
    assert_eq!(b.detach(DEADLINE), 0);
}

fn state(c: &Controller, name: &str) -> String {
    terminal_json(c, name)["status"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_ondemand_terminal_runs_from_the_first_attach_until_it_has_been_idle() {
    let mut terminal = shell();
    terminal.extend(["-ondemand".into(), "true".into()]);
    let (c, _agent, work) = setup_with(&["--terminal-ondemand-idle", "2"], &args(&terminal));
    assert_eq!(state(&c, "t1"), "idle");
    assert!(
        holders(work.path()).is_empty(),
        "nothing runs before an attach"
    );

    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    assert_eq!(state(&c, "t1"), "running");
    assert_eq!(holders(work.path()).len(), 1);
    a.type_text("export KEEP=me-$((5*5))\r");
    a.wait_for("$ ", DEADLINE);
    assert_eq!(a.detach(DEADLINE), 0);
    // Back within the idle time: the same shell.
    let mut b = TerminalClient::attach(&c, "t1", &[]);
    b.type_text("echo $KEEP\r");
    b.wait_for("me-25", DEADLINE);
    assert_eq!(b.detach(DEADLINE), 0);
    // Idle past it: stopped, and nothing left on the node.
    steward_tests::wait_until(DEADLINE, "the idle terminal stops", || {
        state(&c, "t1") == "idle" && holders(work.path()).is_empty()
    });
}

#[test]
fn a_program_that_exits_starts_again_after_10_s() {
    let (c, _agent, _work) = setup(&["-param", "cmd=echo started-$((20+3)); read line; exit 3"]);
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("started-23", DEADLINE);
    a.type_text("bye\r");
    a.wait_for(
        "=== The program exited with status 3; it starts again in 10 s ===",
        DEADLINE,
    );
    assert_eq!(state(&c, "t1"), "restarting");
    // The client stays attached and sees the new run.
    a.wait_for_count(
        "started-23",
        2,
        DEADLINE + std::time::Duration::from_secs(10),
    );
    assert_eq!(state(&c, "t1"), "running");
    // Two runs, two recordings: the first one ended.
    let recordings = || -> serde_json::Value {
        serde_json::from_str(&c.cli(&["list-recordings", "t1", "-json"]).stdout).unwrap()
    };
    let listed = recordings();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed[0]["endedMs"].is_i64(), "{listed}");
    // Keep one: when the second run ends, the older one goes, file and all; the second
    // stays beside the third, which runs.
    let first = c.home().join(format!(
        "terminals/t1/recordings/{}.cast",
        listed[0]["id"].as_str().unwrap()
    ));
    assert!(first.exists());
    assert_eq!(
        c.cli(&["update-terminal", "t1", "-param", "keep=1"]).code,
        0
    );
    a.type_text("bye\r");
    a.wait_for_count(
        "started-23",
        3,
        DEADLINE + std::time::Duration::from_secs(10),
    );
    let listed = recordings();
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "{listed}\n{}",
        a.text()
    );
    assert!(
        listed[0]["endedMs"].is_i64() && listed[1]["endedMs"].is_null(),
        "{listed}"
    );
    assert!(!first.exists());
    assert!(
        !listed
            .to_string()
            .contains(first.file_stem().unwrap().to_str().unwrap())
    );
    assert_eq!(a.detach(DEADLINE), 0);
}

#[test]
fn the_shell_outlives_its_agent() {
    let (c, mut agent, work) = setup(&args(&shell()));
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("export MARK=kept-$((6*7))\r");
    a.wait_for_count("$ ", 2, DEADLINE);
    let holder = holders(work.path());
    assert_eq!(holder.len(), 1);

    agent.kill();
    c.wait_online(NODE, false, DEADLINE);
    a.wait_for("=== Lost touch with node n1", DEADLINE);
    assert_eq!(
        holders(work.path()),
        holder,
        "the holder lives on without its agent"
    );
    // Typed while the node is away: dropped, and the client is told.
    let _agent = c.start_agent_in(NODE, work.path());
    steward_tests::wait_until(DEADLINE, "the terminal runs again", || {
        state(&c, "t1") == "running"
    });
    a.type_text("echo $MARK\r");
    a.wait_for("kept-42", DEADLINE);
    assert_eq!(
        holders(work.path()),
        holder,
        "the same holder, not a new one"
    );
    assert_eq!(a.detach(DEADLINE), 0);
}

#[test]
fn the_shell_and_its_screen_outlive_a_controller_restart() {
    let (mut c, _agent, work) = setup(&args(&shell()));
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("export MARK=still-$((7*7)); echo before-$((1+1))\r");
    a.wait_for("before-2", DEADLINE);
    let holder = holders(work.path());

    c.kill_and_restart();
    a.wait_exit(DEADLINE);
    c.wait_online(NODE, true, DEADLINE);
    let mut b = TerminalClient::attach(&c, "t1", &[]);
    // The screen as it was, from the holder's backlog.
    b.wait_for("before-2", DEADLINE);
    b.type_text("echo $MARK\r");
    b.wait_for("still-49", DEADLINE);
    assert_eq!(holders(work.path()), holder);
    assert_eq!(b.detach(DEADLINE), 0);
}

#[test]
fn a_run_is_recorded_as_asciicast_that_asciinema_plays() {
    let (c, _agent, _work) = setup(&args(&shell()));
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("echo recorded-$((8*8))\r");
    a.wait_for("recorded-64", DEADLINE);
    assert_eq!(c.cli(&["stop-terminal", "t1"]).code, 0);
    a.wait_for("=== Terminal t1 was stopped ===", DEADLINE);
    steward_tests::wait_until(DEADLINE, "the run ends", || state(&c, "t1") == "off");

    let out = c.cli(&["list-recordings", "t1", "-json"]);
    let recordings: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let recording = &recordings[0];
    assert!(recording["endedMs"].is_i64(), "{recordings}");
    let id = recording["id"].as_str().unwrap();
    let path = c.home().join(format!("terminals/t1/recordings/{id}.cast"));

    // asciinema reads it: the output as it was shown.
    let played = asciinema().arg("cat").arg(&path).output().unwrap();
    assert!(played.status.success(), "{played:?}");
    let text = String::from_utf8_lossy(&played.stdout);
    assert!(text.contains("recorded-64"), "{text}");
    // The header and the keystrokes, as typed.
    let cast = std::fs::read_to_string(&path).unwrap();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["title"], "t1");
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(80), Some(24))
    );
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert!(
        header["command"].as_str().unwrap().contains("bash"),
        "{header}"
    );
    let typed: String = lines
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e[1] == "i")
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(typed, "echo recorded-$((8*8))\r");

    // The same over REST, and replayed by the CLI.
    let auth = c.admin_basic_auth_header();
    let rest = steward_tests::http_request(
        &c.addr,
        "GET",
        &format!("/terminals/t1/recordings/{id}.cast"),
        &[auth.as_str()],
        b"",
    );
    assert_eq!(rest.status, 200);
    assert_eq!(rest.text(), cast);
    let replayed = c.cli(&["replay-terminal", "t1", "-speed", "0"]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert!(replayed.stdout.contains("recorded-64"), "{replayed:?}");
    assert_eq!(a.detach(DEADLINE), 0);
}

#[test]
fn bad_settings_are_refused_with_their_reason_and_nothing_is_stored() {
    let c = Controller::start();
    c.create_node_with(NODE, "", 1, "NORMAL");
    create(&c, "good", &[]);
    let refusals: &[(&[&str], i32, &str)] = &[
        (
            &["create-terminal", "a/b", "-node", NODE],
            3,
            "‘/’ is an unsafe character in terminal name ‘a/b’",
        ),
        (
            &["create-terminal", "x", "-node", "nowhere"],
            3,
            "No such node ‘nowhere’",
        ),
        (
            &[
                "create-terminal",
                "x",
                "-node",
                NODE,
                "-param",
                "colour=red",
            ],
            3,
            "unknown parameter ‘colour’ for driver cmd",
        ),
        (
            &["create-terminal", "x", "-node", NODE, "-param", "keep"],
            3,
            "-param ‘keep’ is not KEY=VALUE",
        ),
        (
            &["create-terminal", "x", "-node", NODE, "-param", "keep=-1"],
            3,
            "parameter keep: ‘-1’ is not a whole number",
        ),
        (
            &["create-terminal", "x", "-node", NODE, "-driver", "telnet"],
            3,
            "unknown driver ‘telnet’",
        ),
        (
            &["create-terminal", "x", "-node", NODE, "-ondemand", "maybe"],
            3,
            "-ondemand ‘maybe’ is not true or false",
        ),
        (
            &["create-terminal", "good", "-node", NODE],
            4,
            "A terminal named ‘good’ already exists",
        ),
        (&["create-terminal", "x"], 2, "Option \"-node\" is required"),
        (
            &["update-terminal", "good", "-param", "record-input=yes"],
            3,
            "parameter record-input: ‘yes’ is not true or false",
        ),
        (
            &["update-terminal", "ghost", "-ondemand", "true"],
            3,
            "No such terminal ‘ghost’",
        ),
        (
            &["delete-terminal", "good", "ghost"],
            3,
            "No such terminal ‘ghost’",
        ),
        (&["attach-terminal", "ghost"], 3, "No such terminal ‘ghost’"),
    ];
    for (command, code, message) in refusals {
        let out = c.cli(command);
        assert_eq!(out.code, *code, "{command:?}: {out:?}");
        assert!(out.stderr.contains(message), "{command:?}: {out:?}");
    }
    let listed = c.cli(&["list-terminals"]);
    assert_eq!(listed.stdout.lines().count(), 1, "{listed:?}");
    assert!(listed.stdout.starts_with("good\tn1\t"), "{listed:?}");
    let good = terminal_json(&c, "good");
    assert_eq!(
        good["params"],
        serde_json::json!({}),
        "the failed update changed nothing"
    );
    assert_eq!(good["ondemand"], false);

    // The REST API refuses the same way.
    let auth = c.admin_basic_auth_header();
    let post = |body: &str| {
        steward_tests::http_request(
            &c.addr,
            "POST",
            "/terminals",
            &[auth.as_str(), "Content-Type: application/json"],
            body.as_bytes(),
        )
    };
    let bad = post(r#"{"name":"y","node":"nowhere"}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.text().contains("No such node ‘nowhere’"),
        "{}",
        bad.text()
    );
    let bad = post(r#"{"name":"y","node":"n1","colour":1}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(post(r#"{"name":"good","node":"n1"}"#).status, 409);
    assert_eq!(
        post(r#"{"name":"rest","node":"n1","ondemand":true}"#).status,
        201
    );
    assert_eq!(c.cli(&["list-terminals"]).stdout.lines().count(), 2);
}

#[test]
fn a_client_that_falls_behind_is_dropped_and_the_others_keep_up() {
    let (c, _agent, _work) = setup(&args(&shell()));
    let mut fast = TerminalClient::attach(&c, "t1", &[]);
    fast.wait_for("$ ", DEADLINE);
    let _stalled = TerminalClient::attach_stalled(&c, "t1");
    steward_tests::wait_until(DEADLINE, "both attached", || {
        terminal_json(&c, "t1")["clients"].as_array().unwrap().len() == 2
    });
    // 40 MB of output: far more than the pipe, the socket buffers and the 4 MiB a client
    // may fall behind.
    fast.type_text("head -c 40000000 /dev/zero | tr '\\0' x; echo; echo flood-$((9*9))\r");
    fast.wait_for("flood-81", DEADLINE * 3);
    steward_tests::wait_until(DEADLINE, "the stalled client is dropped", || {
        terminal_json(&c, "t1")["clients"].as_array().unwrap().len() == 1
    });
    // The one left is the one reading.
    fast.type_text("echo still-$((2*2))\r");
    fast.wait_for("still-4", DEADLINE);
    assert_eq!(fast.detach(DEADLINE), 0);
}

#[test]
fn lines_go_to_console_log_and_to_tcp_and_udp_listeners_and_a_dead_target_blocks_nothing() {
    use std::io::BufRead;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(DEADLINE)).unwrap();
    // A port nothing listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        settings.path(),
        serde_json::json!({"terminals": {"logs": {
            "tcp": [{"address": dead.to_string()}, {"address": tcp.local_addr().unwrap().to_string()}],
            "udp": [{"address": udp.local_addr().unwrap().to_string()}],
        }}})
        .to_string(),
    )
    .unwrap();
    let path = settings.path().to_str().unwrap().to_owned();
    let (c, _agent, _work) = setup_with(&["--settings", &path], &args(&shell()));
    let (stream, _) = tcp.accept().unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut tcp_lines = std::io::BufReader::new(stream).lines();

    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("echo logged-$((3*11))\r");
    a.wait_for("logged-33", DEADLINE);

    // Lines are logged as the terminal shows them, escapes and all (bash's bracketed-paste
    // switch precedes its output).
    let is_output = |l: &serde_json::Value| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("logged-33"))
    };
    let mut tcp_seen = Vec::new();
    while !tcp_seen.iter().any(is_output) {
        let line = tcp_lines.next().expect("a line over TCP").unwrap();
        tcp_seen.push(serde_json::from_str(&line).unwrap());
    }
    assert_eq!(tcp_seen[0]["type"], "event");
    assert_eq!(tcp_seen[0]["message"], "connected");
    let line = tcp_seen.last().unwrap();
    assert!(!line["message"].as_str().unwrap().contains('\r'), "{line}");
    assert_eq!(
        (
            line["type"].as_str(),
            line["node"].as_str(),
            line["terminal"].as_str()
        ),
        (Some("console"), Some("n1"), Some("t1"))
    );
    assert!(line["date"].as_str().unwrap().ends_with('Z'), "{line}");
    // The shell echoes the command line, CR taken out.
    assert!(
        tcp_seen.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("echo logged-$((3*11))"))),
        "{tcp_seen:?}"
    );

    let mut buf = [0u8; 8192];
    let mut udp_seen = Vec::new();
    while !udp_seen.iter().any(is_output) {
        let n = udp.recv(&mut buf).expect("a datagram");
        udp_seen.push(serde_json::from_slice(&buf[..n]).unwrap());
    }

    // The file, with its markers, reopened after a rename and SIGHUP.
    let log = c.home().join("terminals/t1/console.log");
    steward_tests::wait_until(DEADLINE, "the line in console.log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("logged-33\n")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with("] [connected]"),
        "{text}"
    );
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    c.signal("HUP");
    steward_tests::wait_until(DEADLINE, "a new console.log", || {
        a.type_text("echo rotated-$((2+5))\r");
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("rotated-7\n")
    });
    assert!(
        !std::fs::read_to_string(log.with_extension("log.1"))
            .unwrap()
            .contains("rotated-7\n")
    );

    // More output than the dead target's queue holds (256 chunks): dropped and counted, and the
    // session never waits for it.
    a.type_text("seq 1 3000000; echo seq-$((4*4))\r");
    a.wait_for("seq-16", DEADLINE);
    let auth = c.admin_basic_auth_header();
    steward_tests::wait_until(DEADLINE, "the dead target's drops counted", || {
        let listed =
            steward_tests::http_request(&c.addr, "GET", "/terminals", &[auth.as_str()], b"").json();
        let outputs = listed["logOutputs"].as_array().unwrap().clone();
        assert_eq!(outputs.len(), 4, "{listed}");
        assert_eq!(outputs[1]["output"], format!("tcp {dead}"));
        outputs[1]["dropped"].as_u64().unwrap() > 10_000
    });
    assert_eq!(a.detach(DEADLINE), 0);
}

#[test]
fn the_ssh_driver_reaches_a_machine_through_the_node() {
    let user = steward_tests::ssh::SshUser::new();
    let sshd = steward_tests::terminals::Sshd::start(&user.dir().join("id.pub"));
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let port = format!("port={}", sshd.port);
    let key = format!("key=@{}", user.key().display());
    let login = format!("user={}", me.trim());
    let (c, _agent, work) = setup(&[
        "-driver",
        "ssh",
        "-param",
        "host=127.0.0.1",
        "-param",
        &port,
        "-param",
        &login,
        "-param",
        &key,
    ]);
    // The key is a secret: never shown back.
    let shown = c.cli(&["get-terminal", "t1"]);
    assert!(shown.stdout.contains("key=****"), "{shown:?}");
    assert!(!shown.stdout.contains("PRIVATE KEY"), "{shown:?}");

    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.type_text("echo via-ssh-$((5*5)); echo $SSH_CONNECTION\r");
    a.wait_for("via-ssh-25", DEADLINE);
    // The shell is sshd's: its session has the connection's addresses.
    a.wait_for(&format!("127.0.0.1 {}", sshd.port), DEADLINE);
    // The host key was trusted on first use and kept.
    let known: Vec<_> = std::fs::read_dir(work.path().join("remoting/terminals"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("known_host")).unwrap_or_default())
        .collect();
    assert_eq!(known, vec![format!("{}\n", sshd.host_key)]);
    assert_eq!(a.detach(DEADLINE), 0);

    // A pinned key that is not the server's is refused, and said so on the terminal.
    let wrong = "host-key=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(c.cli(&["update-terminal", "t1", "-param", wrong]).code, 0);
    let b = TerminalClient::attach(&c, "t1", &[]);
    b.wait_for("not the expected SHA256:AAAA", DEADLINE * 2);
}

#[test]
fn a_cli_protocol_client_without_a_window_attaches_through_the_command() {
    use steward_protocol::plaincli::{self, Frame};
    use steward_tests::frames;
    let (c, _agent, _work) = setup(&args(&shell()));
    // PlainCLI frames over /cli/ws, as jenkins-cli.jar sends them.
    let origin = c.url.trim_end_matches('/').to_owned();
    let auth = c.admin_basic_auth_header();
    let (name, value) = auth.split_once(": ").unwrap();
    let (status, head, ws) = frames::upgrade(
        &c.addr,
        "/cli/ws",
        &[("Origin", origin.as_str()), (name, value)],
    );
    assert_eq!(status, 101, "{head}");
    let mut ws = ws.unwrap();
    let send = |ws: &mut frames::RawWs, frame: Frame| {
        let payload = plaincli::encode_ws(&frame).unwrap();
        ws.write(&frames::client_frame(true, frames::op::BINARY, &payload))
            .unwrap();
    };
    for frame in [
        Frame::Arg("attach-terminal".into()),
        Frame::Arg("t1".into()),
        Frame::Encoding("UTF-8".into()),
        Frame::Start,
    ] {
        send(&mut ws, frame);
    }
    let mut stdout = Vec::new();
    let mut exit = None;
    let read_until =
        |ws: &mut frames::RawWs, text: &str, stdout: &mut Vec<u8>, exit: &mut Option<i32>| {
            while !String::from_utf8_lossy(stdout).contains(text) {
                let frame = ws.read_frame(DEADLINE).unwrap_or_else(|| {
                    panic!("no {text:?} in {:?}", String::from_utf8_lossy(stdout))
                });
                match frame.payload.first() {
                    Some(&plaincli::op::STDOUT) => stdout.extend_from_slice(&frame.payload[1..]),
                    Some(&plaincli::op::EXIT) => {
                        *exit = Some(i32::from_be_bytes(frame.payload[1..5].try_into().unwrap()));
                        return;
                    }
                    _ => {}
                }
            }
        };
    read_until(&mut ws, "$ ", &mut stdout, &mut exit);
    assert!(String::from_utf8_lossy(&stdout).starts_with("[Enter '^Ec?' for help]"));
    send(
        &mut ws,
        Frame::Stdin(b"echo jar-$((3*3))\r".to_vec().into()),
    );
    read_until(&mut ws, "jar-9", &mut stdout, &mut exit);
    send(&mut ws, Frame::Stdin(b"\x05cw".to_vec().into()));
    read_until(
        &mut ws,
        "1 client(s) attached to t1",
        &mut stdout,
        &mut exit,
    );
    send(&mut ws, Frame::Stdin(b"\x05c.".to_vec().into()));
    read_until(&mut ws, "[detached]", &mut stdout, &mut exit);
    while exit.is_none() {
        read_until(&mut ws, "\u{0}never", &mut stdout, &mut exit);
    }
    assert_eq!(exit, Some(0));
}

#[test]
fn the_rest_api_changes_terminals_one_by_one_and_in_bulk() {
    let c = Controller::start();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let auth = c.admin_basic_auth_header();
    let request = |method: &str, path: &str, body: &str| {
        steward_tests::http_request(
            &c.addr,
            method,
            path,
            &[auth.as_str(), "Content-Type: application/json"],
            body.as_bytes(),
        )
    };
    let created = request(
        "POST",
        "/bulk/terminals",
        r#"{"terminals":[{"name":"a","node":"n1","ondemand":true},{"name":"b","node":"n1","params":{"cmd":"cat"}},{"name":"c","node":"nowhere"}]}"#,
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let results = created.json();
    let statuses: Vec<_> = results["terminals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![201, 201, 400], "{results}");
    assert!(
        results["terminals"][2]["message"]
            .as_str()
            .unwrap()
            .contains("No such node ‘nowhere’")
    );

    // One: turned off, then its parameters changed.
    assert_eq!(request("PUT", "/terminals/b?state=off", "").status, 204);
    assert_eq!(terminal_json(&c, "b")["enabled"], false);
    assert_eq!(
        request("PUT", "/terminals/b", r#"{"params":{"cmd":"","keep":"3"}}"#).status,
        204
    );
    assert_eq!(
        terminal_json(&c, "b")["params"],
        serde_json::json!({"keep": "3"})
    );
    assert_eq!(request("PUT", "/terminals/b?state=maybe", "").status, 400);
    assert_eq!(request("GET", "/terminals/zzz", "").status, 404);

    // Many: switched on, then deleted, one unknown among them.
    let on = request(
        "PUT",
        "/bulk/terminals?state=on",
        r#"{"terminals":["a","b","zzz"]}"#,
    )
    .json();
    let statuses: Vec<_> = on["terminals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![204, 204, 404], "{on}");
    assert_eq!(terminal_json(&c, "b")["enabled"], true);
    let gone = request(
        "DELETE",
        "/bulk/terminals",
        r#"{"terminals":["a",{"name":"b"}]}"#,
    )
    .json();
    assert_eq!(gone["terminals"][1]["status"], 204, "{gone}");
    let listed = request("GET", "/terminals", "").json();
    assert_eq!(listed["terminals"], serde_json::json!([]), "{listed}");
}

#[test]
fn a_terminal_deleted_while_its_node_was_away_is_stopped_when_the_node_comes_back() {
    let (c, mut agent, work) = setup(&args(&shell()));
    steward_tests::wait_until(DEADLINE, "the terminal runs", || {
        state(&c, "t1") == "running" && holders(work.path()).len() == 1
    });
    agent.kill();
    c.wait_online(NODE, false, DEADLINE);
    assert_eq!(c.cli(&["delete-terminal", "t1"]).code, 0);
    assert_eq!(holders(work.path()).len(), 1, "nobody could stop it yet");
    let _agent = c.start_agent_in(NODE, work.path());
    steward_tests::wait_until(DEADLINE, "the holder stopped", || {
        holders(work.path()).is_empty()
    });
    c.log
        .wait_for("stopping a terminal this node should not run", DEADLINE);
}

#[test]
fn only_the_oldest_read_write_client_answers_the_programs_questions() {
    // `cat -v` shows what reaches the program: ESC as `^[`.
    let (c, _agent, _work) = setup(&["-param", "cmd=stty raw -echo; exec cat -v"]);
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("[Enter", DEADLINE);
    let mut b = TerminalClient::attach(&c, "t1", &[]);
    steward_tests::wait_until(DEADLINE, "both attached", || {
        terminal_json(&c, "t1")["clients"].as_array().unwrap().len() == 2
    });
    // Each terminal answers a cursor-position question; the program gets one answer.
    b.type_text("\x1b[7;7R");
    a.type_text("\x1b[5;10R");
    b.type_text("b-typed");
    a.wait_for("b-typed", DEADLINE);
    let text = a.text();
    assert!(text.contains("^[[5;10R"), "{text}");
    assert!(!text.contains("^[[7;7R"), "{text}");
    assert_eq!(a.detach(DEADLINE), 0);
    assert_eq!(b.detach(DEADLINE), 0);
}

#[test]
fn a_tls_log_target_gets_the_lines_over_tls() {
    let cert = steward_tests::openssl::self_signed_localhost();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert.cert_pem).unwrap();
    std::fs::write(&key_file, &cert.key_pem).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // openssl's own TLS server prints what it receives.
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
        ])
        .arg(&cert_file)
        .arg("-key")
        .arg(&key_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let received = steward_tests::Captured::default();
    received.follow(server.stdout.take().unwrap());
    steward_tests::wait_until(DEADLINE, "openssl s_server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        serde_json::json!({"terminals": {"logs": {"file": false, "tcp": [
            {"address": format!("localhost:{port}"), "tls": true, "ca": cert_file}
        ]}}})
        .to_string(),
    )
    .unwrap();
    let (c, _agent, _work) =
        setup_with(&["--settings", settings.to_str().unwrap()], &args(&shell()));
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("$ ", DEADLINE);
    a.type_text("echo over-tls-$((6+6))\r");
    received.wait_for("over-tls-12\"", DEADLINE);
    let line = received
        .text()
        .lines()
        .find(|l| l.contains("over-tls-12\""))
        .unwrap()
        .to_owned();
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (json["type"].as_str(), json["terminal"].as_str()),
        (Some("console"), Some("t1"))
    );
    assert!(
        !c.home().join("terminals/t1/console.log").exists(),
        "the file output is off"
    );
    assert_eq!(a.detach(DEADLINE), 0);
    let _ = server.kill();
    let _ = server.wait();
}
