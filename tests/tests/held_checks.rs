//! Attacks the controller already turned away when it was probed, kept as regression
//! tests: cross-origin reads (no CORS), path traversal, request smuggling, too many header
//! fields, XML nested too deep or with too many elements, DOCTYPE on the REST routes that
//! read XML, a second CLI session under a name in use. docs/security.md, "Checks that
//! held", lists these with the tests elsewhere that cover the rest (DOCTYPE through the
//! CLI, document size, oversized heads, duplicate agents).

use std::io::{Read, Write};
use std::net::TcpStream;

use steward_protocol::xml::{MAX_XML_DEPTH, MAX_XML_ELEMENTS};
use steward_tests::{Controller, DEADLINE, http_request};

/// Writes `request` on a fresh connection and reads until the controller closes it (or the
/// deadline passes): every answer it gave, as text.
fn exchange(c: &Controller, request: &str) -> String {
    let mut tcp = TcpStream::connect(&c.addr).expect("connect");
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn basic_auth(c: &Controller) -> String {
    c.admin_basic_auth_header()
}

#[test]
fn no_cors_headers_for_other_origins() {
    let c = Controller::start();
    let auth = basic_auth(&c);
    let evil = "Origin: https://evil.example";
    for path in [
        "/api/json",
        "/createItem?name=x",
        "/cli?remoting=false",
        "/job/x/build",
        "/me/api/json",
    ] {
        let preflight = http_request(
            &c.addr,
            "OPTIONS",
            path,
            &[
                evil,
                "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: authorization, content-type",
            ],
            b"",
        );
        assert!(
            !preflight
                .headers
                .to_ascii_lowercase()
                .contains("access-control-"),
            "OPTIONS {path}: {}",
            preflight.headers
        );
        assert_ne!(preflight.status / 100, 2, "OPTIONS {path} is not a success");
    }
    // A cross-origin read with credentials: answered (programs send such headers too), but
    // nothing allows a browser to hand the answer to the other site's script.
    let read = http_request(&c.addr, "GET", "/api/json", &[evil, &auth], b"");
    assert_eq!(read.status, 200);
    assert!(
        !read
            .headers
            .to_ascii_lowercase()
            .contains("access-control-"),
        "{}",
        read.headers
    );
}

#[test]
fn path_traversal_reaches_nothing_outside_the_routes() {
    let c = Controller::start();
    let auth = basic_auth(&c);
    let key = std::fs::read(c.home().join("secrets/node-secret-hmac.key")).unwrap();
    for path in [
        "/jnlpJars/../secrets/initialAdminToken",
        "/jnlpJars/%2e%2e/secrets/initialAdminToken",
        "/jnlpJars/..%2fsecrets%2finitialAdminToken",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/job/..%2f..%2fsecrets/config.xml",
        "/job/..%2F..%2Fsecrets%2FinitialAdminToken/consoleText",
        "/job/%2e%2e/config.xml",
        "/job/x/1/..%2f..%2f..%2fsecrets%2FinitialAdminToken",
        "/job/..%2f..%2fsecrets/1/consoleText",
        "/computer/..%2fsecrets/config.xml",
        "/computer/..%2F..%2Fsecrets/jenkins-agent.jnlp",
    ] {
        let answer = http_request(&c.addr, "GET", path, &[&auth], b"");
        assert_eq!(answer.status, 404, "GET {path}: {}", answer.text());
        let body = &answer.body;
        assert!(
            !answer.text().contains(&c.token)
                && !body.windows(key.len()).any(|w| w == key.as_slice())
                && !answer.text().contains("root:"),
            "GET {path} gave away a file: {}",
            answer.text()
        );
    }
    // Names are looked up, never joined to a path: the CLI says so too.
    let out = c.cli(&["get-job", "../../secrets"]);
    assert_eq!(out.code, 3, "{out:?}");
    let out = c.cli(&["console", "../../secrets/initialAdminToken"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(!out.stdout.contains(&c.token));
}

#[test]
fn request_smuggling_is_refused() {
    let c = Controller::start();
    let auth = basic_auth(&c);
    let job = "<project/>";
    let smuggled = format!(
        "POST /createItem?name=smuggled HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{job}",
        job.len()
    );

    // Content-Length and Transfer-Encoding both. A front end that reads Content-Length
    // forwards all of it as one request; a server that reads the chunked body (empty here)
    // would take the rest for a request of its own. The controller reads it chunked,
    // answers once and closes the connection: the rest never runs.
    let both = format!(
        "POST /createItem?name=front HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    let answer = exchange(&c, &both);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // Framing a front end and the controller could read differently: 400, then close.
    for (what, head) in [
        (
            "two Content-Lengths",
            "POST /createItem?name=two HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 46\r\n\r\n",
        ),
        (
            "Transfer-Encoding not ending in chunked",
            "POST /createItem?name=gz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST /createItem?name=old HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "a space before the colon",
            "POST /createItem?name=sp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        ),
        (
            "a folded header",
            "POST /createItem?name=fold HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n",
        ),
    ] {
        let answer = exchange(&c, &format!("{head}0\r\n\r\n{smuggled}"));
        assert!(answer.starts_with("HTTP/1.1 400 "), "{what}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{what}: {answer}");
    }

    let jobs = c.cli(&["list-jobs"]);
    assert_eq!(jobs.code, 0, "{jobs:?}");
    assert!(!jobs.stdout.contains("smuggled"), "{}", jobs.stdout);
}

#[test]
fn too_many_header_fields_get_431() {
    let c = Controller::start();
    let many: Vec<String> = (0..=100).map(|i| format!("X-Field-{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        http_request(&c.addr, "GET", "/login", &many, b"").status,
        431
    );
    assert_eq!(
        http_request(&c.addr, "GET", "/login", &many[..90], b"").status,
        200
    );
}

#[test]
fn xml_nested_too_deep_or_too_many_elements_is_refused() {
    let c = Controller::start();
    let auth = basic_auth(&c);
    let depth = MAX_XML_DEPTH + 1;
    let deep = format!(
        "<project>{}{}</project>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let many = format!("<project>{}</project>", "<a/>".repeat(MAX_XML_ELEMENTS));
    for (what, xml, reason) in [
        ("deep", &deep, "nests deeper than"),
        ("many", &many, "more than"),
    ] {
        let job = c.cli_with_stdin(&["create-job", what], xml);
        assert_eq!(job.code, 3, "{what}: {job:?}");
        assert!(job.stderr.contains(reason), "{what}: {job:?}");
        let node_xml = xml.replace("project>", "slave>");
        let node = c.cli_with_stdin(&["create-node", what], &node_xml);
        assert_eq!(node.code, 3, "{what}: {node:?}");
        assert!(node.stderr.contains(reason), "{what}: {node:?}");
        let rest = http_request(
            &c.addr,
            "POST",
            &format!("/createItem?name={what}"),
            &[&auth, "Content-Type: application/xml"],
            xml.as_bytes(),
        );
        assert_eq!(rest.status, 400, "{what}: {}", rest.text());
    }
    assert_eq!(c.cli(&["list-jobs"]).stdout, "");
    assert_eq!(c.cli(&["list-nodes", "-json"]).stdout.trim(), "[]");
}

#[test]
fn doctype_is_refused_on_every_route_that_reads_xml() {
    let c = Controller::start();
    let auth = basic_auth(&c);
    c.create_node("box", "");
    let job = c.cli_with_stdin(&["create-job", "app"], "<project/>");
    assert_eq!(job.code, 0, "{job:?}");
    let node_before = c.cli(&["get-node", "box"]).stdout;
    let job_before = c.cli(&["get-job", "app"]).stdout;
    // A billion laughs, cut short: expanded, it would be gigabytes.
    let laughs = |root: &str| {
        format!(
            "<?xml version=\"1.0\"?><!DOCTYPE {root} [<!ENTITY a \"aaaaaaaaaa\">\
             <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>\
             <{root}><name>box</name><description>&c;</description></{root}>"
        )
    };
    for (path, root) in [
        ("/createItem?name=laughs", "project"),
        ("/job/app/config.xml", "project"),
        ("/computer/box/config.xml", "slave"),
    ] {
        let answer = http_request(
            &c.addr,
            "POST",
            path,
            &[&auth, "Content-Type: application/xml"],
            laughs(root).as_bytes(),
        );
        assert_eq!(answer.status, 400, "POST {path}: {}", answer.text());
        assert!(
            answer.text().contains("DOCTYPE"),
            "POST {path}: {}",
            answer.text()
        );
    }
    assert_eq!(c.cli(&["get-node", "box"]).stdout, node_before);
    assert_eq!(c.cli(&["get-job", "app"]).stdout, job_before);
    assert_eq!(c.cli(&["list-jobs"]).stdout, "app\n");
}

#[test]
fn a_second_cli_session_under_a_name_in_use_is_refused() {
    let c = Controller::start_with(&["--no-websocket-cli"]);
    let auth = basic_auth(&c);
    let download = |session: &str| {
        let mut tcp = TcpStream::connect(&c.addr).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            tcp,
            "POST /cli?remoting=false HTTP/1.1\r\nHost: {}\r\n{auth}\r\nSession: {session}\r\n\
             Side: download\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            c.addr
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(tcp.read(&mut byte).unwrap(), 1, "closed before the head");
            head.push(byte[0]);
        }
        (tcp, String::from_utf8_lossy(&head).into_owned())
    };
    let (_first, head) = download("taken");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (mut second, head) = download("taken");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let mut body = String::new();
    let _ = second.read_to_string(&mut body);
    assert!(body.contains("Duplicate CLI session"), "{body}");
}
