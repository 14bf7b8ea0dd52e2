//! The REST API (compat §10) through python-jenkins, as installed by `scripts/test`.

use std::process::Command;

use steward_tests::{Controller, DEADLINE};

#[test]
fn python_jenkins_manages_nodes() {
    let c = Controller::start();
    c.create_node("agent-1", "linux");
    let _agent = c.agent("agent-1", &[]);
    c.wait_online("agent-1", true, DEADLINE);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/nodes_api.py");
    let out = Command::new("python3")
        .args([script, &c.url, "admin", &c.token, "agent-1"])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'jenkins'"),
        "python-jenkins is not installed: run the tests with scripts/test"
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
}

#[test]
fn rest_api_refuses_anonymous_and_bad_tokens() {
    let c = Controller::start();
    let anonymous = steward_tests::http_get(&c.addr, "/computer/api/json");
    assert_eq!(anonymous.status, 403);
    assert!(
        String::from_utf8_lossy(&anonymous.body)
            .contains("anonymous is missing the Overall/Read permission")
    );
    assert_eq!(steward_tests::http_get(&c.addr, "/me/api/json").status, 403);
    assert_eq!(
        steward_tests::http_get(&c.addr, "/crumbIssuer/api/json").status,
        404
    );
}
