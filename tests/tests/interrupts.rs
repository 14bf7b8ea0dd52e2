//! Who may abort a `build -s`: only its user. Our cli tells the controller when its user
//! interrupts it (SIGINT, SIGTERM), so any other loss of its connection leaves the build
//! running with a line in its console; a client that cannot tell (jenkins-cli.jar) still
//! aborts by disconnecting, as in Jenkins; and a controller shutting down aborts nothing.

use steward_protocol::plaincli::{self, Frame};
use steward_tests::frames::{self, RawWs};
use steward_tests::{Agent, Controller, DEADLINE, Freestyle, Gate, wait_until};

const JOB: &str = "held";
const NODE: &str = "n1";
/// What the console says when the client of a `build -s` went away without interrupting.
const WENT_AWAY: &str = "The client waiting for this build (build -s by admin) went away: ";

/// A controller, an agent with `executors` and the job [`JOB`], whose build N marks
/// `running-N` and waits for the gate `go-N`.
fn setup(executors: u32) -> (Controller, Agent, Gate, tempfile::TempDir) {
    let c = Controller::start();
    let gate = Gate::new();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", executors, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    let script = format!(
        "{}{}echo released\n",
        gate.mark_script("running-$BUILD_NUMBER"),
        gate.wait_script("go-$BUILD_NUMBER")
    );
    c.create_job(JOB, &Freestyle::shell(&script).concurrent());
    (c, agent, gate, work)
}

/// The result of build `number`, as `list-builds` shows it (`RUNNING` while it runs).
fn result_of(c: &Controller, number: u64) -> String {
    c.list_builds(JOB)
        .into_iter()
        .find(|b| b.number == number)
        .map(|b| b.result)
        .unwrap_or_else(|| panic!("no build #{number}"))
}

fn wait_result(c: &Controller, number: u64) -> String {
    let mut result = String::new();
    wait_until(DEADLINE, &format!("build #{number} ends"), || {
        result = result_of(c, number);
        result != "RUNNING"
    });
    result
}

/// A `build JOB -s` from a client that, like jenkins-cli.jar, does not announce that it
/// reports interrupts: PlainCLI frames over a WebSocket opened by hand.
fn jar_like_build_s(c: &Controller) -> RawWs {
    raw_build_s(c, &[])
}

/// `build JOB -s` over a WebSocket opened by hand, with `extra` upgrade headers.
fn raw_build_s(c: &Controller, extra: &[(&str, &str)]) -> RawWs {
    let origin = c.url.trim_end_matches('/').to_owned();
    let auth = c.admin_basic_auth_header();
    let (name, value) = auth.split_once(": ").unwrap();
    let mut headers = vec![("Origin", origin.as_str()), (name, value)];
    headers.extend_from_slice(extra);
    let (status, head, ws) = frames::upgrade(&c.addr, "/cli/ws", &headers);
    assert_eq!(status, 101, "{head}");
    let mut ws = ws.unwrap();
    for frame in [
        Frame::Arg("build".into()),
        Frame::Arg(JOB.into()),
        Frame::Arg("-s".into()),
        Frame::Encoding("UTF-8".into()),
        Frame::Locale("en_US".into()),
        Frame::Start,
    ] {
        let payload = plaincli::encode_ws(&frame).unwrap();
        ws.write(&frames::client_frame(true, frames::op::BINARY, &payload))
            .unwrap();
    }
    ws
}

/// Reads the session's stdout until it holds `text`.
fn read_stdout_until(ws: &mut RawWs, text: &str) {
    let mut stdout = Vec::new();
    while !String::from_utf8_lossy(&stdout).contains(text) {
        let frame = ws
            .read_frame(DEADLINE)
            .unwrap_or_else(|| panic!("no {text:?}; stdout so far {stdout:?}"));
        if frame.opcode == frames::op::BINARY
            && frame.payload.first() == Some(&plaincli::op::STDOUT)
        {
            stdout.extend_from_slice(&frame.payload[1..]);
        }
    }
}

#[test]
fn interrupting_our_cli_aborts_its_build_and_it_exits_as_the_signal_would() {
    let (c, _agent, gate, _work) = setup(2);
    for (number, transport, signal, code) in
        [(1, "-webSocket", "INT", 130), (2, "-http", "TERM", 143)]
    {
        let client = c.cli_spawn(&[transport, "build", JOB, "-s", "-v"]);
        wait_until(DEADLINE, "the step runs", || {
            gate.is_marked(&format!("running-{number}"))
        });
        client.signal(signal);
        let out = client.wait(DEADLINE);
        assert_eq!(out.code, code, "{transport} {signal}: {out:?}");
        assert_eq!(wait_result(&c, number), "ABORTED", "{transport}");
        let console = c.console(JOB, number);
        assert!(
            console.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
            "{transport}:\n{console}"
        );
        assert!(!console.contains(WENT_AWAY), "{console}");
    }
}

