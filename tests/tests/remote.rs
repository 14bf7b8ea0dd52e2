//! Running commands and moving files on agents through the CLI, end to end: `exec-on-node`
//! with streamed stdin, stdout and stderr, exit codes and signals, cancellation that kills
//! the whole process tree; `copy-to-node` and `copy-from-node` with matching hashes;
//! `node-info`, `measure-node`, the monitors in `list-nodes`, and clear failures when the
//! agent dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use steward_tests::{Controller, DEADLINE, command, wait_until};

/// A finished `cli` run with stdout as bytes (files are not text).
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// `cli -s URL -auth admin:TOKEN ARGS…`, not started yet, with all three streams piped.
fn cli_command(c: &Controller, args: &[&str]) -> std::process::Command {
    let mut cmd = command("cli");
    cmd.args(["-s", &c.url, "-auth", &format!("admin:{}", c.token)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cli ARGS…` with `stdin` to completion, within `deadline`.
fn cli_bytes(c: &Controller, args: &[&str], stdin: &[u8], deadline: Duration) -> Run {
    let mut child = cli_command(c, args).spawn().expect("starting cli");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let code = wait_exit(&mut child, deadline, args);
    let _ = writer.join();
    Run {
        code,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

fn read_all(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        all
    })
}

/// Waits for `child` to exit; kills it and fails the test after `deadline`.
fn wait_exit(child: &mut Child, deadline: Duration, what: &[&str]) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for cli") {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("cli {what:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn exec(c: &Controller, args: &[&str], stdin: &str) -> Run {
    let mut full = vec!["exec-on-node"];
    full.extend_from_slice(args);
    cli_bytes(c, &full, stdin.as_bytes(), DEADLINE)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

/// `len` bytes that do not compress or repeat (xorshift), so a misplaced chunk shows.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
fn exec_streams_stdout_and_stderr_separately_with_env_and_dir() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_str().unwrap();
    let run = exec(
        &c,
        &[
            "linux-1",
            "-C",
            dir_path,
            "-e",
            "GREETING=hello there",
            "--",
            "sh",
            "-c",
            "echo out1; echo err1 >&2; pwd; echo \"$GREETING\"; echo err2 >&2",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        text(&run.stdout),
        format!("out1\n{dir_path}\nhello there\n")
    );
    assert_eq!(run.stderr, "err1\nerr2\n");
}

#[test]
fn exec_output_arrives_while_the_process_runs_and_stdin_flows() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    let mut child = cli_command(
        &c,
        &[
            "exec-on-node",
            "linux-1",
            "--",
            "sh",
            "-c",
            "echo first; read line; echo \"got $line\"",
        ],
    )
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The process is blocked on `read`: "first" can only be here if output streams.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    stdin.write_all(b"ping\n").unwrap();
    drop(stdin);
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "got ping\n");
    assert_eq!(wait_exit(&mut child, DEADLINE, &["exec-on-node"]), 0);

    // stdin to the end, through `cat`, byte for byte, over both transports.
    let input = "line one\nline two\n".repeat(1000);
    for mode in ["-webSocket", "-http"] {
        let cat = cli_bytes(
            &c,
            &[mode, "exec-on-node", "linux-1", "--", "cat"],
            input.as_bytes(),
            DEADLINE,
        );
        assert_eq!(
            (cat.code, text(&cat.stdout)),
            (0, input.as_str()),
            "{mode}: {}",
            cat.stderr
        );
    }
}

#[test]
fn exec_exit_codes_signals_and_failures() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    assert_eq!(
        exec(&c, &["linux-1", "--", "sh", "-c", "exit 7"], "").code,
        7
    );
    assert_eq!(exec(&c, &["linux-1", "--", "true"], "").code, 0);
    let signalled = exec(&c, &["linux-1", "--", "sh", "-c", "kill -TERM $$"], "");
    assert_eq!(signalled.code, 128 + 15, "{signalled:?}");

    let missing = exec(&c, &["linux-1", "--", "/no/such/program"], "");
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("ERROR: cannot run the command on linux-1")
            && missing.stderr.contains("/no/such/program"),
        "{missing:?}"
    );

    let timed_out = exec(&c, &["linux-1", "-timeout", "1", "--", "sleep", "1000"], "");
    assert_eq!(timed_out.code, 124, "{timed_out:?}");
    assert!(timed_out.stderr.contains("timed out"), "{timed_out:?}");
}

#[test]
fn unknown_and_offline_nodes_are_refused() {
    let c = Controller::start();
    let unknown = exec(&c, &["nope", "--", "true"], "");
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert_eq!(unknown.stderr, "\nERROR: No such node 'nope'\n");

    c.create_node("idle-1", "");
    for args in [
        &["exec-on-node", "idle-1", "--", "true"][..],
        &["copy-from-node", "idle-1", "/etc/hostname"],
        &["node-info", "idle-1"],
    ] {
        let offline = cli_bytes(&c, args, b"", DEADLINE);
        assert_eq!(offline.code, 4, "{args:?}: {offline:?}");
        assert_eq!(offline.stderr, "\nERROR: Node 'idle-1' is offline\n");
    }

    let usage = exec(&c, &["idle-1"], "");
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("Argument \"CMD\" is required"));
}

#[test]
fn copies_round_trip_with_matching_sha256() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("payload.bin");
    let remote = remote.to_str().unwrap();
    // Several windows' worth, and not a multiple of any chunk size.
    let data = pseudo_random(5 * 1024 * 1024 + 12_345);

    let up = cli_bytes(
        &c,
        &["copy-to-node", "linux-1", remote],
        &data,
        DEADLINE * 3,
    );
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(
        sha256(&std::fs::read(remote).unwrap()),
        sha256(&data),
        "the file on the agent"
    );

    let down = cli_bytes(
        &c,
        &["copy-from-node", "linux-1", remote],
        b"",
        DEADLINE * 3,
    );
    assert_eq!((down.code, down.stderr.as_str()), (0, ""));
    assert_eq!(sha256(&down.stdout), sha256(&data));

    let empty = dir.path().join("empty");
    let up = cli_bytes(
        &c,
        &["copy-to-node", "linux-1", empty.to_str().unwrap()],
        b"",
        DEADLINE,
    );
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(std::fs::read(&empty).unwrap(), b"");

    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let down = cli_bytes(&c, &["copy-from-node", "linux-1", missing], b"", DEADLINE);
    assert_eq!(down.code, 3, "{down:?}");
    assert!(
        down.stderr.contains(missing) && down.stdout.is_empty(),
        "{down:?}"
    );
    let nowhere = format!("{missing}/sub/file");
    let up = cli_bytes(&c, &["copy-to-node", "linux-1", &nowhere], b"x", DEADLINE);
    assert_eq!(up.code, 3, "{up:?}");
    assert!(up.stderr.contains(missing), "{up:?}");
}

#[test]
fn node_info_and_monitors() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    wait_until(DEADLINE, "monitors in list-nodes -json", || {
        let node = c.node_json("linux-1");
        node["rttMs"].is_number()
            && node["clockOffsetMs"].is_number()
            && node["freeDiskBytes"].as_u64().is_some_and(|b| b > 0)
    });
    let offline = {
        c.create_node("idle-1", "");
        c.node_json("idle-1")
    };
    assert!(offline["rttMs"].is_null(), "{offline}");
    let table = c.cli(&["list-nodes"]).stdout;
    assert!(table.lines().next().unwrap().contains("RTT"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("linux-1") && l.contains(" ms")),
        "{table}"
    );

    let info = c.cli(&["node-info", "linux-1"]);
    assert_eq!(info.code, 0, "{info:?}");
    let keys: Vec<&str> = info
        .stdout
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "node",
            "state",
            "os",
            "arch",
            "cpus",
            "memory",
            "work dir",
            "free disk",
            "agent version",
            "clock offset",
            "round trip",
            "ssh host key"
        ]
    );
    assert!(
        info.stdout
            .contains(&format!("os:            {}\n", std::env::consts::OS)),
        "{}",
        info.stdout
    );
    assert!(
        info.stdout.contains("state:         online\n"),
        "{}",
        info.stdout
    );

    let json = c.cli(&["node-info", "-json", "linux-1"]);
    assert_eq!(json.code, 0, "{json:?}");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["name"], "linux-1");
    assert!(json["cpus"].as_u64().is_some_and(|n| n > 0), "{json}");
    assert_eq!(json["agentVersion"], steward_protocol::STEWARD_VERSION);
    // Same machine, same clock: the offset is within the round trip and scheduling noise.
    assert!(
        json["clockOffsetMs"]
            .as_i64()
            .is_some_and(|ms| ms.abs() < 1000),
        "{json}"
    );
    assert!(json["rttMs"].is_number(), "{json}");
    assert_eq!(json["online"], true, "{json}");
    let free = json["freeDiskBytes"].as_u64().expect("free disk");
    let total = json["diskTotalBytes"].as_u64().expect("the disk's size");
    let threshold = json["freeDiskThresholdBytes"]
        .as_u64()
        .expect("a threshold");
    assert!(free <= total && threshold <= 1 << 30, "{json}");
}

#[test]
fn measure_node_moves_the_bytes_both_ways_and_reports_rates() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");

    let json = c.cli(&["measure-node", "-size", "3", "-json", "linux-1"]);
    assert_eq!(json.code, 0, "{json:?}");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["name"], "linux-1");
    // The command checks that the agent counted (or sent) exactly this many bytes.
    assert_eq!(json["bytes"], 3 * 1024 * 1024);
    for key in [
        "toAgentBytesPerSecond",
        "fromAgentBytesPerSecond",
        "rttMedianMs",
    ] {
        assert!(json[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {json}");
    }
    assert!(
        json["rttMaxMs"].as_f64() >= json["rttMedianMs"].as_f64(),
        "{json}"
    );

    let text = c.cli(&["measure-node", "-size", "1", "linux-1"]);
    assert_eq!(text.code, 0, "{text:?}");
    let keys: Vec<&str> = text
        .stdout
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "node",
            "round trip",
            "controller -> agent",
            "agent -> controller"
        ]
    );
    assert!(text.stdout.contains("/s (1.0 MiB in "), "{}", text.stdout);

    let bad = c.cli(&["measure-node", "-size", "0", "linux-1"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .contains("-size must be a whole number of MiB from 1 to 4096, not \"0\""),
        "{bad:?}"
    );
    c.create_node("idle-1", "");
    let offline = c.cli(&["measure-node", "idle-1"]);
    assert_eq!(offline.code, 4, "{offline:?}");
    assert!(
        offline.stderr.contains("Node 'idle-1' is offline"),
        "{offline:?}"
    );
}

#[test]
fn agent_killed_mid_transfer_fails_clearly_and_the_controller_stays_healthy() {
    let c = Controller::start();
    let mut agent = c.connected_agent("linux-1", "");
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("partial.bin");
    let mut child = cli_command(&c, &["copy-to-node", "linux-1", remote.to_str().unwrap()])
        .spawn()
        .unwrap();
    let stderr = read_all(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    // A few MiB in, stdin still open: the transfer is under way.
    stdin.write_all(&pseudo_random(3 * 1024 * 1024)).unwrap();
    agent.kill();
    let code = wait_exit(&mut child, DEADLINE, &["copy-to-node"]);
    drop(stdin);
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ERROR: connection to agent linux-1 lost"),
        "{stderr}"
    );
    assert!(!remote.exists(), "no partial file under the final name");

    // The same for a running process. It ends by itself once the dead agent's pipe is
    // gone (SIGPIPE), so the SIGKILLed agent leaves nothing behind.
    c.wait_online("linux-1", false, DEADLINE);
    let mut agent = c.agent("linux-1", &[]);
    c.wait_online("linux-1", true, DEADLINE);
    let script = "echo up; while echo tick; do sleep 0.2; done";
    let mut child = cli_command(&c, &["exec-on-node", "linux-1", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = read_all(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "up\n");
    agent.kill();
    let code = wait_exit(&mut child, DEADLINE, &["exec-on-node"]);
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ERROR: connection to agent linux-1 lost"),
        "{stderr}"
    );

    let who = c.cli(&["who-am-i"]);
    assert_eq!(who.code, 0, "{who:?}");
    c.wait_online("linux-1", false, DEADLINE);
    let offline = exec(&c, &["linux-1", "--", "true"], "");
    assert_eq!(offline.code, 4, "{offline:?}");
}

#[test]
fn killing_the_cli_kills_the_remote_process_tree() {
    let c = Controller::start();
    let _agent = c.connected_agent("linux-1", "");
    let mut child = cli_command(
        &c,
        &[
            "exec-on-node",
            "linux-1",
            "--",
            "sh",
            "-c",
            "sleep 1000 & echo $!; sleep 1000",
        ],
    )
    .stdin(Stdio::null())
    .spawn()
    .unwrap();
    let pid = first_line_pid(child.stdout.take().unwrap());
    assert!(process_alive(pid), "the grandchild runs");
    child.kill().unwrap();
    let _ = child.wait();
    wait_until(DEADLINE, &format!("grandchild {pid} killed"), || {
        !process_alive(pid)
    });
    // The controller took the client's leaving in its stride.
    assert_eq!(c.cli(&["who-am-i"]).code, 0);
}

fn first_line_pid(stdout: ChildStdout) -> u32 {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("a pid, got {line:?}"))
}
