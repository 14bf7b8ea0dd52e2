//! Where Jenkins' CLI and REST differ from a naive answer, through the real binaries:
//! "did you mean" for unknown jobs and nodes, the built-in node by the empty name,
//! `build -c` and `-r`, job renames and next build numbers over REST, `/me` and
//! `/user/NAME/`, unquoted queue parameters, and one-line, display-aligned outputs.

use steward_tests::git::{Repo, git_job};
use steward_tests::{Controller, Freestyle, http_request};

#[test]
fn unknown_jobs_and_nodes_come_with_the_nearest_name() {
    let c = Controller::start();
    let none = c.cli(&["console", "nojob"]);
    assert_eq!(
        (none.code, none.stderr.as_str()),
        (3, "\nERROR: No such job 'nojob'\n"),
        "no job to suggest"
    );
    c.create_job("long", &Freestyle::shell("true"));
    c.create_job("build-all", &Freestyle::shell("true"));
    let near = c.cli(&["console", "nojob"]);
    assert_eq!(
        (near.code, near.stderr.as_str()),
        (
            3,
            "\nERROR: No such job 'nojob'; perhaps you meant 'long'?\n"
        )
    );

    let lonely = c.cli(&["offline-node", "x"]);
    assert_eq!(
        (lonely.code, lonely.stderr.as_str()),
        (3, "\nERROR: No such agent \"x\" exists.\n")
    );
    c.create_node("linux-1", "");
    for command in [
        "offline-node",
        "online-node",
        "connect-node",
        "disconnect-node",
    ] {
        let out = c.cli(&[command, "linux1"]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (
                3,
                "\nERROR: No such agent \"linux1\" exists. Did you mean \"linux-1\"?\n"
            ),
            "{command}"
        );
    }
    // get-node keeps Jenkins' own words for it.
    assert_eq!(
        c.cli(&["get-node", "linux1"]).stderr,
        "\nERROR: No such node 'linux1'\n"
    );
}

#[test]
fn the_empty_name_is_the_built_in_node() {
    let c = Controller::start();
    let built_in = || {
        let response = http_request(
            &c.addr,
            "GET",
            "/computer/(built-in)/api/json",
            &[&c.admin_basic_auth_header()],
            b"",
        );
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    };
    assert_eq!(built_in()["temporarilyOffline"], false);
    let off = c.cli(&["offline-node", "", "-m", "controller maintenance"]);
    assert_eq!(off.code, 0, "{off:?}");
    let json = built_in();
    assert_eq!(json["temporarilyOffline"], true);
    assert_eq!(json["offlineCauseReason"], "controller maintenance");
    assert_eq!(c.cli(&["wait-node-offline", ""]).code, 0);
    assert_eq!(c.cli(&["connect-node", "(built-in)"]).code, 0);
    assert_eq!(c.cli(&["online-node", "(master)"]).code, 0);
    assert_eq!(built_in()["temporarilyOffline"], false);
    assert_eq!(c.cli(&["wait-node-online", ""]).code, 0);
}

#[test]
fn build_c_polls_first_and_r_is_taken() {
    let c = Controller::start();
    c.create_job("plain", &Freestyle::shell("true"));
    // No source control: Jenkins' "No SCM", and no build.
    let none = c.cli(&["build", "plain", "-c"]);
    assert_eq!(
        (none.code, none.stdout.as_str()),
        (0, "No SCM\n"),
        "{none:?}"
    );
    assert_eq!(c.queue(), []);

    let repo = Repo::new();
    let commit = repo.commit("a.txt", "a\n", "First", "Ann Lee");
    let job = git_job(&repo.url(), "*/main", "", "true");
    assert_eq!(c.cli_with_stdin(&["create-job", "app"], &job).code, 0);
    let changed = c.cli(&["build", "app", "-c"]);
    assert_eq!(changed.code, 0, "{changed:?}");
    assert!(
        changed
            .stdout
            .contains(&format!("[poll] New head revision {commit}\n"))
            && changed.stdout.ends_with("Changes found\n"),
        "{changed:?}"
    );
    let queued = c.queue();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].job, "app");

    assert_eq!(c.cli(&["build", "plain", "-r", "2"]).code, 0);
    let bad = c.cli(&["build", "plain", "-r", "x"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .starts_with("\nERROR: \"x\" is not a valid value for \"-r\"\n"),
        "{bad:?}"
    );
}