#[test]
fn our_cli_losing_its_connection_leaves_the_build_running_and_the_console_says_so() {
    let (c, _agent, gate, _work) = setup(2);
    for (number, transport) in [(1, "-webSocket"), (2, "-http")] {
        let client = c.cli_spawn(&[transport, "build", JOB, "-s", "-v"]);
        wait_until(DEADLINE, "the step runs", || {
            gate.is_marked(&format!("running-{number}"))
        });
        // SIGKILL: the connection goes without a word, as through a dying proxy.
        client.signal("KILL");
        client.wait(DEADLINE);
        wait_until(DEADLINE, "the console notes the client's going", || {
            c.console(JOB, number).contains(WENT_AWAY)
        });
        assert_eq!(result_of(&c, number), "RUNNING", "{transport}");

        gate.open(&format!("go-{number}"));
        assert_eq!(wait_result(&c, number), "SUCCESS", "{transport}");
        let console = c.console(JOB, number);
        assert!(!console.contains("Aborted"), "{transport}:\n{console}");
        let note = console
            .lines()
            .find(|l| l.starts_with(WENT_AWAY))
            .unwrap_or_else(|| panic!("{console}"));
        assert!(note.ends_with(". The build goes on."), "{note}");
        // The step's own output is whole, after the note.
        assert!(
            console.ends_with("+ echo released\nreleased\nFinished: SUCCESS\n"),
            "{transport}:\n{console}"
        );
    }
    assert!(!c.log.contains("aborting the build"), "{}", c.log.text());
}

#[test]
fn a_client_that_cannot_report_interrupts_aborts_by_disconnecting_as_in_jenkins() {
    let (c, _agent, gate, _work) = setup(2);
    let mut ws = jar_like_build_s(&c);
    read_stdout_until(&mut ws, &format!("Started {JOB} #1\n"));
    wait_until(DEADLINE, "the step runs", || gate.is_marked("running-1"));
    drop(ws);
    assert_eq!(wait_result(&c, 1), "ABORTED");
    let console = c.console(JOB, 1);
    assert!(
        console.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
        "{console}"
    );
}

#[test]
fn an_interrupt_followed_at_once_by_a_closed_connection_still_aborts() {
    // Our cli after a second Ctrl-C: INTERRUPT, then the connection closes with no wait.
    let (c, _agent, gate, _work) = setup(2);
    for number in 1..=3 {
        let mut ws = raw_build_s(&c, &[(plaincli::HEADER_STEWARD_CLI, "interrupt")]);
        read_stdout_until(&mut ws, &format!("Started {JOB} #{number}\n"));
        wait_until(DEADLINE, "the step runs", || {
            gate.is_marked(&format!("running-{number}"))
        });
        let interrupt = plaincli::encode_ws(&Frame::Interrupt("SIGINT".into())).unwrap();
        ws.write(&frames::client_frame(true, frames::op::BINARY, &interrupt))
            .unwrap();
        drop(ws);
        assert_eq!(wait_result(&c, number), "ABORTED", "#{number}");
        let console = c.console(JOB, number);
        assert!(!console.contains(WENT_AWAY), "{console}");
    }
}

#[test]
fn a_controller_shutdown_aborts_no_build_and_the_builds_finish_after_the_restart() {
    let (mut c, _agent, gate, _work) = setup(3);
    let ours_ws = c.cli_spawn(&["-webSocket", "build", JOB, "-s", "-v"]);
    wait_until(DEADLINE, "build #1 runs", || gate.is_marked("running-1"));
    let ours_http = c.cli_spawn(&["-http", "build", JOB, "-s", "-v"]);
    wait_until(DEADLINE, "build #2 runs", || gate.is_marked("running-2"));
    let mut jar_like = jar_like_build_s(&c);
    read_stdout_until(&mut jar_like, &format!("Started {JOB} #3\n"));
    wait_until(DEADLINE, "build #3 runs", || gate.is_marked("running-3"));

    let old_log = c.terminate_and_restart();
    for client in [ours_ws, ours_http] {
        let out = client.wait(DEADLINE);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(!out.stdout.contains("Completed"), "{out:?}");
    }
    drop(jar_like);
    c.wait_online(NODE, true, DEADLINE);
    for number in 1..=3 {
        gate.open(&format!("go-{number}"));
    }
    for number in 1..=3 {
        assert_eq!(wait_result(&c, number), "SUCCESS", "build #{number}");
        let console = c.console(JOB, number);
        assert!(!console.contains("Aborted"), "#{number}:\n{console}");
        assert!(
            console.ends_with("released\nFinished: SUCCESS\n"),
            "#{number}:\n{console}"
        );
    }
    let old = old_log.text();
    assert!(old.contains("shutting down"), "{old}");
    assert!(!old.contains("aborting the build"), "{old}");
}
