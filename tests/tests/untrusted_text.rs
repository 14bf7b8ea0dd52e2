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
