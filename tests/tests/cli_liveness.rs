//! The cli notices a controller that stops answering, on both transports, within its idle
//! timeout, with one line and exit 255: one that accepts connections and never answers, and
//! one stopped (SIGSTOP) in the middle of a command. The builds such clients waited for go on.

use std::time::Duration;

use steward_tests::{Controller, DEADLINE, Freestyle, Gate, run_cli, wait_until};

/// The cli's `-idleTimeout` here: short, and unlike any other timeout of the client's, so
/// that the one that fires is seen to be this one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(25);

fn idle_arg() -> String {
    IDLE_TIMEOUT.as_secs().to_string()
}

#[test]
fn a_controller_that_accepts_and_never_answers_ends_the_cli_within_the_idle_timeout() {
    // Listening, never accepting: the kernel completes the handshakes, and nobody answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let idle = idle_arg();
    let runs: Vec<_> = ["-http", "-webSocket"]
        .into_iter()
        .map(|mode| {
            let args = ["-s", &url, "-idleTimeout", &idle, mode, "who-am-i"].map(str::to_owned);
            (
                mode,
                std::thread::spawn(move || run_cli(&args.each_ref().map(String::as_str), "")),
            )
        })
        .collect();
    for (mode, run) in runs {
        let out = run.join().unwrap();
        assert_eq!(out.code, 255, "{mode}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{mode}: {out:?}");
        let target = if mode == "-http" {
            url.clone()
        } else {
            format!("ws://{}/cli/ws", silent.local_addr().unwrap())
        };
        let expected = format!(
            "cannot connect to {target}: no answer within 25s (-idleTimeout); the controller \
             (or a proxy in front of it) accepted the connection but is stopped or overloaded"
        );
        assert!(out.stderr.contains(&expected), "{mode}: {out:?}");
    }
}

#[test]
fn a_controller_stopped_mid_command_ends_its_clients_and_their_builds_go_on() {
    let c = Controller::start();
    let gate = Gate::new();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "", 2, "NORMAL");
    let _agent = c.start_agent_in("n1", work.path());
    let script = format!(
        "{}{}echo released\n",
        gate.mark_script("running-$BUILD_NUMBER"),
        gate.wait_script("go-$BUILD_NUMBER")
    );
    c.create_job("held", &Freestyle::shell(&script).concurrent());
    let idle = idle_arg();
    let clients: Vec<_> = [(1, "-webSocket"), (2, "-http")]
        .into_iter()
        .map(|(number, mode)| {
            let client = c.cli_spawn(&["-idleTimeout", &idle, mode, "build", "held", "-s", "-v"]);
            wait_until(DEADLINE, "the step runs", || {
                gate.is_marked(&format!("running-{number}"))
            });
            (number, mode, client)
        })
        .collect();

    c.signal("STOP");
    let mut ended = Vec::new();
    for (number, mode, client) in clients {
        let out = client.wait(IDLE_TIMEOUT + DEADLINE);
        assert_eq!(out.code, 255, "{mode}: {out:?}");
        assert_eq!(
            out.stderr,
            "connection lost: nothing came from the controller for 25s (-idleTimeout): it is \
             stopped, overloaded or unreachable\n",
            "{mode}"
        );
        ended.push((number, mode));
    }
    c.signal("CONT");

    // The clients went away without an interrupt: their builds run on, and say so.
    for (number, mode) in ended {
        wait_until(DEADLINE, "the console notes the client's going", || {
            c.console("held", number)
                .contains("The client waiting for this build (build -s by admin) went away: ")
        });
        gate.open(&format!("go-{number}"));
        let mut result = String::new();
        wait_until(DEADLINE, "the build ends", || {
            result = c
                .list_builds("held")
                .into_iter()
                .find(|b| b.number == number)
                .map(|b| b.result)
                .unwrap_or_default();
            result != "RUNNING"
        });
        assert_eq!(result, "SUCCESS", "{mode}");
    }
}
