//! The cli's SSH commands against a real controller: refusals of the SSH routes with the
//! exit codes of the CLI's commands, `ssh-config` from the controller's `ssh-host-keys`,
//! an `ssh-tunnel` that survives a refused connection, and sessions through each command
//! to a real agent: `cli ssh NODE -- …` with the remote exit status, a plain `ssh -p PORT`
//! through `ssh-tunnel`, and OpenSSH run with nothing but `ssh-config`'s lines (strict
//! host-key checking included). The user's key comes from an ssh-agent, as on a desk.

use std::io::Read;
use std::net::TcpStream;
use std::time::Instant;

use steward_tests::{Controller, DEADLINE, bin, run_cli};

#[test]
fn an_unknown_node_or_job_is_exit_3_with_the_controllers_reason() {
    let c = Controller::start();
    let out = c.cli(&["ssh-proxy", "nosuch"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stderr.trim(), "ERROR: No such node 'nosuch'", "{out:?}");
    assert_eq!(out.stdout, "", "nothing but SSH bytes goes to stdout");

    let out = c.cli(&["ssh-proxy", "nojob#1"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("No such job"), "{out:?}");

    // `ssh` asks for the host key first, with the CLI's own error.
    let out = c.cli(&["ssh", "nosuch", "--", "true"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("No such node 'nosuch'"), "{out:?}");
}

#[test]
fn bad_credentials_are_exit_7_and_none_is_refused_too() {
    let c = Controller::start();
    let out = run_cli(
        &["-s", &c.url, "-auth", "admin:wrong", "ssh-proxy", "linux-1"],
        "",
    );
    assert_eq!(out.code, 7, "{out:?}");
    assert!(out.stderr.starts_with("ERROR: "), "{out:?}");

    let out = c.cli_anonymous(&["ssh-proxy", "linux-1"]);
    assert_eq!(out.code, 7, "{out:?}");
    assert!(out.stderr.contains("Authentication required"), "{out:?}");
}

#[test]
fn an_offline_node_is_exit_4_and_its_key_is_not_known_yet() {
    let c = Controller::start();
    c.create_node("linux-1", "linux");
    let out = c.cli(&["ssh-proxy", "linux-1"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("offline"), "{out:?}");

    let out = c.cli(&["ssh", "linux-1"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("the host key of node ‘linux-1’ is not known yet"),
        "{out:?}"
    );
}

#[test]
fn ssh_config_writes_a_host_block_per_node_and_no_token() {
    let c = Controller::start();
    c.create_node("linux-1", "linux");
    c.create_node("mac", "mac");
    let cli = bin("cli");
    let cli = cli.to_str().unwrap();

    let out = c.cli(&["ssh-config"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains(&c.token), "a token in {}", out.stdout);
    let proxy = |node: &str| {
        format!(
            "  ProxyCommand {cli} -s {} -noCertificateCheck ssh-proxy {node}\n",
            c.url
        )
    };
    assert!(
        out.stdout.starts_with("# ~/.ssh/config\n"),
        "{}",
        out.stdout
    );
    for node in ["linux-1", "mac"] {
        assert!(
            out.stdout.contains(&format!("Host steward-{node}\n")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains(&proxy(node)), "{}", out.stdout);
        assert!(
            out.stdout
                .contains(&format!("  HostKeyAlias steward-{node}\n")),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("# steward-{node}: host key not known yet")),
            "{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("# Note: -auth was given inline"),
        "{}",
        out.stdout
    );

    let out = c.cli(&["ssh-config", "-config", "mac"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("linux-1"), "{}", out.stdout);
    assert!(!out.stdout.contains("known_hosts"), "{}", out.stdout);

    let out = c.cli(&["ssh-config", "nosuch"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "");
}

#[test]
fn a_tunnel_closes_a_refused_connection_says_why_and_goes_on() {
    let c = Controller::start();
    let tunnel = c.cli_spawn(&["ssh-tunnel", "nosuch", "-p", "0"]);
    tunnel.stderr.wait_for("Listening on 127.0.0.1:", DEADLINE);
    let text = tunnel.stderr.text();
    let address = text
        .split("Listening on ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap()
        .trim()
        .to_owned();

    for n in 1..=2 {
        let mut stream = TcpStream::connect(&address).expect("connect to the tunnel");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let started = Instant::now();
        // The tunnel closes the connection: end of stream, or a reset.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            started.elapsed() < DEADLINE,
            "the connection was not closed"
        );
        assert!(rest.is_empty(), "{rest:?}");
        let wanted = "ERROR: No such node 'nosuch'";
        steward_tests::wait_until(DEADLINE, "the reason logged", || {
            tunnel.stderr.count(wanted) == n
        });
    }
    assert!(
        tunnel.stderr.contains("connection from 127.0.0.1:"),
        "{}",
        tunnel.stderr.text()
    );

    tunnel.signal("INT");
    let out = tunnel.wait(DEADLINE);
    assert_eq!(out.code, 130, "{out:?}");
}

#[test]
fn usage_errors_exit_2_with_the_commands_usage() {
    let c = Controller::start();
    let out = c.cli(&["ssh-proxy"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ssh-proxy: no TARGET"), "{out:?}");
    assert!(
        out.stderr.contains("Usage: cli [OPTIONS] ssh-proxy TARGET"),
        "{out:?}"
    );

    let out = c.cli(&["ssh-tunnel", "n", "-p", "http"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is not a port number"), "{out:?}");

    let out = c.cli(&["ssh", "web#0"]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// A controller with node `n1` and its agent, the test user's key registered, and an
/// ssh-agent holding that key (its socket for `SSH_AUTH_SOCK`).
struct Desk {
    c: Controller,
    _agent: steward_tests::Agent,
    _work: tempfile::TempDir,
    user: steward_tests::ssh::SshUser,
    ssh_agent: std::process::Child,
    socket: std::path::PathBuf,
}

impl Desk {
    fn new() -> Desk {
        let c = Controller::start();
        let work = tempfile::tempdir().unwrap();
        c.create_node_with("n1", "", 1, "NORMAL");
        let agent = c.start_agent_in("n1", work.path());
        let user = steward_tests::ssh::SshUser::new();
        user.register(&c);
        let socket = user.dir().join("agent.sock");
        let ssh_agent = std::process::Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent");
        steward_tests::wait_until(DEADLINE, "the ssh-agent's socket", || socket.exists());
        let added = std::process::Command::new("ssh-add")
            .arg(user.key())
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(added.status.success(), "ssh-add: {added:?}");
        Desk {
            c,
            _agent: agent,
            _work: work,
            user,
            ssh_agent,
            socket,
        }
    }

    /// The environment of a shell on the desk: the controller, the credentials, the key.
    fn env(&self) -> Vec<(&str, String)> {
        vec![
            ("JENKINS_URL", self.c.url.clone()),
            ("JENKINS_USER_ID", "admin".to_owned()),
            ("JENKINS_API_TOKEN", self.c.token.clone()),
            ("SSH_AUTH_SOCK", self.socket.display().to_string()),
        ]
    }

    fn cli(&self, args: &[&str]) -> steward_tests::CliOutput {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        steward_tests::run_cli_env(args, "", &env)
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.ssh_agent.kill();
        let _ = self.ssh_agent.wait();
    }
}

#[test]
fn cli_ssh_runs_a_command_and_exits_with_its_status() {
    let desk = Desk::new();
    steward_tests::wait_until(DEADLINE, "n1's host key", || {
        desk.cli(&["ssh-host-keys", "n1"])
            .stdout
            .contains("ssh-ed25519 ")
    });
    let out = desk.cli(&[
        "ssh",
        "n1",
        "--",
        "sh",
        "-c",
        "echo \"hello from $0\"; exit 7",
    ]);
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "hello from sh\n", "{out:?}");
}

#[test]
fn a_plain_ssh_reaches_the_node_through_ssh_tunnel() {
    let desk = Desk::new();
    desk.user.trust(&desk.c, "n1");
    let env = desk.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tunnel = steward_tests::CliProcess::spawn_env(&["ssh-tunnel", "n1", "-p", "0"], "", &env);
    tunnel.stderr.wait_for("Listening on 127.0.0.1:", DEADLINE);
    let text = tunnel.stderr.text();
    let port = text
        .split("Listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap()
        .trim()
        .to_owned();
    let out = std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &port, "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "HostKeyAlias=steward-n1",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            desk.user.known_hosts().display()
        ))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .env("SSH_AUTH_SOCK", &desk.socket)
        .arg("tester@127.0.0.1")
        .arg("echo through the tunnel; exit 5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through the tunnel\n");
    tunnel.signal("INT");
    assert_eq!(tunnel.wait(DEADLINE).code, 130);
}

#[test]
fn openssh_with_only_ssh_configs_lines_connects_and_checks_the_host_key() {
    let desk = Desk::new();
    steward_tests::wait_until(DEADLINE, "n1's host key", || {
        desk.cli(&["ssh-host-keys", "n1"])
            .stdout
            .contains("ssh-ed25519 ")
    });
    let config = desk.cli(&["ssh-config", "-config", "n1"]);
    assert_eq!(config.code, 0, "{config:?}");
    let known = desk.cli(&["ssh-config", "-known-hosts", "n1"]);
    assert_eq!(known.code, 0, "{known:?}");
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, &known.stdout).unwrap();
    let config_file = dir.path().join("config");
    std::fs::write(
        &config_file,
        format!(
            "{}\nHost *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
            config.stdout,
            known_hosts.display()
        ),
    )
    .unwrap();
    let ssh = |remote: &str| {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config_file)
            .env("SSH_AUTH_SOCK", &desk.socket)
            .env("JENKINS_USER_ID", "admin")
            .env("JENKINS_API_TOKEN", &desk.c.token)
            .arg("steward-n1")
            .arg(remote)
            .output()
            .unwrap()
    };
    let out = ssh("echo configured");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configured\n");

    // Another key pinned for the node: the same lines now refuse it.
    let other = steward_tests::ssh::SshUser::new();
    let wrong = other.public_key();
    let wrong = wrong.rsplit_once(' ').map_or(wrong.as_str(), |(k, _)| k);
    std::fs::write(&known_hosts, format!("steward-n1 {wrong}\n")).unwrap();
    let out = ssh("true");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || stderr.contains("Host key verification failed"),
        "{stderr}"
    );
}
