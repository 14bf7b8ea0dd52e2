//! Terminals on nodes, end to end: `create-terminal` and friends, `cli attach-terminal`
//! clients sharing one PTY session on a real agent, and the session outliving its clients,
//! its agent and the controller.

use steward_tests::terminals::{SHELL, TerminalClient};
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
