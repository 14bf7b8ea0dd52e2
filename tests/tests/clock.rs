//! Behaviour that takes wall-clock minutes, in one test binary so the tests wait side by
//! side: a `* * * * *` timer fires once a minute and not for the minutes a stopped
//! controller missed, and an absolute build timeout (at least 3 minutes, as the
//! build-timeout plugin applies it) aborts a build with the plugin's message.

use steward_tests::{Controller, Freestyle, wait_until};

const NODE: &str = "n1";

/// Minutes since the epoch, now.
fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[test]
fn a_timer_fires_once_a_minute_and_not_for_minutes_missed_while_stopped() {
    let mut c = Controller::start();
    let (_agent, _work) = c.node_with_agent(NODE);
    let job = Freestyle::shell("echo tick").xml_with(
        "triggers",
        "<hudson.triggers.TimerTrigger><spec>* * * * *</spec></hudson.triggers.TimerTrigger>",
    );
    let out = c.cli_with_stdin(&["create-job", "ticker"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    let minute = std::time::Duration::from_secs(75);
    wait_until(minute, "the timer's first build", || {
        !c.list_builds("ticker").is_empty()
    });
    let fired_in = minute_now();
    assert_eq!(c.list_builds("ticker")[0].cause, "Started by timer");
    // Stopped for the whole of the next minute: that minute's build is missed, not made up.
    c.kill();
    wait_until(
        std::time::Duration::from_secs(130),
        "a minute missed",
        || minute_now() >= fired_in + 2,
    );
    c.kill_and_restart();
    wait_until(minute, "the timer's next build", || {
        c.list_builds("ticker").len() >= 2
    });
    c.wait_finished_builds("ticker", 2);
    let all = c.list_builds("ticker");
    assert_eq!(
        all.len(),
        2,
        "one build for the minute after the restart, none for the missed one"
    );
    assert!(all.iter().all(|b| b.cause == "Started by timer"));
}

#[test]
fn an_absolute_timeout_aborts_the_build_after_the_plugins_minimum_of_three_minutes() {
    let c = Controller::start();
    let (_agent, _work) = c.node_with_agent(NODE);
    let job = Freestyle::shell("echo started; sleep 600").xml_with(
        "buildWrappers",
        "<hudson.plugins.build__timeout.BuildTimeoutWrapper plugin=\"build-timeout@1.33\">\
           <strategy class=\"hudson.plugins.build_timeout.impl.AbsoluteTimeOutStrategy\"><timeoutMinutes>1</timeoutMinutes></strategy>\
           <operationList/>\
         </hudson.plugins.build__timeout.BuildTimeoutWrapper>",
    );
    let out = c.cli_with_stdin(&["create-job", "slow"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    let started = std::time::Instant::now();
    let build = c.cli_spawn(&["build", "slow", "-s"]);
    let out = build.wait(std::time::Duration::from_secs(240));
    assert_eq!(out.code, 4, "ABORTED: {out:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(180));
    let console = c.console("slow", 1);
    assert!(
        console.contains("Build timed out (after 3 minutes). Marking the build as aborted.\n"),
        "{console}"
    );
    assert!(
        console.ends_with("Build was aborted\nFinished: ABORTED\n"),
        "{console}"
    );
}
