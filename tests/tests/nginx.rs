//! The controller behind a real nginx configured as `docs/operations.md` says (TLS, WebSocket
//! upgrades, unbuffered bodies), with the proxy's timeouts shortened: a quiet command lives
//! through it on both CLI transports, and when the controller behind it is stopped or gone,
//! the cli says that the proxy answered for it.

use steward_tests::nginx::Nginx;
use steward_tests::{Controller, DEADLINE, Freestyle, run_cli, wait_until};

/// nginx's `proxy_read_timeout` and `proxy_send_timeout` here, in seconds.
const PROXY_TIMEOUT_S: u32 = 4;
/// The cli's `-idleTimeout` here: the shortest it takes.
const IDLE_TIMEOUT: &str = "20";

/// A controller whose root URL is nginx's, behind nginx; `args` go to the controller.
fn behind_nginx(args: &[&str]) -> (Controller, Nginx) {
    let listener = Nginx::bind();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let mut all = vec!["--url", url.as_str()];
    all.extend_from_slice(args);
    let c = Controller::start_with(&all);
    let nginx = Nginx::start(listener, &c.addr, PROXY_TIMEOUT_S);
    wait_until(DEADLINE, "nginx passes requests on", || {
        c.cli(&["-http", "who-am-i"]).code == 0
    });
    (c, nginx)
}

#[test]
fn a_quiet_build_s_lives_through_nginx_on_both_transports() {
    // Pings every 2 s: the full-duplex download side then sends a keepalive after 1 s of
    // silence, well within the proxy's 4 s.
    let (c, nginx) = behind_nginx(&["--ws-ping-interval", "2"]);
    assert_eq!(c.url, nginx.url());
    let work = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "", 2, "NORMAL");
    // The agent too comes in through nginx.
    let work_dir = work.path().to_str().unwrap();
    let agent = c.agent("n1", &["-workDir", work_dir, "-noCertificateCheck"]);
    agent.output.wait_for("Connected", DEADLINE);
    // Quiet for longer than the proxy's timeouts, and than the cli's idle timeout.
    c.create_job(
        "quiet",
        &Freestyle::shell("set +x\nsleep 25\necho done").concurrent(),
    );

    let clients: Vec<_> = ["-http", "-webSocket"]
        .into_iter()
        .map(|mode| {
            let client = c.cli_spawn(&[
                "-idleTimeout",
                IDLE_TIMEOUT,
                mode,
                "build",
                "quiet",
                "-s",
                "-v",
            ]);
            (mode, client)
        })
        .collect();
    for (mode, client) in clients {
        let out = client.wait(DEADLINE * 3);
        assert_eq!(out.code, 0, "{mode}: {out:?}");
        assert!(
            out.stdout.contains("\ndone\nFinished: SUCCESS\n"),
            "{mode}: {out:?}"
        );
        assert!(!out.stdout.contains("Aborted"), "{mode}: {out:?}");
        assert!(out.stdout.contains(" : SUCCESS\n"), "{mode}: {out:?}");
    }
    assert!(
        !c.log.contains("build -s client lost") && !c.log.contains("aborting the build"),
        "{}",
        c.log.text()
    );
}

#[test]
fn a_stopped_or_missing_controller_behind_nginx_is_reported_as_the_proxys_answer() {
    let (c, nginx) = behind_nginx(&[]);
    c.signal("STOP");
    for mode in ["-http", "-webSocket"] {
        let out = c.cli(&[mode, "who-am-i"]);
        assert_eq!(out.code, 255, "{mode}: {out:?}");
        assert_eq!(
            out.stderr,
            format!(
                "cannot connect to {}: the proxy answered 504 Gateway Timeout; the \
                 controller behind it did not answer\n",
                if mode == "-http" {
                    nginx.url()
                } else {
                    format!("wss://{}/cli/ws", nginx.addr)
                }
            ),
            "{mode}"
        );
    }
    c.signal("CONT");

    // Nothing listens where nginx sends requests: 502.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = gone.local_addr().unwrap().to_string();
    drop(gone);
    let front = Nginx::start(Nginx::bind(), &upstream, PROXY_TIMEOUT_S);
    let auth = format!("admin:{}", c.token);
    let url = front.url();
    // nginx's socket is listening already: the request waits for nginx to take it.
    let out = run_cli(
        &[
            "-s",
            &url,
            "-noCertificateCheck",
            "-auth",
            &auth,
            "-http",
            "who-am-i",
        ],
        "",
    );
    assert_eq!(out.code, 255, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "cannot connect to {url}: the proxy answered 502 Bad Gateway; it could not reach \
             the controller behind it\n"
        )
    );
}
