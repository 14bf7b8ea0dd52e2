//! Build wrappers as their plugins behave: a no-activity build timeout aborts (or fails) a
//! silent build with the build-timeout plugin's message, and the Timestamper keeps each
//! console line's time for `console -timestamps` and `consoleText?timestamps=`.

use steward_tests::{Controller, Freestyle, http_request};

const NODE: &str = "n1";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let (agent, work) = c.node_with_agent(NODE);
    (c, agent, work)
}

fn with_wrapper(script: &str, wrapper: &str) -> String {
    Freestyle::shell(script).xml().replace(
        "</project>",
        &format!("<buildWrappers>{wrapper}</buildWrappers></project>"),
    )
}

fn idle_timeout(seconds: u32, operation: &str) -> String {
    format!(
        "<hudson.plugins.build__timeout.BuildTimeoutWrapper plugin=\"build-timeout@1.33\">\
           <strategy class=\"hudson.plugins.build_timeout.impl.NoActivityTimeOutStrategy\"><timeoutSecondsString>{seconds}</timeoutSecondsString></strategy>\
           <operationList>{operation}</operationList>\
         </hudson.plugins.build__timeout.BuildTimeoutWrapper>"
    )
}

#[test]
fn a_silent_build_is_aborted_or_failed_by_the_no_activity_timeout() {
    let (c, _agent, _work) = setup();
    // Output keeps it alive for a while, then silence.
    let script = "for i in 1 2 3; do echo tick $i; sleep 1; done; echo silent; sleep 120";
    let job = with_wrapper(script, &idle_timeout(2, ""));
    let out = c.cli_with_stdin(&["create-job", "idle"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    assert_eq!(c.cli(&["build", "idle", "-s"]).code, 4);
    let console = c.console("idle", 1);
    assert!(
        console.contains("tick 3\n"),
        "output kept the build alive: {console}"
    );
    assert!(
        console.contains("Build timed out (after 0 minutes). Marking the build as aborted.\n"),
        "{console}"
    );
    assert!(
        console.ends_with("Build was aborted\nFinished: ABORTED\n"),
        "{console}"
    );

    let job = with_wrapper(
        "echo once; sleep 120",
        &idle_timeout(
            1,
            "<hudson.plugins.build__timeout.operations.FailOperation/>",
        ),
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "idle-fail"], &job).code, 0);
    assert_eq!(c.cli(&["build", "idle-fail", "-s"]).code, 2);
    let console = c.console("idle-fail", 1);
    assert!(
        console.contains("Marking the build as failed.\n"),
        "{console}"
    );
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");
}

#[test]
fn an_unsupported_timeout_strategy_is_named_as_ignored() {
    let c = Controller::start();
    let job = with_wrapper(
        "true",
        "<hudson.plugins.build__timeout.BuildTimeoutWrapper plugin=\"build-timeout@1.33\"><strategy class=\"hudson.plugins.build_timeout.impl.ElasticTimeOutStrategy\"/></hudson.plugins.build__timeout.BuildTimeoutWrapper>",
    );
    let out = c.cli_with_stdin(&["create-job", "elastic"], &job);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("WARNING: Steward ignores <hudson.plugins.build__timeout.BuildTimeoutWrapper> (plugin build-timeout)"),
        "{out:?}"
    );
}

/// `HH:MM:SS.mmm` as milliseconds.
fn elapsed_ms(stamp: &str) -> u64 {
    let (hms, ms) = stamp.split_once('.').unwrap();
    let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<u64>().unwrap()
}

#[test]
fn timestamps_are_kept_per_line_and_shown_on_request() {
    let (c, _agent, _work) = setup();
    let job = with_wrapper(
        "echo first-line; sleep 1.5; echo second-line",
        "<hudson.plugins.timestamper.TimestamperBuildWrapper plugin=\"timestamper@1.26\"/>",
    );
    let out = c.cli_with_stdin(&["create-job", "stamped"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    assert_eq!(c.cli(&["build", "stamped", "-s"]).code, 0);
    // The plain console is unchanged.
    assert!(c.console("stamped", 1).contains("\nfirst-line\n"));

    let auth = c.admin_basic_auth_header();
    let text = http_request(
        &c.addr,
        "GET",
        "/job/stamped/1/consoleText?timestamps=elapsed",
        &[auth.as_str()],
        b"",
    )
    .text();
    let stamp_of = |needle: &str| {
        let line = text
            .lines()
            .find(|l| l.ends_with(needle))
            .unwrap_or_else(|| panic!("{needle} in {text}"));
        elapsed_ms(&line[1..line.find(']').unwrap()])
    };
    let (first, second) = (stamp_of("] first-line"), stamp_of("] second-line"));
    assert!(second >= first + 1400, "{text}");
    assert!(
        text.lines().all(|l| l.starts_with('[')),
        "every line stamped: {text}"
    );

    let cli = c.cli(&["console", "stamped", "1", "-timestamps"]);
    assert_eq!(cli.code, 0, "{cli:?}");
    let line = cli
        .stdout
        .lines()
        .find(|l| l.ends_with("] first-line"))
        .unwrap();
    // [HH:MM:SS] first-line
    assert_eq!(line.len(), "[00:00:00] first-line".len(), "{line}");
    assert_eq!(&line[3..4], ":");

    c.create_job("plain", &Freestyle::shell("echo hi"));
    assert_eq!(c.cli(&["build", "plain", "-s"]).code, 0);
    let refused = c.cli(&["console", "plain", "1", "-timestamps"]);
    assert_eq!(refused.code, 3);
    assert!(refused.stderr.contains("kept no timestamps"), "{refused:?}");
    let bad = http_request(
        &c.addr,
        "GET",
        "/job/stamped/1/consoleText?timestamps=nope",
        &[auth.as_str()],
        b"",
    );
    assert_eq!(bad.status, 400);
}
