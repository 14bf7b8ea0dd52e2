//! Breakpoints with real SSH sessions: connecting to a held build, the `breakpoint` command
//! inside it, auto-extension while connected, an abort killing what sessions started, and
//! the agent killed and restarted while the build is held.

use std::process::{Child, Command, Stdio};

use steward_tests::ssh::{Proxy, SshUser, shown};
use steward_tests::{Agent, Controller, DEADLINE, Freestyle, wait_until};

const NODE: &str = "n1";

fn setup() -> (Controller, Agent, tempfile::TempDir, SshUser) {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 2, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    let user = SshUser::new();
    user.register(&c);
    user.trust(&c, NODE);
    (c, agent, work, user)
}

/// Waits until build `number` of `job` is held (its console says how to connect).
fn wait_held(c: &Controller, job: &str, number: u64) -> String {
    let n = number.to_string();
    let mut console = String::new();
    wait_until(DEADLINE, &format!("{job}#{number} held"), || {
        let out = c.cli(&["console", job, &n]);
        console = out.stdout;
        out.code == 0 && console.contains("Host key: ssh-ed25519 ")
    });
    console
}

/// The expiry `list-breakpoints` shows for the one held build.
fn expiry(c: &Controller) -> String {
    let out = c.cli(&["list-breakpoints"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .next()
        .and_then(|l| l.split('\t').nth(3))
        .unwrap_or_else(|| panic!("no breakpoint listed: {out:?}"))
        .to_owned()
}

/// Seconds since the epoch of an RFC 3339 UTC time, as `date` reads it.
fn epoch(time: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", time, "+%s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "date -d {time}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `ssh … JOB-N@steward CMD` into build `number` of `job`.
fn ssh_build(user: &SshUser, c: &Controller, job: &str, number: u64) -> Command {
    let mut command = user.command(
        "ssh",
        c,
        Proxy::Cli,
        &format!("/job/{job}/{number}/ssh"),
        NODE,
    );
    command.arg(format!("{job}-{number}@steward"));
    command
}

#[test]
fn connect_to_a_failed_build_extend_and_resume_it_from_inside_and_it_ends_failure() {
    let (c, _agent, work, user) = setup();
    c.create_job(
        "web",
        &Freestyle::shell("echo broken > result.txt; exit 1").breakpoint("<when>onFailure</when>"),
    );
    let waiting = c.cli_spawn(&["build", "web", "-s"]);
    wait_held(&c, "web", 1);

    let out = ssh_build(&user, &c, "web", 1)
        .arg("cat result.txt; pwd; breakpoint extend --for 10m; breakpoint status -json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let workspace = work.path().canonicalize().unwrap().join("workspace/web");
    assert!(
        stdout.starts_with(&format!("broken\n{}\n", workspace.display())),
        "{stdout}"
    );
    assert!(stdout.contains("Breakpoint extended"), "{stdout}");
    assert!(stdout.contains("\"clients\""), "{stdout}");

    let out = ssh_build(&user, &c, "web", 1)
        .arg("breakpoint resume")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Resumed."),
        "{}",
        shown(&out)
    );
    let done = waiting.wait(DEADLINE);
    assert_eq!(done.code, 2, "{done:?}");
    assert_eq!(c.wait_result("web", 1), "FAILURE");
    let console = c.console("web", 1);
    for line in [
        "SSH: admin connected as web-1 (key SHA256:",
        "SSH: admin disconnected (key SHA256:",
        "Breakpoint: extended by admin (SSH user web-1) by 10m until ",
        "Breakpoint ended: resumed by admin (SSH user web-1) (breakpoint resume).",
    ] {
        assert!(console.contains(line), "{line:?} missing from:\n{console}");
    }
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");
}

#[test]
fn a_connected_client_keeps_the_breakpoint_from_expiring() {
    let (c, _agent, _work, user) = setup();
    c.create_job(
        "slow",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when><duration>3s</duration>"),
    );
    let out = c.cli(&["build", "slow"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_held(&c, "slow", 1);
    let first = expiry(&c);
    // A session that stays open: the expiry keeps moving ahead of now.
    let mut session: Child = ssh_build(&user, &c, "slow", 1)
        .arg("echo in; exec sleep 600")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Well past the first expiry (by more than its 3 s duration), and still held.
    wait_until(
        DEADLINE,
        "the expiry to move past the first one by a few seconds",
        || epoch(&expiry(&c)) >= epoch(&first) + 4,
    );
    assert_eq!(c.result_of("slow", 1), "RUNNING");
    session.kill().unwrap();
    session.wait().unwrap();
    // Nobody connected: it expires within its duration.
    assert_eq!(c.wait_result("slow", 1), "FAILURE");
    assert!(
        c.console("slow", 1)
            .contains("Breakpoint ended: it expired at ")
    );
}

#[test]
fn aborting_a_held_build_closes_its_sessions_and_kills_what_they_started() {
    let (c, _agent, _work, user) = setup();
    let marks = tempfile::tempdir().unwrap();
    let pid_file = marks.path().join("pid");
    c.create_job(
        "stuck",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when>"),
    );
    let out = c.cli(&["build", "stuck"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_held(&c, "stuck", 1);
    let mut session = ssh_build(&user, &c, "stuck", 1)
        .arg(format!(
            "sleep 600 & echo $! > {}; wait",
            pid_file.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pid = String::new();
    wait_until(DEADLINE, "the session's process", || {
        pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim()
            .to_owned();
        !pid.is_empty()
    });
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let stopped = c.cli(&["stop-builds", "stuck"]);
    assert_eq!(stopped.code, 0, "{stopped:?}");
    assert_eq!(c.wait_result("stuck", 1), "FAILURE");
    wait_until(DEADLINE, "the session's sleep to be killed", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    });
    let status = session.wait().unwrap();
    assert!(!status.success());
    let console = c.console("stuck", 1);
    assert!(
        console.contains("Breakpoint ended: the build was aborted by admin."),
        "{console}"
    );
}

#[test]
fn a_breakpoint_outlives_its_agent_being_killed_and_restarted() {
    let (c, mut agent, work, user) = setup();
    c.create_job(
        "durable",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when>"),
    );
    let out = c.cli(&["build", "durable"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_held(&c, "durable", 1);
    let before = expiry(&c);
    agent.kill();
    c.wait_online(NODE, false, DEADLINE);
    let _agent = c.start_agent_in(NODE, work.path());
    assert_eq!(c.result_of("durable", 1), "RUNNING");
    assert_eq!(expiry(&c), before);
    // The same host key (kept in the work dir): the pinned known_hosts still works.
    let out = ssh_build(&user, &c, "durable", 1)
        .arg("breakpoint resume")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(c.wait_result("durable", 1), "FAILURE");
}

#[test]
fn sessions_are_warned_before_an_end_that_will_not_move() {
    let (c, _agent, _work, user) = setup();
    // At its maximum from the start: connected or not, it ends in a minute.
    c.create_job(
        "ending",
        &Freestyle::shell("exit 1").breakpoint(
            "<when>onFailure</when><duration>1m</duration><maxDuration>1m</maxDuration>",
        ),
    );
    let out = c.cli(&["build", "ending"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_held(&c, "ending", 1);
    let mut session = ssh_build(&user, &c, "ending", 1)
        .arg("exec sleep 600")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = session.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The notice stands on lines of its own.
    let deadline = std::time::Instant::now() + DEADLINE;
    let warning = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("a warning in the session within the deadline");
        if !line.trim().is_empty() {
            break line;
        }
    };
    assert!(
        warning.contains("*** Steward: this breakpoint ends in")
            && warning.contains("breakpoint extend"),
        "{warning:?}"
    );
    let resumed = c.cli(&["resume-breakpoint", "ending", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(c.wait_result("ending", 1), "FAILURE");
    let _ = session.kill();
    let _ = session.wait();
}
