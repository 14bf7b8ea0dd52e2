//! What the controller does with hostile XML and look-alike names (docs/security.md, "XML
//! and names"), through the real binaries: a document with tens of thousands of attributes
//! is refused at once instead of costing seconds on every read, and names a person cannot
//! tell apart are one name or refused.

use steward_tests::{Controller, http_request};

/// `<project><a a0='1' … a{n-1}='1'/></project>`.
fn attributes(n: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("a{i}='1'")).collect();
    format!("<project><a {}/></project>", list.join(" "))
}

fn post(c: &Controller, path: &str, body: &str) -> (u16, String) {
    let auth = c.admin_basic_auth_header();
    let response = http_request(&c.addr, "POST", path, &[&auth], body.as_bytes());
    (response.status, response.text())
}

/// Once: an 869 KB document of 80,000 attributes, under the size limit, took seconds to
/// create (duplicate checks comparing every attribute with every one before it), and every
/// read of the job after that parsed it again, holding the store. Now it is refused with
/// the limit named, and a document at the limit is taken.
#[test]
fn a_document_with_too_many_attributes_is_refused_and_one_at_the_limit_taken() {
    let c = Controller::start();
    let huge = attributes(80_000);
    assert!(huge.len() > 800_000 && huge.len() < 1 << 20);

    let out = c.cli_with_stdin(&["create-job", "J"], &huge);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            3,
            "\nERROR: Invalid job XML: <a> has more than 256 attributes\n"
        ),
        "{out:?}"
    );
    assert_eq!(
        post(&c, "/createItem?name=J", &huge),
        (
            400,
            "Invalid job XML: <a> has more than 256 attributes\n".to_owned()
        )
    );
    assert_eq!(c.cli(&["list-jobs"]).stdout, "");

    let most = attributes(256);
    let out = c.cli_with_stdin(&["create-job", "cli"], &most);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(post(&c, "/createItem?name=rest", &most).0, 200);
    for job in ["cli", "rest"] {
        let got = c.cli(&["get-job", job]);
        assert!(
            got.stdout.contains("a0=\"1\"") && got.stdout.contains("a255=\"1\""),
            "{got:?}"
        );
    }
    // One attribute more on the same element is one too many.
    let out = c.cli_with_stdin(&["create-job", "over"], &attributes(257));
    assert_eq!(out.code, 3, "{out:?}");
}

/// Once, each of these pairs became two jobs (NFC and NFD `é` in two directories, which
/// collide on a case- or normalization-insensitive file system), and invisible or
/// reordering characters were taken in names.
#[test]
fn look_alike_names_are_one_name_or_refused() {
    let c = Controller::start();
    let create = |name: &str| c.cli_with_stdin(&["create-job", name], "<project/>");
    let refused = |name: &str, code: i32, message: &str| {
        let out = create(name);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (code, format!("\nERROR: {message}\n").as_str()),
            "{name:?}"
        );
    };

    // Compatibility form and case: refused, naming the job it looks like.
    assert_eq!(create("\u{FB01}").code, 0);
    refused(
        "fi",
        4,
        "A job named ‘\u{FB01}’ already exists (‘fi’ differs from it only by case or compatibility form)",
    );
    assert_eq!(create("J1").code, 0);
    refused(
        "j1",
        4,
        "A job named ‘J1’ already exists (‘j1’ differs from it only by case or compatibility form)",
    );
    let (status, body) = post(&c, "/createItem?name=j1", "<project/>");
    assert_eq!(status, 400);
    assert!(body.contains("A job named ‘J1’ already exists"), "{body}");

    // NFC and NFD: one job, stored in NFC, found under either spelling.
    let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
    assert_eq!(create(nfd).code, 0);
    refused(nfc, 4, &format!("Job '{nfc}' already exists"));
    assert_eq!(c.cli(&["get-job", nfd]).code, 0);
    let auth = c.admin_basic_auth_header();
    let shown = http_request(&c.addr, "GET", "/job/cafe%CC%81/api/json", &[&auth], b"");
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["name"], nfc);

    // Invisible and reordering characters, named by code point.
    refused(
        "a\u{200B}b",
        3,
        "U+200B is an invisible character, not allowed in job name ‘a\\u{200b}b’",
    );
    refused(
        "\u{202E}abc",
        3,
        "U+202E is a bidirectional text control, not allowed in job name ‘\\u{202e}abc’",
    );
    // A slash in disguise.
    refused(
        "a\u{FF0F}b",
        3,
        "‘\u{FF0F}’ (U+FF0F) reads as ‘/’, an unsafe character in job name ‘a\u{FF0F}b’",
    );
    assert_eq!(
        c.cli(&["list-jobs"]).stdout,
        format!("J1\n{nfc}\n\u{FB01}\n")
    );

    // Nodes follow the same rules.
    let node = |name: &str| c.cli_with_stdin(&["create-node", name], "<slave/>");
    assert_eq!(node("Linux").code, 0);
    let out = node("LINUX");
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            4,
            "\nERROR: A node named ‘Linux’ already exists (‘LINUX’ differs from it only by case or compatibility form)\n"
        )
    );
    assert_eq!(node(nfd).code, 0);
    assert_eq!(node(nfc).code, 4);
    assert!(
        c.cli(&["get-node", nfd])
            .stdout
            .contains(&format!("<name>{nfc}</name>"))
    );
}
