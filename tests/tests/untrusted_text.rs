//! Text from users and peers on its way out: into the controller's log, into the XML
//! `get-job` and `get-node` print, into error messages. Each must show such text, not obey
//! it: no fake log fields, no raw terminal controls, no character that a reader of the XML
//! turns into another.

use steward_tests::{Controller, DEADLINE, http_request};

/// A `Node-Name` that spells the fields of an accepted connection.
const FAKE_FIELDS: &str = "x status=101 reason=accepted remote=10.0.0.1";

/// The line of `log` that contains `needle`.
fn log_line(log: &str, needle: &str) -> String {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{log}"))
        .to_owned()
}

/// `line` without its double-quoted values (escapes inside them honoured): the fields a
/// reader, or a log parser, takes the line to have.
fn unquoted(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(q) = chars.next() {
            match q {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

#[test]
fn log_lines_quote_and_escape_what_peers_send() {
    let c = Controller::start();

    // A refused agent: the node name and X-Forwarded-For are the peer's words.
    let forwarded = "\u{202e}1.0.0.01";
    let answer = http_request(
        &c.addr,
        "GET",
        "/wsagents/",
        &[
            &format!("Node-Name: {FAKE_FIELDS}"),
            "Secret-Key: 00",
            "X-Remoting-Capability: x",
            &format!("X-Forwarded-For: {forwarded}"),
        ],
        b"",
    );
    assert_eq!(answer.status, 400, "{}", answer.text());
    c.log.wait_for("refused agent connection", DEADLINE);
    let line = log_line(&c.log.text(), "refused agent connection");
    assert!(line.contains(&format!("node=\"{FAKE_FIELDS}\"")), "{line}");
    assert!(
        line.contains("forwarded_for=\"\\u{202e}1.0.0.01\""),
        "{line}"
    );
    let fields = unquoted(&line);
    assert_eq!(fields.matches("status=").count(), 1, "{fields}");
    assert!(fields.contains("status=400"), "{fields}");
    assert!(!fields.contains("remote=10.0.0.1"), "{fields}");

    // A CLI WebSocket from another origin: the Origin is logged as sent, quoted.
    let origin = "http://evil\u{202e}moc.example status=101";
    let answer = http_request(
        &c.addr,
        "GET",
        "/cli/ws",
        &[
            &format!("Origin: {origin}"),
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        b"",
    );
    assert_eq!(answer.status, 403, "{}", answer.headers);
    c.log.wait_for("refused CLI WebSocket", DEADLINE);
    let line = log_line(&c.log.text(), "refused CLI WebSocket");
    assert!(
        line.contains("origin=\"http://evil\\u{202e}moc.example status=101\""),
        "{line}"
    );
    assert!(!unquoted(&line).contains("status="), "{line}");

    // Nothing the peers sent reached the log raw.
    let log = c.log.text();
    assert!(!log.contains('\u{202e}'), "a raw U+202E in the log:\n{log}");
    assert!(!log.contains(&format!("node={FAKE_FIELDS}")), "{log}");
}

/// A description holding ESC (a colour sequence), BEL and CR, as character references.
const HOSTILE: &str = "red &#x1B;[31malert&#x1B;[0m bell&#x7; cr&#xD;over";
/// The same text as a value.
const HOSTILE_VALUE: &str = "red \u{1b}[31malert\u{1b}[0m bell\u{7} cr\rover";

/// Raw characters a terminal obeys instead of showing.
fn assert_no_raw_controls(what: &str, text: &str) {
    for (c, name) in [
        ('\u{1b}', "ESC"),
        ('\u{7}', "BEL"),
        ('\r', "CR"),
        ('\0', "NUL"),
    ] {
        assert!(!text.contains(c), "{what} holds a raw {name}: {text:?}");
    }
}

/// The references `get-job`/`get-node` must write for [`HOSTILE`], as Jenkins' XStream does.
fn assert_escaped(what: &str, xml: &str) {
    assert_no_raw_controls(what, xml);
    assert!(
        xml.contains(
            "<description>red &#x1b;[31malert&#x1b;[0m bell&#x7; cr&#xd;over</description>"
        ),
        "{what}: {xml}"
    );
}

#[test]
fn control_characters_are_escaped_in_xml_and_in_messages() {
    let c = Controller::start();
    let auth = c.admin_basic_auth_header();

    // A job: get-job escapes, update-job with that output changes nothing.
    let job = format!(
        "<project><description>{HOSTILE}</description><builders><hudson.tasks.Shell><command>true</command></hudson.tasks.Shell></builders></project>"
    );
    let created = c.cli_with_stdin(&["create-job", "colour"], &job);
    assert_eq!(created.code, 0, "{created:?}");
    let printed = c.cli(&["get-job", "colour"]);
    assert_eq!(printed.code, 0, "{printed:?}");
    assert_escaped("get-job", &printed.stdout);
    let updated = c.cli_with_stdin(&["update-job", "colour"], &printed.stdout);
    assert_eq!(updated.code, 0, "{updated:?}");
    assert_eq!(c.cli(&["get-job", "colour"]).stdout, printed.stdout);
    let json = http_request(&c.addr, "GET", "/job/colour/api/json", &[&auth], b"").json();
    assert_eq!(
        json["description"], HOSTILE_VALUE,
        "the value round-trips exactly"
    );
    let rest = http_request(&c.addr, "GET", "/job/colour/config.xml", &[&auth], b"");
    assert_eq!(rest.status, 200);
    assert_escaped("GET config.xml", &rest.text());

    // A node, the same way.
    let node = format!(
        "<slave><name>box</name><description>{HOSTILE}</description><numExecutors>1</numExecutors>\
         <launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket></launcher></slave>"
    );
    let created = c.cli_with_stdin(&["create-node"], &node);
    assert_eq!(created.code, 0, "{created:?}");
    let printed = c.cli(&["get-node", "box"]);
    assert_eq!(printed.code, 0, "{printed:?}");
    assert_escaped("get-node", &printed.stdout);
    let updated = c.cli_with_stdin(&["update-node", "box"], &printed.stdout);
    assert_eq!(updated.code, 0, "{updated:?}");
    assert_eq!(c.cli(&["get-node", "box"]).stdout, printed.stdout);
    assert_eq!(c.node_json("box")["description"], HOSTILE_VALUE);

    // NUL has no place in XML, not even as a reference: refused, with a reason.
    for nul in ["a\0b", "a&#0;b", "a&#x0;b"] {
        let xml = format!("<project><description>{nul}</description></project>");
        let out = c.cli_with_stdin(&["create-job", "nul"], &xml);
        assert_eq!(out.code, 3, "{nul:?}: {out:?}");
        assert!(out.stderr.contains("NUL"), "{nul:?}: {out:?}");
        assert_no_raw_controls("the refusal", &out.stderr);
    }

    // Messages that quote a name show its controls as escapes.
    let gone = c.cli(&["get-job", "\u{1b}[31mgone\u{7}"]);
    assert_eq!(gone.code, 3, "{gone:?}");
    assert!(
        gone.stderr.contains("No such job '\\u{1b}[31mgone\\u{7}'"),
        "{gone:?}"
    );
    assert_no_raw_controls("get-job's error", &gone.stderr);
    let gone = c.cli(&["get-node", "\u{1b}]0;owned\u{7}\r"]);
    assert_eq!(gone.code, 3, "{gone:?}");
    assert!(
        gone.stderr
            .contains("No such node '\\u{1b}]0;owned\\u{7}\\r'"),
        "{gone:?}"
    );
    assert_no_raw_controls("get-node's error", &gone.stderr);
    let bad_name = c.cli_with_stdin(&["create-node", "a\u{1b}[2Jb"], &node);
    assert_eq!(bad_name.code, 3, "{bad_name:?}");
    assert!(bad_name.stderr.contains("a\\u{1b}[2Jb"), "{bad_name:?}");
    assert_no_raw_controls("create-node's error", &bad_name.stderr);
    let rest = http_request(
        &c.addr,
        "GET",
        "/job/%1B%5B31mgone%00/api/json",
        &[&auth],
        b"",
    );
    assert_eq!(rest.status, 404);
    assert!(
        rest.text().contains("No such job '\\u{1b}[31mgone\\0'"),
        "{}",
        rest.text()
    );
    assert_no_raw_controls("the REST error", &rest.text());
}
