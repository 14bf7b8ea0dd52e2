//! SSH and SFTP into nodes and builds through the controller, with the real OpenSSH client
//! (`ssh`, `sftp`, `scp`) and the agent's own SSH server: exec and exit statuses, a PTY and
//! its window size, file transfers, port forwarding, host-key pinning, keys refused, the
//! refusals before the upgrade, and many sessions at once.

use std::io::{BufReader, Read, Write};
use std::process::{Command, Stdio};

use steward_tests::frames::refused_upgrade;
use steward_tests::ssh::{Proxy, SshUser, shown};
use steward_tests::{Agent, Controller, DEADLINE, Freestyle, wait_until};

const NODE: &str = "n1";
const NODE_PATH: &str = "/computer/n1/ssh";

fn setup() -> (Controller, Agent, tempfile::TempDir, SshUser) {
    steward_tests::ssh::node_and_user(NODE, 2)
}

#[test]
fn refusals_come_before_the_upgrade_with_a_status_and_a_reason() {
    let c = Controller::start();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let auth = c.admin_basic_auth_header();
    let (_, basic) = auth.split_once(": ").unwrap();

    let (status, body) = refused_upgrade(&c.addr, NODE_PATH, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authentication required"), "{body}");

    let (status, body) = refused_upgrade(
        &c.addr,
        NODE_PATH,
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")],
    );
    assert_eq!(status, 401, "{body}");

    let (status, body) = refused_upgrade(
        &c.addr,
        NODE_PATH,
        &[("Authorization", basic), ("Origin", "https://evil.example")],
    );
    assert_eq!(status, 403, "{body}");

    let (status, body) = refused_upgrade(
        &c.addr,
        "/computer/nothing/ssh",
        &[("Authorization", basic)],
    );
    assert_eq!(status, 404, "{body}");

    // Known, but no agent connected.
    let (status, body) = refused_upgrade(&c.addr, NODE_PATH, &[("Authorization", basic)]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Node ‘n1’ is offline"), "{body}");

    // A build that does not exist, and one that has ended.
    c.create_job("web", &Freestyle::shell("true"));
    let (status, body) = refused_upgrade(&c.addr, "/job/web/1/ssh", &[("Authorization", basic)]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("No such build web#1"), "{body}");
}

/// Adds a user without administrator rights (Overall/Read and Job/Read only), as an
/// administrator would before users can be managed from the CLI; its token.
fn add_reader(c: &Controller) -> String {
    use sha2::Digest;
    let token = "11aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned();
    let db = rusqlite::Connection::open(c.home().join("steward.db")).unwrap();
    db.busy_timeout(DEADLINE).unwrap();
    db.execute(
        "INSERT INTO users (name, full_name, is_admin, created_at) VALUES ('reader', 'Reader', 0, 0)",
        [],
    )
    .unwrap();
    let hash = sha2::Sha256::digest(token.as_bytes()).to_vec();
    db.execute(
        "INSERT INTO api_tokens (user, name, sha256, created_at) VALUES ('reader', 't', ?1, 0)",
        [hash],
    )
    .unwrap();
    token
}

#[test]
fn without_the_permission_a_user_is_refused_before_any_ssh() {
    let (c, _agent, _work, _user) = setup();
    c.create_job(
        "web",
        &Freestyle::shell("exit 1").breakpoint("<when>onFailure</when>"),
    );
    let out = c.cli(&["build", "web"]);
    assert_eq!(out.code, 0, "{out:?}");
    let token = add_reader(&c);
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("reader:{token}"))
    );
    let (status, body) = refused_upgrade(&c.addr, NODE_PATH, &[("Authorization", &basic)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Agent/Connect"), "{body}");
    wait_until(DEADLINE, "the build to be held", || {
        c.cli(&["list-breakpoints"]).stdout.starts_with("web\t1\t")
    });
    let (status, body) = refused_upgrade(&c.addr, "/job/web/1/ssh", &[("Authorization", &basic)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Job/Debug"), "{body}");
    let resumed = c.cli(&["resume-breakpoint", "web", "1"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
}

#[test]
fn exec_returns_the_remote_exit_status_through_websocat_and_cli() {
    let (c, _agent, work, user) = setup();
    for proxy in [Proxy::Websocat, Proxy::Cli] {
        let out = user.exec(&c, proxy, NODE_PATH, NODE, "echo in $PWD; exit 7");
        assert_eq!(out.status.code(), Some(7), "{proxy:?}: {}", shown(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = work.path().canonicalize().unwrap();
        assert!(
            stdout.contains(&format!("in {}", dir.display())),
            "a node session starts in the work dir: {stdout}"
        );
    }
    // A signal ends the command: ssh reports it as 255 with the signal named.
    let out = user.exec(&c, Proxy::Cli, NODE_PATH, NODE, "kill -TERM $$");
    assert_eq!(out.status.code(), Some(255), "{}", shown(&out));
}

#[test]
fn a_key_that_is_not_allowed_is_refused_and_agent_authorized_keys_are_accepted() {
    let (c, _agent, work, user) = setup();
    let stranger = SshUser::new();
    std::fs::copy(user.known_hosts(), stranger.known_hosts()).unwrap();
    let out = stranger.exec(&c, Proxy::Cli, NODE_PATH, NODE, "true");
    assert_eq!(out.status.code(), Some(255), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        shown(&out)
    );
    // The same key, in the agent's own .authorized_keys (re-read on each connection).
    std::fs::write(
        work.path().join(".authorized_keys"),
        stranger.public_key() + "\n",
    )
    .unwrap();
    let out = stranger.exec(&c, Proxy::Cli, NODE_PATH, NODE, "echo let in");
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
}

#[test]
fn a_changed_host_key_is_refused_under_strict_checking() {
    let (c, _agent, _work, user) = setup();
    let other = SshUser::new();
    // Pin another key for the node: the real one no longer matches.
    let wrong = other.public_key();
    let wrong = wrong.rsplit_once(' ').map_or(wrong.as_str(), |(k, _)| k);
    std::fs::write(user.known_hosts(), format!("steward-{NODE} {wrong}\n")).unwrap();
    let out = user.exec(&c, Proxy::Cli, NODE_PATH, NODE, "true");
    assert_eq!(out.status.code(), Some(255), "{}", shown(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || stderr.contains("Host key verification failed"),
        "{stderr}"
    );
}

#[test]
fn sftp_and_scp_move_a_200_mb_file_both_ways_intact() {
    let (c, _agent, work, user) = setup();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("big.bin");
    make_file(&source, 200 << 20);
    let remote = work.path().join("up.bin");
    let batch = local.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            source.display(),
            remote.display(),
            remote.display(),
            local.path().join("down.bin").display()
        ),
    )
    .unwrap();
    let out = user.sftp_batch(&c, Proxy::Cli, NODE_PATH, NODE, &batch);
    assert!(out.status.success(), "{}", shown(&out));
    let want = sha256(&source);
    assert_eq!(sha256(&remote), want, "sftp put");
    assert_eq!(sha256(&local.path().join("down.bin")), want, "sftp get");

    // scp (SFTP mode, OpenSSH 9's default), the other way round.
    let back = local.path().join("scp.bin");
    let out = user
        .command("scp", &c, Proxy::Cli, NODE_PATH, NODE)
        .arg(format!("tester@steward:{}", remote.display()))
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    assert_eq!(sha256(&back), want, "scp");
}

#[test]
fn port_forwarding_reaches_a_port_on_the_agent_side() {
    let (c, _agent, _work, user) = setup();
    // A one-line server on the agent's side (here the same machine, on loopback).
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = server.local_addr().unwrap();
    let serving = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        stream.write_all(b"hello from the agent side\n").unwrap();
    });
    let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let local_port = local.local_addr().unwrap().port();
    drop(local);
    let mut forwarding = user
        .command("ssh", &c, Proxy::Cli, NODE_PATH, NODE)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{local_port}:{target}"))
        .arg("tester@steward")
        .spawn()
        .unwrap();
    let mut text = String::new();
    wait_until(
        DEADLINE,
        "the forwarded port answers",
        || match std::net::TcpStream::connect(("127.0.0.1", local_port)) {
            Ok(mut stream) => {
                text.clear();
                stream.read_to_string(&mut text).is_ok() && !text.is_empty()
            }
            Err(_) => false,
        },
    );
    assert_eq!(text, "hello from the agent side\n");
    serving.join().unwrap();
    forwarding.kill().unwrap();
    forwarding.wait().unwrap();
}

#[test]
fn a_pty_shell_sees_its_window_size() {
    let (c, _agent, _work, user) = setup();
    // `script` gives ssh a pseudo-terminal of its own, sized by stty before ssh starts.
    let ssh = user.command("ssh", &c, Proxy::Cli, NODE_PATH, NODE);
    let mut line: Vec<String> = vec![ssh.get_program().to_string_lossy().into_owned()];
    line.extend(ssh.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    line.push("-tt".into());
    line.push("tester@steward".into());
    let inner = format!("stty rows 33 cols 101; {}", line.join(" "));
    let mut session = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(b"stty size; exit 3\n").unwrap();
    let mut out = String::new();
    BufReader::new(session.stdout.take().unwrap())
        .read_to_string(&mut out)
        .unwrap();
    let status = session.wait().unwrap();
    assert!(out.contains("33 101"), "{out}");
    assert_eq!(status.code(), Some(3), "{out}");
}

#[test]
fn twenty_sessions_at_once_on_one_agent() {
    let (c, _agent, _work, user) = setup();
    // Each session marks that it runs, then waits until all twenty do: sessions served one
    // after another would never get there (each gives up after 30 s and says so).
    let marks = tempfile::tempdir().unwrap();
    let dir = marks.path().display();
    let children: Vec<_> = (0..20)
        .map(|i| {
            user.command("ssh", &c, Proxy::Cli, NODE_PATH, NODE)
                .arg("tester@steward")
                .arg(format!(
                    "touch {dir}/{i}; n=0; \
                     until [ $(ls {dir} | wc -l) -ge 20 ]; do \
                       n=$((n+1)); [ $n -lt 600 ] || {{ echo alone; exit 99; }}; sleep 0.05; \
                     done; echo session {i}; exit {}",
                    i % 5
                ))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some((i % 5) as i32), "{}", shown(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("session {i}\n")
        );
    }
}

#[test]
fn sessions_into_a_build_end_with_it_and_what_they_started_is_killed() {
    let (c, _agent, _work, user) = setup();
    let gate = steward_tests::Gate::new();
    c.create_job(
        "short",
        &Freestyle::shell(&format!(
            "{}{}",
            gate.mark_script("running"),
            gate.wait_script("go")
        )),
    );
    let out = c.cli(&["build", "short"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(DEADLINE, "the build runs", || gate.is_marked("running"));
    let marks = tempfile::tempdir().unwrap();
    let pid_file = marks.path().join("pid");
    let mut session = user
        .command("ssh", &c, Proxy::Cli, "/job/short/1/ssh", NODE)
        .arg("tester@steward")
        .arg(format!(
            "sleep 600 & echo $! > {}; wait",
            pid_file.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
    gate.open("go");
    wait_until(DEADLINE, "the session to end with the build", || {
        session.try_wait().unwrap().is_some()
    });
    wait_until(DEADLINE, "the session's sleep to be killed", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    });
}

#[test]
fn a_session_into_a_running_build_starts_in_its_workspace_with_its_environment() {
    let (c, _agent, work, user) = setup();
    let gate = steward_tests::Gate::new();
    c.create_job(
        "web",
        &Freestyle::shell(&format!(
            "{}{}",
            gate.mark_script("running"),
            gate.wait_script("go")
        ))
        .string_parameter("COLOUR", "blue"),
    );
    let out = c.cli(&["build", "web"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(DEADLINE, "the build runs", || gate.is_marked("running"));
    let out = user.exec(
        &c,
        Proxy::Cli,
        "/job/web/1/ssh",
        NODE,
        "echo $PWD $JOB_NAME $BUILD_NUMBER $COLOUR; command -v breakpoint",
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let workspace = work.path().canonicalize().unwrap().join("workspace/web");
    assert!(
        stdout.starts_with(&format!("{} web 1 blue\n", workspace.display())),
        "{stdout}"
    );
    assert!(stdout.contains("remoting/bin/breakpoint"), "{stdout}");
    // The agent reports the login on its own, alongside the session.
    wait_until(DEADLINE, "the login line", || {
        c.console("web", 1)
            .contains("SSH: admin connected as tester (key SHA256:")
    });
    // The connection ends a moment after ssh exits (its ProxyCommand closes last): the
    // line comes while the build still runs.
    let mut console = String::new();
    wait_until(DEADLINE, "the disconnect line", || {
        console = c.console("web", 1);
        console.contains("SSH: admin disconnected (key SHA256:")
    });
    gate.open("go");
}

fn make_file(path: &std::path::Path, len: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 16];
    let mut written = 0;
    while written < len {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = block.len().min(len - written);
        file.write_all(&block[..n]).unwrap();
        written += n;
    }
    file.flush().unwrap();
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[test]
fn a_filter_slower_than_the_network_streams_both_ways_without_stalling() {
    // The input outruns the process, which writes all the while: input waits on the agent's
    // disk, not in the connection, so the output keeps flowing (a deadlock otherwise).
    let (c, _agent, _work, user) = setup();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("in.bin");
    make_file(&source, 100 << 20);
    let result = local.path().join("out.bin");
    let out = user
        .command("ssh", &c, Proxy::Cli, NODE_PATH, NODE)
        .arg("tester@steward")
        .arg("gzip -1 | gunzip")
        .stdin(std::fs::File::open(&source).unwrap())
        .stdout(std::fs::File::create(&result).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    assert_eq!(sha256(&result), sha256(&source));
}
