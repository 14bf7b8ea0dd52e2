//! Shell steps as Jenkins' `Shell` runs them: a `#!` first line names the interpreter, and
//! `unstableReturn` turns that exit code into UNSTABLE (the next steps run).

use steward_tests::{Controller, DEADLINE, Freestyle};

const NODE: &str = "n1";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let (agent, work) = c.node_with_agent(NODE);
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

const PLUGIN_JOB: &str = r#"<project>
  <scm class="hudson.scm.SubversionSCM" plugin="subversion@2.17.3"><locations/></scm>
  <triggers><org.jenkinsci.plugins.gwt.GenericTrigger plugin="generic-webhook-trigger@2.2.2"><spec>* * * * *</spec></org.jenkinsci.plugins.gwt.GenericTrigger></triggers>
  <builders>
    <hudson.tasks.Shell><command>echo the-shell-step-ran</command></hudson.tasks.Shell>
    <hudson.tasks.Maven><targets>install</targets></hudson.tasks.Maven>
  </builders>
  <publishers><hudson.tasks.Mailer plugin="mailer@472.vf7c289a_4b_420"><recipients>dev@example.com</recipients></hudson.tasks.Mailer></publishers>
</project>"#;

const WARNINGS: [&str; 4] = [
    "WARNING: Steward ignores <hudson.scm.SubversionSCM> (plugin subversion); builds run without it",
    "WARNING: Steward ignores <org.jenkinsci.plugins.gwt.GenericTrigger> (plugin generic-webhook-trigger); builds run without it",
    "WARNING: Steward ignores <hudson.tasks.Mailer> (plugin mailer); builds run without it",
    "WARNING: Steward ignores <hudson.tasks.Maven> (Jenkins core); builds run without it",
];

#[test]
fn what_a_job_holds_that_steward_ignores_is_named_on_create_in_each_build_and_over_rest() {
    let (c, _agent, _work) = setup();
    let out = c.cli_with_stdin(&["create-job", "plugins"], PLUGIN_JOB);
    assert_eq!(out.code, 0, "{out:?}");
    let said: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(said, WARNINGS, "{out:?}");
    let out = c.cli_with_stdin(&["update-job", "plugins"], PLUGIN_JOB);
    assert_eq!((out.code, out.stderr.lines().count()), (0, 4), "{out:?}");
    // The build runs what it can, and says what it runs without, before anything runs.
    assert_eq!(c.cli(&["build", "plugins", "-s"]).code, 0);
    let console = c.console("plugins", 1);
    let lines: Vec<&str> = console.lines().collect();
    assert!(
        lines[0].starts_with("Started from command line by admin"),
        "{console}"
    );
    assert_eq!(&lines[1..5], WARNINGS, "{console}");
    assert!(console.contains("the-shell-step-ran"), "{console}");
    let auth = c.admin_basic_auth_header();
    let job = steward_tests::http_request(
        &c.addr,
        "GET",
        "/job/plugins/api/json",
        &[auth.as_str()],
        b"",
    )
    .json();
    assert_eq!(
        job["ignoredElements"][0],
        serde_json::json!({"section": "scm", "element": "hudson.scm.SubversionSCM", "plugin": "subversion"}),
        "{job}"
    );
    assert_eq!(job["ignoredElements"].as_array().unwrap().len(), 4);
    // Kept as given.
    assert!(
        c.cli(&["get-job", "plugins"])
            .stdout
            .contains("<spec>* * * * *</spec>")
    );
}

#[test]
fn with_strict_jobs_the_controller_refuses_what_it_would_ignore() {
    let c = Controller::start_with(&["--strict-jobs"]);
    let out = c.cli_with_stdin(&["create-job", "plugins"], PLUGIN_JOB);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains(
            "Steward ignores <hudson.scm.SubversionSCM> (plugin subversion); builds would run without it"
        ),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("This controller refuses such jobs (--strict-jobs)."),
        "{out:?}"
    );
    assert_eq!(c.cli(&["get-job", "plugins"]).code, 3, "nothing stored");
    let auth = c.admin_basic_auth_header();
    let rest = steward_tests::http_request(
        &c.addr,
        "POST",
        "/createItem?name=plugins",
        &[auth.as_str(), "Content-Type: application/xml"],
        PLUGIN_JOB.as_bytes(),
    );
    assert_eq!(rest.status, 400, "{}", rest.text());
    assert!(rest.text().contains("--strict-jobs"), "{}", rest.text());
    assert_eq!(c.cli(&["get-job", "plugins"]).code, 3, "nothing stored");
    // A job Steward runs whole is taken as ever.
    c.create_job("plain", &Freestyle::shell("true"));
}

#[test]
fn a_pre_build_cleanup_deletes_the_workspace_before_each_build() {
    let (c, _agent, work) = setup();
    let job = |script: &str| {
        format!(
            "<project><builders><hudson.tasks.Shell><command>{script}</command></hudson.tasks.Shell></builders>\
             <buildWrappers><hudson.plugins.ws__cleanup.PreBuildCleanup plugin=\"ws-cleanup@0.45\">\
             <deleteDirs>false</deleteDirs><cleanupParameter></cleanupParameter><externalDelete></externalDelete>\
             </hudson.plugins.ws__cleanup.PreBuildCleanup></buildWrappers></project>"
        )
    };
    let out = c.cli_with_stdin(
        &["create-job", "clean"],
        &job("test ! -e left-over; touch left-over"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr, "",
        "a cleanup Steward does is not warned about: {out:?}"
    );
    for number in 1..=2 {
        let out = c.cli(&["build", "clean", "-s"]);
        assert_eq!(
            out.code,
            0,
            "build {number}: {}",
            c.console("clean", number)
        );
        let console = c.console("clean", number);
        assert!(
            console.contains("[WS-CLEANUP] Deleting project workspace...\n[WS-CLEANUP] Done\n"),
            "{console}"
        );
    }
    // The second build's file is there after it: only the next build's start deletes it.
    assert!(work.path().join("workspace/clean/left-over").exists());
}

#[test]
fn wipe_out_workspace_deletes_the_latest_builds_workspace() {
    let (c, _agent, work) = setup();
    let auth = c.admin_basic_auth_header();
    let wipe = || {
        steward_tests::http_request(
            &c.addr,
            "POST",
            "/job/kept/doWipeOutWorkspace",
            &[auth.as_str()],
            b"",
        )
    };
    c.create_job("kept", &Freestyle::shell("touch made-by-the-build"));
    let never = wipe();
    assert_eq!(never.status, 404, "{}", never.text());
    assert!(
        never.text().contains("kept has no workspace: it never ran"),
        "{}",
        never.text()
    );
    assert_eq!(c.cli(&["build", "kept", "-s"]).code, 0);
    let file = work.path().join("workspace/kept/made-by-the-build");
    assert!(file.exists());
    let wiped = wipe();
    assert_eq!(wiped.status, 302, "{}", wiped.text());
    assert!(!work.path().join("workspace/kept").exists());
    // The next build makes it again.
    assert_eq!(c.cli(&["build", "kept", "-s"]).code, 0);
    assert!(file.exists());
}
