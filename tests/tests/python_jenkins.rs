//! The REST API (compat §10) through python-jenkins, as installed by `scripts/test`, and
//! the answers to requests python-jenkins never makes wrong.

use std::process::Command;

use steward_tests::{Controller, DEADLINE, http_get, http_request};

/// Runs `tests/python/SCRIPT` with `args` and checks that every check passed.
fn run_python(script: &str, args: &[&str]) {
    let path = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'jenkins'"),
        "python-jenkins is not installed: run the tests with scripts/test"
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
}

#[test]
fn python_jenkins_manages_nodes() {
    let c = Controller::start();
    c.create_node("agent-1", "linux");
    let _agent = c.agent("agent-1", &[]);
    c.wait_online("agent-1", true, DEADLINE);
    run_python("nodes_api.py", &[&c.url, "admin", &c.token, "agent-1"]);
}

#[test]
fn python_jenkins_creates_builds_stops_and_deletes_jobs() {
    let c = Controller::start();
    c.create_node("builder", "linux");
    let work = tempfile::tempdir().unwrap();
    let _agent = c.agent("builder", &["-workDir", work.path().to_str().unwrap()]);
    c.wait_online("builder", true, DEADLINE);
    run_python("jobs_api.py", &[&c.url, "admin", &c.token, "builder"]);
}

#[test]
fn rest_api_refuses_anonymous_and_bad_tokens() {
    let c = Controller::start();
    let anonymous = http_get(&c.addr, "/computer/api/json");
    assert_eq!(anonymous.status, 403);
    assert!(
        anonymous
            .text()
            .contains("anonymous is missing the Overall/Read permission")
    );
    assert_eq!(http_get(&c.addr, "/me/api/json").status, 403);
    assert_eq!(http_get(&c.addr, "/crumbIssuer/api/json").status, 403);
    for path in ["/queue/api/json", "/job/x/api/json", "/api/json"] {
        let anonymous = http_get(&c.addr, path);
        assert_eq!(
            (anonymous.status, anonymous.text()),
            (
                403,
                "anonymous is missing the Overall/Read permission\n".to_owned()
            ),
            "{path}"
        );
    }
}

#[test]
fn rest_job_requests_with_bad_input_get_clear_answers() {
    let c = Controller::start();
    let auth = c.admin_basic_auth_header();
    let request = |method: &str, path: &str, body: &str| {
        http_request(&c.addr, method, path, &[&auth], body.as_bytes())
    };
    let expect = |method: &str, path: &str, body: &str, status: u16, text: &str| {
        let answer = request(method, path, body);
        assert_eq!(
            (answer.status, answer.text().contains(text)),
            (status, true),
            "{method} {path}: {}",
            answer.text()
        );
    };

    expect("GET", "/job/nope/api/json", "", 404, "No such job 'nope'");
    expect("POST", "/job/nope/build", "", 404, "No such job 'nope'");
    expect(
        "POST",
        "/createItem",
        "<project/>",
        400,
        "'name' is required",
    );
    expect("POST", "/createItem?name=a%2Fb", "<project/>", 400, "‘/’");
    expect(
        "POST",
        "/createItem?name=x",
        "<flow-definition/>",
        400,
        "Invalid job XML",
    );
    expect("POST", "/createItem?name=x", "", 400, "Invalid job XML");
    expect("POST", "/createItem?name=x", "<project/>", 200, "");
    expect(
        "POST",
        "/createItem?name=x",
        "<project/>",
        400,
        "already exists",
    );

    let huge = "/job/x/99999999999999999999999/api/json";
    expect(
        "GET",
        huge,
        "",
        404,
        "No such build #99999999999999999999999",
    );
    expect("GET", "/job/x/1/consoleText", "", 404, "No such build #1");
    expect(
        "GET",
        "/job/x/lastBuild/api/json",
        "",
        404,
        "produced no build",
    );
    expect(
        "GET",
        "/job/x/nextBuild/api/json",
        "",
        404,
        "lastSuccessfulBuild",
    );
    expect(
        "POST",
        "/job/x/buildWithParameters?A=1",
        "",
        400,
        "not parameterized",
    );

    let named = request("GET", "/job/x/api/json?tree=name", "");
    assert_eq!(
        named.json(),
        serde_json::json!({"_class": "hudson.model.FreeStyleProject", "name": "x"})
    );
    expect(
        "GET",
        "/job/x/api/json?tree=builds[",
        "",
        400,
        "Malformed tree",
    );

    expect("POST", "/queue/cancelItem", "", 400, "'id' is required");
    expect(
        "POST",
        "/queue/cancelItem?id=abc",
        "",
        400,
        "Invalid queue id 'abc'",
    );
    expect(
        "POST",
        "/queue/cancelItem?id=42",
        "",
        404,
        "Provided id (42) not found",
    );
    expect(
        "GET",
        "/queue/item/18446744073709551616/api/json",
        "",
        404,
        "No queue item",
    );

    // No agent: the build waits, and the item says why until it is cancelled.
    let queued = request("POST", "/job/x/build", "");
    assert_eq!(queued.status, 201, "{}", queued.text());
    let location = queued.header("Location").expect("Location").to_owned();
    let path = location
        .strip_prefix(c.url.as_str())
        .expect("under the root");
    let id: u64 = path
        .strip_prefix("queue/item/")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("Location {location}"));
    let item = request("GET", &format!("/{path}api/json"), "").json();
    assert_eq!(
        (item["id"].as_u64(), item["blocked"].as_bool()),
        (Some(id), Some(false))
    );
    expect("POST", &format!("/queue/cancelItem?id={id}"), "", 204, "");
    let item = request("GET", &format!("/{path}api/json"), "").json();
    assert_eq!(
        (item["cancelled"].as_bool(), item["executable"].is_null()),
        (Some(true), true),
        "{item}"
    );

    expect("POST", "/job/x/doDelete", "", 302, "");
    expect("GET", "/job/x/api/json", "", 404, "No such job 'x'");
}

#[test]
fn python_jenkins_renames_renumbers_and_reads_queued_parameters() {
    let c = Controller::start();
    run_python("rename_api.py", &[&c.url, "admin", &c.token]);
}

#[test]
fn python_jenkins_manages_views_and_reads_the_plugins() {
    let c = Controller::start();
    for job in ["web-app", "web-docs", "api"] {
        c.create_job(job, &steward_tests::Freestyle::shell("true"));
    }
    run_python("views_api.py", &[&c.url, "admin", &c.token]);
}
