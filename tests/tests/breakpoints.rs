//! Breakpoints through the real binaries: a failed build held with its executor and
//! workspace, its console saying how to connect; extended, resumed, expired, aborted, held
//! by `.hold`, and held on across a controller restart; and the result never changed.

use steward_tests::{Agent, Controller, DEADLINE, Freestyle, wait_until};

const NODE: &str = "n1";

fn setup() -> (Controller, Agent, tempfile::TempDir) {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 2, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    (c, agent, work)
}

/// Waits until the build's console holds `needle`; the console.
fn wait_console(c: &Controller, job: &str, number: u64, needle: &str) -> String {
    let mut console = String::new();
    let n = number.to_string();
    wait_until(
        DEADLINE,
        &format!("{needle:?} in {job}#{number}'s console"),
        || {
            // The build may not have started yet: `console` then fails, and is asked again.
            let out = c.cli(&["console", job, &n]);
            console = out.stdout;
            out.code == 0 && console.contains(needle)
        },
    );
    console
}

/// The `list-breakpoints` lines, split at tabs.
fn breakpoints(c: &Controller) -> Vec<Vec<String>> {
    let out = c.cli(&["list-breakpoints"]);
    assert_eq!(out.code, 0, "list-breakpoints: {out:?}");
    out.stdout
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
fn a_failed_build_is_held_and_says_how_to_connect_then_extended_and_resumed_it_fails() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "web",
        &Freestyle::shell("echo compiling; exit 3").breakpoint(
            "<when>onFailure</when><duration>30m</duration><maxDuration>1h</maxDuration>",
        ),
    );
    let waiting = c.cli_spawn(&["build", "web", "-s"]);
    let console = wait_console(&c, "web", 1, "Host key: ");
    let url = c.url.trim_end_matches('/');
    let lines: Vec<&str> = console.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Breakpoint: running until "))
        .unwrap_or_else(|| panic!("no breakpoint line in {console}"));
    assert!(
        lines[start].ends_with("(30 minutes from now)."),
        "{}",
        lines[start]
    );
    assert_eq!(
        lines[start + 1],
        format!("Connect with: cli -s {url} ssh web#1")
    );
    assert_eq!(
        lines[start + 2],
        format!("Or: ssh -o ProxyCommand=\"cli -s {url} ssh-proxy web#1\" web-1@steward")
    );
    assert!(
        lines[start + 3].starts_with("Host key: "),
        "{}",
        lines[start + 3]
    );
    assert!(
        console.contains("Breakpoint: the build failed; holding the executor and workspace on n1."),
        "{console}"
    );
    // Held: running, listed, with its executor.
    assert_eq!(c.result_of("web", 1), "RUNNING");
    let listed = breakpoints(&c);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(&listed[0][..3], ["web", "1", NODE]);

    let extended = c.cli(&["extend-breakpoint", "web", "1", "-for", "10m"]);
    assert_eq!(extended.code, 0, "{extended:?}");
    assert!(
        extended
            .stdout
            .starts_with("Breakpoint: extended by admin by 10m until "),
        "{extended:?}"
    );
    // Past the maximum: capped, and said so.
    let capped = c.cli(&["extend-breakpoint", "web", "1", "-for", "2h"]);
    assert!(
        capped.stdout.contains("(its maximum; asked for 2h more)"),
        "{capped:?}"
    );

    let resumed = c.cli(&["resume-breakpoint", "web", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let out = waiting.wait(DEADLINE);
    assert_eq!(out.code, 2, "build -s of a failed build exits 2: {out:?}");
    assert_eq!(c.wait_result("web", 1), "FAILURE");
    let console = c.console("web", 1);
    let end = console
        .find("Breakpoint ended: resumed by admin (resume-breakpoint).\n")
        .unwrap_or_else(|| panic!("{console}"));
    assert!(console[end..].ends_with("Finished: FAILURE\n"), "{console}");
    assert!(breakpoints(&c).is_empty());
}

#[test]
fn breakpoint_commands_refuse_builds_that_are_not_held() {
    let (c, _agent, _work) = setup();
    c.create_job("quick", &Freestyle::shell("true"));
    let out = c.cli(&["build", "quick", "-s"]);
    assert_eq!(out.code, 0, "{out:?}");
    let refused = c.cli(&["resume-breakpoint", "quick", "1"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("Build quick#1 is not running, so it is not held at a breakpoint"),
        "{refused:?}"
    );
    let unknown = c.cli(&["extend-breakpoint", "nothing", "1"]);
    assert_eq!(unknown.code, 3, "{unknown:?}");
    let bad = c.cli(&["build", "quick", "-breakpoint", "sometimes"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .contains("\"sometimes\" is not a valid value for \"-breakpoint\""),
        "{bad:?}"
    );
}

#[test]
fn breakpoint_always_on_a_passing_build_keeps_success_and_connect_timeout_ends_it() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "green",
        &Freestyle::shell("echo fine")
            .breakpoint("<when>never</when><connectTimeout>1s</connectTimeout>"),
    );
    let out = c.cli(&["build", "green", "-s", "-breakpoint", "always"]);
    assert_eq!(out.code, 0, "{out:?}");
    let console = c.console("green", 1);
    assert!(
        console.contains("Breakpoint: the build's steps ended (breakpoint: always); holding"),
        "{console}"
    );
    assert!(
        console.contains("Breakpoint ended: nobody connected within 1s (connectTimeout).\n"),
        "{console}"
    );
    assert!(console.ends_with("Finished: SUCCESS\n"), "{console}");
    // The job says never: without -breakpoint the next build is not held.
    let out = c.cli(&["build", "green", "-s"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!c.console("green", 2).contains("Breakpoint"));
}

#[test]
fn a_breakpoint_expires_at_its_duration() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "short",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when><duration>2s</duration>"),
    );
    let out = c.cli(&["build", "short", "-s"]);
    assert_eq!(out.code, 2, "{out:?}");
    let console = c.console("short", 1);
    assert!(
        console.contains("Breakpoint ended: it expired at "),
        "{console}"
    );
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");
}

