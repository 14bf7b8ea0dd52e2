//! The cli's SSH commands against a real controller: refusals of the SSH routes with the
//! exit codes of the CLI's commands, `ssh-config` from the controller's `ssh-host-keys`,
//! and an `ssh-tunnel` that survives a refused connection.
//!
//! Sessions that reach an agent's SSH server (`cli ssh NODE -- sh -c 'exit 7'`, a plain
//! `ssh -p PORT` through `ssh-tunnel`, strict host-key checking with `ssh-config`'s lines)
//! need that server, which agents do not have yet.

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