#[test]
fn jobs_are_renamed_and_renumbered_over_rest() {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "", 1, "NORMAL");
    let _agent = c.start_agent_in("n1", work.path());
    c.create_job("old", &Freestyle::shell("echo built"));
    let first = c.cli(&["build", "old", "-s"]);
    assert_eq!(first.code, 0, "{first:?}");
    let admin = c.admin_basic_auth_header();
    let post = |path: &str, body: &[u8]| {
        http_request(
            &c.addr,
            "POST",
            path,
            &[&admin, "Content-Type: application/x-www-form-urlencoded"],
            body,
        )
    };

    let renamed = post("/job/old/doRename?newName=new%20name", b"");
    assert_eq!(renamed.status, 302, "{}", renamed.text());
    assert!(
        renamed
            .header("location")
            .is_some_and(|l| l.ends_with("/job/new%20name/")),
        "{:?}",
        renamed.header("location")
    );
    assert_eq!(c.cli(&["list-jobs"]).stdout, "new name\n");
    // The build, its console and the counter followed the job.
    assert!(c.console("new name", 1).contains("built"));
    assert_eq!(
        http_request(&c.addr, "GET", "/job/old/api/json", &[&admin], b"").status,
        404
    );
    c.create_job("other", &Freestyle::shell("true"));
    let taken = post("/job/other/doRename?newName=new%20name", b"");
    assert_eq!(taken.status, 400, "{}", taken.text());
    assert_eq!(c.cli(&["list-jobs"]).stdout, "new name\nother\n");

    // python-jenkins' set_next_build_number: never below what was given out.
    let low = post(
        "/job/new%20name/nextbuildnumber/submit",
        b"nextBuildNumber=1",
    );
    assert_eq!(low.status, 400, "{}", low.text());
    assert!(low.text().contains("must be at least 2"), "{}", low.text());
    let set = post(
        "/job/new%20name/nextbuildnumber/submit",
        b"nextBuildNumber=10",
    );
    assert_eq!(set.status, 302, "{}", set.text());
    let next = c.cli(&["build", "new name", "-s"]);
    assert!(
        next.stdout.starts_with("Started new name #10\n"),
        "{next:?}"
    );
}

#[test]
fn me_points_at_the_users_page() {
    let c = Controller::start();
    let admin = c.admin_basic_auth_header();
    let me = http_request(&c.addr, "GET", "/me", &[&admin], b"");
    assert_eq!(me.status, 302);
    assert!(
        me.header("location")
            .is_some_and(|l| l.ends_with("/user/admin/")),
        "{:?}",
        me.header("location")
    );
    let page = http_request(&c.addr, "GET", "/user/admin/", &[&admin], b"");
    assert_eq!(
        (page.status, page.text()),
        (200, "admin\tadmin\n".to_owned())
    );
    assert_eq!(
        http_request(&c.addr, "GET", "/user/nobody/", &[&admin], b"").status,
        404
    );
}

#[test]
fn values_stay_on_one_line_and_queue_parameters_are_unquoted() {
    let c = Controller::start();
    c.create_job(
        "params",
        &Freestyle::shell("true").string_parameter("BRANCH", "main"),
    );
    let queued = c.cli(&["build", "params", "-p", "BRANCH=a=b&c=d"]);
    assert_eq!(queued.code, 0, "{queued:?}");
    let multi = c.cli(&["build", "params", "-p", "BRANCH=one\ntwo\tthree"]);
    assert_eq!(multi.code, 0, "{multi:?}");
    let items = http_request(
        &c.addr,
        "GET",
        "/queue/api/json",
        &[&c.admin_basic_auth_header()],
        b"",
    )
    .json();
    let params: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["params"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["\nBRANCH=a=b&c=d", "\nBRANCH=one\ntwo\tthree"]);
    // `queue`: one line per item, the line feed and tab written as \n and \t.
    let listed = c.cli(&["queue"]);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{listed:?}");
    assert_eq!(
        lines[1].split('\t').nth(2),
        Some("BRANCH=one\\ntwo\\tthree")
    );

    // list-nodes lines its columns up by display width: 构建机 takes six columns.
    c.create_node("构建机", "");
    c.create_node("ab", "");
    let nodes = c.cli(&["list-nodes"]);
    let rows: Vec<&str> = nodes.stdout.lines().collect();
    assert!(rows[0].starts_with("NAME    STATE"), "{nodes:?}");
    assert!(rows[1].starts_with("ab      offline"), "{nodes:?}");
    assert!(rows[2].starts_with("构建机  offline"), "{nodes:?}");
}
