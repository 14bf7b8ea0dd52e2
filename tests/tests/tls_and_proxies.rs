//! `wss://` through a TLS-terminating front (as behind nginx), extra CAs, certificate
//! checking, and HTTP `CONNECT` proxies from the environment, for the agent and the CLI.

use steward_tests::net::{ConnectProxy, TlsFront};
use steward_tests::{Agent, Controller, DEADLINE, run_cli_env, wait_until};

/// A controller behind a TLS front, with `--url` set to the front's public URL.
fn controller_behind_tls() -> (Controller, TlsFront) {
    let front = TlsFront::start();
    let c = Controller::start_with(&["--url", &front.url()]);
    front.set_backend(&c.addr);
    (c, front)
}

#[test]
fn agent_connects_over_wss_trusting_an_extra_ca() {
    let (c, front) = controller_behind_tls();
    c.create_node("tls-1", "");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let secret = c.secret("tls-1");
    let cert_arg = format!("@{}", ca.display());
    let agent = Agent::spawn(&[
        "-webSocket",
        "-url",
        &front.url(),
        "-name",
        "tls-1",
        "-secret",
        &secret,
        "-cert",
        &cert_arg,
    ]);
    c.wait_online("tls-1", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
}

#[test]
fn untrusted_certificate_is_refused_unless_checking_is_off() {
    let (c, front) = controller_behind_tls();
    c.create_node("tls-2", "");
    let secret = c.secret("tls-2");
    let strict = Agent::spawn(&[
        "-webSocket",
        "-url",
        &front.url(),
        "-name",
        "tls-2",
        "-secret",
        &secret,
    ]);
    wait_until(DEADLINE, "a failed attempt", || {
        strict.output.contains("Failed to connect")
    });
    assert!(
        strict.output.text().to_lowercase().contains("certificate"),
        "{}",
        strict.output.text()
    );
    assert!(!c.is_online("tls-2"));
    drop(strict);

    let lax = Agent::spawn(&[
        "-webSocket",
        "-url",
        &front.url(),
        "-name",
        "tls-2",
        "-secret",
        &secret,
        "-noCertificateCheck",
    ]);
    c.wait_online("tls-2", true, DEADLINE);
    lax.output.wait_for("Connected", DEADLINE);
}

#[test]
fn agent_and_cli_go_through_an_https_proxy() {
    let (c, front) = controller_behind_tls();
    let proxy = ConnectProxy::start();
    c.create_node("proxied", "");
    let secret = c.secret("proxied");
    let proxy_env = [("HTTPS_PROXY", proxy.url()), ("NO_PROXY", String::new())];
    let env: Vec<(&str, &str)> = proxy_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = Agent::spawn_env(
        &[
            "-webSocket",
            "-url",
            &front.url(),
            "-name",
            "proxied",
            "-secret",
            &secret,
            "-noCertificateCheck",
        ],
        &env,
    );
    c.wait_online("proxied", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    let front_authority = front
        .url()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    assert!(
        proxy.tunnelled().contains(&front_authority),
        "{:?}",
        proxy.tunnelled()
    );

    let before = proxy.tunnelled().len();
    let auth = format!("admin:{}", c.token);
    let out = run_cli_env(
        &[
            "-s",
            &front.url(),
            "-noCertificateCheck",
            "-auth",
            &auth,
            "who-am-i",
        ],
        "",
        &env,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("Authenticated as: admin\n"),
        "{out:?}"
    );
    assert!(
        proxy.tunnelled().len() > before,
        "the CLI went through the proxy"
    );
}

#[test]
fn cli_over_wss_and_https_duplex() {
    let (c, front) = controller_behind_tls();
    let auth = format!("admin:{}", c.token);
    for mode in ["-webSocket", "-http"] {
        let out = run_cli_env(
            &[
                "-s",
                &front.url(),
                mode,
                "-noCertificateCheck",
                "-auth",
                &auth,
                "who-am-i",
            ],
            "",
            &[],
        );
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (
                0,
                "Authenticated as: admin\nAuthorities:\n  authenticated\n"
            ),
            "{mode}: {out:?}"
        );
    }
}

#[test]
fn controller_under_a_path_prefix_behind_a_proxy() {
    let front = TlsFront::start();
    let public = format!("{}jenkins/", front.url());
    let c = Controller::start_with(&["--url", &public]);
    front.set_backend(&c.addr);
    assert_eq!(c.url, public);
    let auth = format!("admin:{}", c.token);
    for mode in ["-webSocket", "-http"] {
        let out = run_cli_env(
            &[
                "-s",
                &public,
                mode,
                "-noCertificateCheck",
                "-auth",
                &auth,
                "who-am-i",
            ],
            "",
            &[],
        );
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        assert!(
            out.stdout.starts_with("Authenticated as: admin\n"),
            "{mode}: {out:?}"
        );
    }
    c.create_node("prefixed", "");
    let secret = c.secret("prefixed");
    let agent = Agent::spawn(&[
        "-webSocket",
        "-url",
        &public,
        "-name",
        "prefixed",
        "-secret",
        &secret,
        "-noCertificateCheck",
    ]);
    c.wait_online("prefixed", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    // The JNLP document names the public URL.
    let jnlp = format!("{public}computer/prefixed/jenkins-agent.jnlp");
    let jnlp_agent = Agent::spawn(&[
        "-jnlpUrl",
        &jnlp,
        "-jnlpCredentials",
        &auth,
        "-noCertificateCheck",
        "-noReconnectAfter",
        "5s",
    ]);
    wait_until(DEADLINE, "second agent refused as a duplicate", || {
        jnlp_agent.output.contains("already connected")
    });
}
