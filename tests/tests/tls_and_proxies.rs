//! `wss://` through a TLS-terminating front (as behind nginx), extra CAs, certificate
//! checking, and HTTP `CONNECT` proxies from the environment, for the agent and the CLI;
//! and TLS as users set it up: certificates made with `openssl req -x509`, `-cert` values,
//! `SSL_CERT_FILE`.

use steward_tests::net::{ConnectProxy, TlsFront};
use steward_tests::openssl::{self, OpensslCert};
use steward_tests::{Agent, Controller, DEADLINE, run_cli_env, wait_until};

/// What the agent and the CLI say to do when they do not trust the server's certificate.
const CERTIFICATE_HINT: &str =
    "pass -cert @FILE with the server's certificate or its CA, or -noCertificateCheck (insecure)";

/// A controller behind a TLS front, with `--url` set to the front's public URL.
fn controller_behind_tls() -> (Controller, TlsFront) {
    let front = TlsFront::start();
    let c = Controller::start_with(&["--url", &front.url()]);
    front.set_backend(&c.addr);
    (c, front)
}

/// A controller behind a TLS front serving `cert`, with `--url` set to the front's URL.
fn controller_behind(cert: &OpensslCert) -> (Controller, TlsFront) {
    let front = TlsFront::start_with(&cert.cert_pem, &cert.key_pem);
    let c = Controller::start_with(&["--url", &front.url()]);
    front.set_backend(&c.addr);
    (c, front)
}

