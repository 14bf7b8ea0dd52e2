//! Terminals on nodes, end to end: `create-terminal` and friends, `cli attach-terminal`
//! clients sharing one PTY session on a real agent, and the session outliving its clients,
//! its agent and the controller.

use steward_tests::terminals::{SHELL, TerminalClient, holders};
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
    let mut ro = TerminalClient::attach_tty(&c, "t1", &["-read-only"], 20, 5);
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
    assert!(holders(work.path()).is_empty(), "nothing runs before an attach");

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
    let (c, _agent, _work) = setup(&[
        "-param",
        "cmd=echo started-$((20+3)); read line; exit 3",
    ]);
    let mut a = TerminalClient::attach(&c, "t1", &[]);
    a.wait_for("started-23", DEADLINE);
    a.type_text("bye\r");
    a.wait_for("=== The program exited with status 3; it starts again in 10 s ===", DEADLINE);
    assert_eq!(state(&c, "t1"), "restarting");
    // The client stays attached and sees the new run.
    a.wait_for_count("started-23", 2, DEADLINE + std::time::Duration::from_secs(10));
    assert_eq!(state(&c, "t1"), "running");
    // Two runs, two recordings: the first one ended.
    let out = c.cli(&["list-recordings", "t1", "-json"]);
    let recordings: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(recordings.as_array().unwrap().len(), 2, "{recordings}");
    assert!(recordings[0]["endedMs"].is_i64(), "{recordings}");
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
    assert_eq!(holders(work.path()), holder, "the holder lives on without its agent");
    // Typed while the node is away: dropped, and the client is told.
    let _agent = c.start_agent_in(NODE, work.path());
    steward_tests::wait_until(DEADLINE, "the terminal runs again", || {
        state(&c, "t1") == "running"
    });
    a.type_text("echo $MARK\r");
    a.wait_for("kept-42", DEADLINE);
    assert_eq!(holders(work.path()), holder, "the same holder, not a new one");
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
