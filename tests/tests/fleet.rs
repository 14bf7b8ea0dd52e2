//! The fleet load tool end to end at small N: simulated agents (the real agent's connect
//! loop and channel) all come online, stay online through an idle window, and come back
//! after the controller is killed with SIGKILL and started again. The big-N runs are
//! benchmarks (docs/benchmarks.md), not tests.

use std::process::Stdio;

use steward_tests::{DEADLINE, command};

#[test]
fn fleet_bench_brings_agents_online_and_back_after_a_controller_kill() {
    let output = command("fleet-bench")
        .args(["--agents", "25", "--idle-secs", "1", "--restart"])
        .args(["--online-deadline", &(DEADLINE.as_secs() * 3).to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("running fleet-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "25 nodes created in the home",
        "all 25 online after ",
        "still online after the idle window: 25 of 25",
        "cli list-nodes (25 rows)",
        "controller killed with SIGKILL",
        "all 25 online again ",
        "no agent left out: true",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
