//! Shell steps as Jenkins' `Shell` runs them: a `#!` first line names the interpreter, and
//! `unstableReturn` turns that exit code into UNSTABLE (the next steps run).

use steward_tests::{Controller, DEADLINE, Freestyle};

const NODE: &str = "n1";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    (c, agent, work)
}

#[test]
fn a_shebang_line_runs_the_script_with_that_interpreter() {
    let (c, _agent, _work) = setup();
    // `[[` and arrays are bash's: /bin/sh (dash) would fail on them.
    c.create_job(
        "bashy",
        &Freestyle::shell("#!/bin/bash -e\nwords=(a b c)\n[[ ${#words[@]} -eq 3 ]] && echo \"bash-ran-${BASH_VERSINFO[0]}\""),
    );
    let out = c.cli(&["build", "bashy", "-s", "-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    let console = c.console("bashy", 1);
    assert!(console.contains("bash-ran-"), "{console}");
    assert!(console.contains("[bashy] $ /bin/bash -e "), "{console}");
    // Without one, /bin/sh -xe as before: the trace shows the command.
    c.create_job("plain", &Freestyle::shell("echo plain-$((1+1))"));
    assert_eq!(c.cli(&["build", "plain", "-s"]).code, 0);
    let console = c.console("plain", 1);
    assert!(
        console.contains("[plain] $ /bin/sh -xe ") && console.contains("+ echo plain-2"),
        "{console}"
    );
}

fn job_with_unstable_return(code: u8) -> String {
    format!(
        "<project><builders>\
           <hudson.tasks.Shell><command>echo first; exit {code}</command><unstableReturn>3</unstableReturn></hudson.tasks.Shell>\
           <hudson.tasks.Shell><command>echo second-ran</command></hudson.tasks.Shell>\
         </builders></project>"
    )
}

#[test]
fn unstable_return_makes_the_build_unstable_and_the_next_steps_run() {
    let (c, _agent, _work) = setup();
    assert_eq!(
        c.cli_with_stdin(&["create-job", "flaky"], &job_with_unstable_return(3))
            .code,
        0
    );
    let out = c.cli(&["build", "flaky", "-s"]);
    assert_eq!(out.code, 1, "UNSTABLE's exit code: {out:?}");
    let console = c.console("flaky", 1);
    assert!(console.contains("second-ran"), "{console}");
    assert!(console.ends_with("Finished: UNSTABLE\n"), "{console}");
    let auth = c.admin_basic_auth_header();
    let job =
        steward_tests::http_request(&c.addr, "GET", "/job/flaky/api/json", &[auth.as_str()], b"")
            .json();
    assert_eq!(job["color"], "yellow", "{job}");
    let build = steward_tests::http_request(
        &c.addr,
        "GET",
        "/job/flaky/1/api/json",
        &[auth.as_str()],
        b"",
    )
    .json();
    assert_eq!(build["result"], "UNSTABLE", "{build}");
    // get-job gives the element back as written.
    assert!(
        c.cli(&["get-job", "flaky"])
            .stdout
            .contains("<unstableReturn>3</unstableReturn>")
    );

    // Another code still fails, and stops the steps.
    assert_eq!(
        c.cli_with_stdin(&["update-job", "flaky"], &job_with_unstable_return(4))
            .code,
        0
    );
    assert_eq!(c.cli(&["build", "flaky", "-s"]).code, 2);
    let console = c.console("flaky", 2);
    assert!(!console.contains("second-ran"), "{console}");
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");

    // A code that is not one is refused, and nothing changes.
    let bad = job_with_unstable_return(3).replace("<unstableReturn>3<", "<unstableReturn>300<");
    let out = c.cli_with_stdin(&["update-job", "flaky"], &bad);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("not an exit code from 0 to 255"),
        "{out:?}"
    );
    assert!(c.cli(&["get-job", "flaky"]).stdout.contains("exit 4"));
}

#[test]
fn an_unstable_build_stays_unstable_across_a_controller_restart() {
    let (mut c, _agent, _work) = setup();
    let gate = steward_tests::Gate::new();
    let xml = format!(
        "<project><builders>\
           <hudson.tasks.Shell><command>exit 3</command><unstableReturn>3</unstableReturn></hudson.tasks.Shell>\
           <hudson.tasks.Shell><command>{}{}</command></hudson.tasks.Shell>\
         </builders></project>",
        gate.mark_script("second"),
        gate.wait_script("go")
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "held"], &xml).code, 0);
    assert_eq!(c.cli(&["build", "held"]).code, 0);
    steward_tests::wait_until(DEADLINE, "the second step runs", || {
        gate.is_marked("second")
    });
    c.kill_and_restart();
    gate.open("go");
    assert_eq!(c.wait_result("held", 1), "UNSTABLE");
}