#[test]
fn aborting_a_held_build_ends_the_breakpoint_and_keeps_its_result() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "stuck",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when>"),
    );
    let waiting = c.cli_spawn(&["build", "stuck", "-f"]);
    wait_console(&c, "stuck", 1, "Host key: ");
    let stopped = c.cli(&["stop-builds", "stuck"]);
    assert_eq!(stopped.code, 0, "{stopped:?}");
    waiting.wait(DEADLINE);
    assert_eq!(c.wait_result("stuck", 1), "FAILURE");
    let console = c.console("stuck", 1);
    assert!(
        console.contains("Breakpoint ended: the build was aborted by admin.\n"),
        "{console}"
    );
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");
}

#[test]
fn a_hold_file_in_the_workspace_holds_the_build_past_its_duration() {
    let (c, _agent, _work) = setup();
    // `.hold` dated an hour ahead holds until then + the duration, within the maximum.
    c.create_job(
        "held",
        &Freestyle::shell("touch -d '+1 hour' .hold; exit 1").breakpoint(
            "<when>onFailure</when><duration>3s</duration><maxDuration>2h</maxDuration>",
        ),
    );
    let waiting = c.cli_spawn(&["build", "held", "-s"]);
    let console = wait_console(
        &c,
        "held",
        1,
        ".hold found in the workspace: held until at least ",
    );
    // Well past the 3 s duration it is still held: wait for the reprinted expiry to be the
    // hold file's, not the duration's.
    let listed = breakpoints(&c);
    assert_eq!(listed.len(), 1, "{listed:?} {console}");
    let expires = &listed[0][3];
    let started = console
        .lines()
        .find_map(|l| l.strip_prefix("Breakpoint: running until "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        expires.as_str() > started.as_str(),
        "{expires} vs {started}"
    );
    let resumed = c.cli(&["resume-breakpoint", "held", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(waiting.wait(DEADLINE).code, 2);
}

#[test]
fn a_breakpoint_holds_on_across_a_controller_restart() {
    let (mut c, _agent, _work) = setup();
    c.create_job(
        "durable",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when><duration>30m</duration>"),
    );
    let out = c.cli(&["build", "durable"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_console(&c, "durable", 1, "Host key: ");
    let before = breakpoints(&c);
    c.terminate_and_restart();
    c.wait_online(NODE, true, DEADLINE);
    wait_console(
        &c,
        "durable",
        1,
        "Breakpoint: held on after the controller restarted.",
    );
    let after = breakpoints(&c);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0][3], before[0][3],
        "the same expiry after the restart"
    );
    assert_eq!(c.result_of("durable", 1), "RUNNING");
    let resumed = c.cli(&["resume-breakpoint", "durable", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(c.wait_result("durable", 1), "FAILURE");
    // Ended once: a second restart does not hold it again.
    assert_eq!(
        c.console("durable", 1).matches("Breakpoint ended:").count(),
        1
    );
}

#[test]
fn a_step_holds_its_build_with_breakpoint_wait_and_goes_on_when_it_ends() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "waits",
        &Freestyle::shell(
            "breakpoint status || echo \"status said $?\"\n\
             breakpoint wait --for 2s\n\
             echo after the breakpoint",
        ),
    );
    let out = c.cli(&["build", "waits", "-s"]);
    assert_eq!(out.code, 0, "{out:?}");
    let console = c.console("waits", 1);
    // Outside a breakpoint `status` says so and exits 1.
    assert!(console.contains("is not held at a breakpoint"), "{console}");
    assert!(console.contains("status said 1"), "{console}");
    let held = console
        .find("Breakpoint: a build step ran `breakpoint wait`; holding the executor and workspace on n1.")
        .unwrap_or_else(|| panic!("{console}"));
    let ended = console[held..]
        .find("Breakpoint ended: it expired at ")
        .unwrap_or_else(|| panic!("{console}"))
        + held;
    let after = console
        .find("after the breakpoint\n")
        .unwrap_or_else(|| panic!("{console}"));
    assert!(
        ended < after,
        "the step went on only after the breakpoint: {console}"
    );
    assert!(console.ends_with("Finished: SUCCESS\n"), "{console}");
}

#[test]
fn a_breakpoint_a_step_started_is_waited_for_even_when_its_wait_was_killed() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "detached",
        &Freestyle::shell(
            "breakpoint wait --for 10m &\n\
             until breakpoint status >/dev/null 2>&1; do sleep 0.1; done\n\
             kill $!\n\
             echo step done",
        ),
    );
    let out = c.cli(&["build", "detached"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_console(&c, "detached", 1, "step done\n");
    // The step is over, the breakpoint it started is not: the build waits for it.
    let listed = breakpoints(&c);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(c.result_of("detached", 1), "RUNNING");
    let resumed = c.cli(&["resume-breakpoint", "detached", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(c.wait_result("detached", 1), "SUCCESS");
}

#[test]
fn a_step_cannot_act_on_another_builds_breakpoint() {
    let (c, _agent, _work) = setup();
    c.create_job(
        "held",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when>"),
    );
    let out = c.cli(&["build", "held"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_console(&c, "held", 1, "Host key: ");
    // Another job's step names the held build: its key is not that build's.
    c.create_job(
        "intruder",
        &Freestyle::shell(
            "JOB_NAME=held BUILD_NUMBER=1 breakpoint resume || echo \"resume said $?\"",
        ),
    );
    let out = c.cli(&["build", "intruder", "-s"]);
    assert_eq!(out.code, 0, "{out:?}");
    let console = c.console("intruder", 1);
    assert!(console.contains("resume said 1"), "{console}");
    assert!(
        console.contains("this command does not run in build held#1"),
        "{console}"
    );
    assert_eq!(c.result_of("held", 1), "RUNNING");
    assert_eq!(breakpoints(&c).len(), 1);
    let resumed = c.cli(&["resume-breakpoint", "held", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
}

#[test]
fn a_wait_asked_again_after_its_breakpoint_ended_learns_how_and_starts_no_other() {
    let (c, mut agent, work) = setup();
    c.create_job(
        "again",
        &Freestyle::shell("breakpoint wait --for 10m; echo \"wait said $?\""),
    );
    let out = c.cli(&["build", "again"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_console(
        &c,
        "again",
        1,
        "Breakpoint: a build step ran `breakpoint wait`",
    );
    // The agent goes away while its step waits; the breakpoint is resumed meanwhile.
    agent.kill();
    c.wait_online(NODE, false, DEADLINE);
    let resumed = c.cli(&["resume-breakpoint", "again", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    // Back, the step's command asks again with its token, and is told it ended.
    let _agent = c.start_agent_in(NODE, work.path());
    assert_eq!(c.wait_result("again", 1), "SUCCESS");
    let console = c.console("again", 1);
    assert!(console.contains("wait said 0"), "{console}");
    assert_eq!(
        console
            .matches("Breakpoint: a build step ran `breakpoint wait`")
            .count(),
        1,
        "{console}"
    );
}