/// `-webSocket -url URL -name NODE -secret SECRET` for `node` on `c`, then `extra`.
fn agent_args(c: &Controller, url: &str, node: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-webSocket", "-url", url, "-name", node, "-secret"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(c.secret(node));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn spawn_agent(args: &[String], env: &[(&str, &str)]) -> Agent {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::spawn_env(&args, env)
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

#[test]
fn agent_trusts_a_default_openssl_self_signed_certificate_given_with_cert() {
    let cert = openssl::self_signed_localhost();
    // What `openssl req -x509` makes by default, and what WebPKI refuses as a server's own
    // certificate (CaUsedAsEndEntity) even when it is a trusted root.
    assert!(
        cert.basic_constraints().contains("CA:TRUE"),
        "{}",
        cert.basic_constraints()
    );
    let (c, front) = controller_behind(&cert);
    c.create_node("self-signed", "");
    let cert_arg = format!("@{}", cert.cert_path().display());
    let agent = spawn_agent(
        &agent_args(&c, &front.url(), "self-signed", &["-cert", &cert_arg]),
        &[],
    );
    c.wait_online("self-signed", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    assert!(
        !agent.output.contains("Failed to connect"),
        "{}",
        agent.output.text()
    );
}

#[test]
fn an_exact_certificate_is_trusted_for_the_host_it_names_or_any_if_it_names_none_and_only_it() {
    // A certificate that names another host, and only in its CN, as many hand-made ones do;
    // the agent dials `localhost`. Giving this exact certificate is the decision to trust it.
    let cert = openssl::self_signed("/CN=ci.example.com", &[]);
    let (c, front) = controller_behind(&cert);
    c.create_node("pinned", "");
    let cert_arg = format!("@{}", cert.cert_path().display());
    let agent = spawn_agent(
        &agent_args(&c, &front.url(), "pinned", &["-cert", &cert_arg]),
        &[],
    );
    c.wait_online("pinned", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);
    drop(agent);
    c.wait_online("pinned", false, DEADLINE);

    // Another certificate with the same name and key type is not the server's: refused.
    let other = openssl::self_signed("/CN=ci.example.com", &[]);
    let other_arg = format!("@{}", other.cert_path().display());
    let agent = spawn_agent(
        &agent_args(&c, &front.url(), "pinned", &["-cert", &other_arg]),
        &[],
    );
    wait_until(DEADLINE, "a refused attempt", || {
        agent.output.contains(CERTIFICATE_HINT)
    });
    assert!(!c.is_online("pinned"));
    drop(agent);

    // The exact certificate, but it names another host than the one dialled: a certificate
    // given for one server is not trusted for another.
    let elsewhere =
        openssl::self_signed("/CN=ci.example.com", &["subjectAltName=DNS:ci.example.com"]);
    let (c, front) = controller_behind(&elsewhere);
    c.create_node("pinned", "");
    let arg = format!("@{}", elsewhere.cert_path().display());
    let agent = spawn_agent(
        &agent_args(&c, &front.url(), "pinned", &["-cert", &arg]),
        &[],
    );
    wait_until(DEADLINE, "a refused attempt", || {
        agent.output.contains(CERTIFICATE_HINT)
    });
    assert!(
        agent.output.contains("ci.example.com"),
        "{}",
        agent.output.text()
    );
    assert!(!c.is_online("pinned"));
}

#[test]
fn untrusted_certificate_says_what_to_do_on_every_attempt() {
    let cert = openssl::self_signed_localhost();
    let (c, front) = controller_behind(&cert);
    c.create_node("untrusted", "");
    let agent = spawn_agent(&agent_args(&c, &front.url(), "untrusted", &[]), &[]);
    // The schedule waits 0, 1, 3… seconds: three attempts come within about 1.2 s.
    wait_until(DEADLINE, "three failed attempts", || {
        agent.output.count("Failed to connect") >= 3
    });
    let text = agent.output.text();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Failed to connect"))
        .collect();
    for line in &failures {
        assert!(
            line.contains("ERROR")
                && line.contains("the server's certificate is not trusted: it is a CA certificate")
                && line.contains(CERTIFICATE_HINT),
            "{line}"
        );
    }
    assert!(!c.is_online("untrusted"));

    let auth = format!("admin:{}", c.token);
    for mode in ["-webSocket", "-http"] {
        let out = run_cli_env(
            &["-s", &front.url(), mode, "-auth", &auth, "who-am-i"],
            "",
            &[],
        );
        assert_eq!(out.code, 255, "{mode}: {out:?}");
        assert!(
            out.stderr
                .contains("the server's certificate is not trusted")
                && out.stderr.contains(CERTIFICATE_HINT),
            "{mode}: {out:?}"
        );
    }
}

#[test]
fn cert_given_as_a_bare_path_asks_whether_at_file_was_meant() {
    let cert = openssl::self_signed_localhost();
    let path = cert.cert_path().display().to_string();
    let expected = format!(
        "invalid CA certificate: no PEM certificate found in the -cert value; did you mean @{path}?"
    );
    let mut agent = Agent::spawn(&[
        "-webSocket",
        "-url",
        "https://localhost:9/",
        "-name",
        "n",
        "-secret",
        "s",
        "-cert",
        &path,
    ]);
    let code = agent.wait_exit(DEADLINE);
    assert_eq!(code, 2, "{}", agent.output.text());
    assert!(agent.output.contains(&expected), "{}", agent.output.text());

    let out = run_cli_env(
        &["-s", "https://localhost:9/", "-cert", &path, "who-am-i"],
        "",
        &[],
    );
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains(&expected), "{out:?}");
}

#[test]
fn cli_trusts_a_certificate_given_with_cert_over_wss_and_https() {
    let cert = openssl::self_signed_localhost();
    let (c, front) = controller_behind(&cert);
    let auth = format!("admin:{}", c.token);
    let cert_arg = format!("@{}", cert.cert_path().display());
    for mode in ["-webSocket", "-http"] {
        let out = run_cli_env(
            &[
                "-s",
                &front.url(),
                mode,
                "-cert",
                &cert_arg,
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
    // The PEM text itself works as well as @FILE.
    let out = run_cli_env(
        &[
            "-s",
            &front.url(),
            "-cert",
            &cert.cert_pem,
            "-auth",
            &auth,
            "who-am-i",
        ],
        "",
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn ssl_cert_file_and_dir_are_honoured_by_the_cli_and_the_agent() {
    // A CA-issued certificate, trusted through the platform verifier's roots, which
    // SSL_CERT_FILE replaces.
    let (c, front) = controller_behind_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let ca = ca.display().to_string();
    let auth = format!("admin:{}", c.token);
    let who_am_i = ["-s", &front.url(), "-auth", &auth, "who-am-i"];
    let refused = run_cli_env(&who_am_i, "", &[]);
    assert_eq!(refused.code, 255, "{refused:?}");
    let out = run_cli_env(&who_am_i, "", &[("SSL_CERT_FILE", &ca)]);
    assert_eq!(out.code, 0, "{out:?}");
    // A directory of CA files (`ca.pem` alone in it) works the same way.
    let ca_dir = dir.path().display().to_string();
    let out = run_cli_env(&who_am_i, "", &[("SSL_CERT_DIR", &ca_dir)]);
    assert_eq!(out.code, 0, "{out:?}");
    c.create_node("ca-file", "");
    let agent = spawn_agent(
        &agent_args(&c, &front.url(), "ca-file", &[]),
        &[("SSL_CERT_FILE", &ca)],
    );
    c.wait_online("ca-file", true, DEADLINE);
    agent.output.wait_for("Connected", DEADLINE);

    // A default self-signed certificate in SSL_CERT_FILE is trusted as -cert's is.
    let cert = openssl::self_signed_localhost();
    let (c, front) = controller_behind(&cert);
    let auth = format!("admin:{}", c.token);
    let path = cert.cert_path().display().to_string();
    let out = run_cli_env(
        &["-s", &front.url(), "-auth", &auth, "who-am-i"],
        "",
        &[("SSL_CERT_FILE", &path)],
    );
    assert_eq!(out.code, 0, "{out:?}");
}
