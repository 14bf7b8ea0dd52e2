//! The Jenkins CLI commands scripts call beyond jobs, nodes and builds, through the real
//! `cli`: a build's description and display name, `session-id`, `restart` (a build running
//! across it finishes SUCCESS) and the safe and shutdown forms, `reload-job` and
//! `reload-configuration` picking up a change made to the database, `list-plugins`, views,
//! and `groovy` refused; each with its usage, its errors and its permission.

use steward_tests::{
    Agent, CliOutput, Controller, DEADLINE, Freestyle, Gate, http_request, wait_until,
};

/// A user with a password and what `authenticated` has (Overall/Read, Job/Read), plus
/// `grants`.
fn user(c: &Controller, name: &str, grants: &[&str]) -> &'static str {
    const PASSWORD: &str = "correct-horse-7";
    assert_eq!(c.cli(&["create-user", name]).code, 0);
    let set = c.cli_with_stdin(&["set-password", name], &format!("{PASSWORD}\n"));
    assert_eq!(set.code, 0, "{set:?}");
    if !grants.is_empty() {
        let mut args = vec!["grant-permissions", name];
        args.extend_from_slice(grants);
        let out = c.cli(&args);
        assert_eq!(out.code, 0, "{out:?}");
    }
    PASSWORD
}

/// Asserts exit `code` with `ERROR: message` on stderr.
fn assert_error(out: &CliOutput, code: i32, message: &str) {
    assert_eq!(out.code, code, "{out:?}");
    assert!(
        out.stderr.contains(&format!("ERROR: {message}")),
        "expected ERROR: {message} in {out:?}"
    );
}

/// An online node `n1` with one executor.
fn node(c: &Controller) -> (Agent, tempfile::TempDir) {
    c.create_node_with("n1", "", 1, "NORMAL");
    let dir = tempfile::tempdir().unwrap();
    let agent = c.start_agent_in("n1", dir.path());
    (agent, dir)
}

fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

#[test]
fn a_build_gets_a_description_and_a_display_name() {
    let c = Controller::start();
    let _node = node(&c);
    c.create_job("app", &Freestyle::shell("true"));
    assert_eq!(c.cli(&["build", "app", "-s"]).code, 0);

    let out = c.cli(&["set-build-description", "app", "1", "Shipped to staging"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let build = c.list_builds("app").remove(0);
    assert_eq!(
        (build.display_name.as_str(), build.description.as_str()),
        ("-", "Shipped to staging")
    );
    // `=` reads it from stdin, line ends and all (one line in the listing).
    let out = c.cli_with_stdin(
        &["set-build-description", "app", "1", "="],
        "Shipped\nto prod\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    // `-` reads the display name from stdin; the line end that closes it is not kept.
    let out = c.cli_with_stdin(
        &["set-build-display-name", "app", "lastBuild", "-"],
        "rc-2\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let build = c.list_builds("app").remove(0);
    assert_eq!(
        (build.display_name.as_str(), build.description.as_str()),
        ("rc-2", "Shipped\\nto prod\\n")
    );
    let auth = c.admin_basic_auth_header();
    let json = http_request(&c.addr, "GET", "/job/app/1/api/json", &[&auth], b"").json();
    assert_eq!(json["description"], "Shipped\nto prod\n");
    assert_eq!(json["displayName"], "rc-2");
    assert_eq!(json["fullDisplayName"], "app rc-2");

    // Jenkins' build page posts the form field.
    let posted = http_request(
        &c.addr,
        "POST",
        "/job/app/1/submitDescription",
        &[&auth, "Content-Type: application/x-www-form-urlencoded"],
        b"description=From+the+page",
    );
    assert_eq!(posted.status, 302, "{}", posted.text());
    let json = http_request(&c.addr, "GET", "/job/app/1/api/json", &[&auth], b"").json();
    assert_eq!(json["description"], "From the page");
    let missing = http_request(
        &c.addr,
        "POST",
        "/job/app/1/submitDescription",
        &[&auth],
        b"",
    );
    assert_eq!(missing.status, 400, "{}", missing.text());
    // An empty display name is `#N` again.
    assert_eq!(c.cli(&["set-build-display-name", "app", "1", ""]).code, 0);
    let json = http_request(&c.addr, "GET", "/job/app/1/api/json", &[&auth], b"").json();
    assert_eq!(
        (
            json["displayName"].as_str(),
            json["fullDisplayName"].as_str()
        ),
        (Some("#1"), Some("app #1"))
    );

    // Jenkins' words for what is wrong, and the usage for missing arguments.
    assert_error(
        &c.cli(&["set-build-description", "app", "9", "x"]),
        3,
        "No such build #9",
    );
    assert_error(
        &c.cli(&["set-build-display-name", "app", "9", "x"]),
        3,
        "Build #9 does not exist",
    );
    assert_error(
        &c.cli(&["set-build-description", "nojob", "1", "x"]),
        3,
        "No such job 'nojob'",
    );
    let out = c.cli(&["set-build-display-name", "app", "1"]);
    assert_error(&out, 2, "Argument \"DISPLAYNAME\" is required");
    assert!(
        out.stderr
            .contains("cli set-build-display-name JOB BUILD# DISPLAYNAME"),
        "{out:?}"
    );
    let long = "x".repeat(64 * 1024 + 1);
    let out = c.cli_with_stdin(&["set-build-description", "app", "1", "="], &long);
    assert_eq!(out.code, 3, "{out:?}");
    let help = c.cli(&["help", "set-build-description"]);
    assert!(
        help.stderr.contains("'=' to read it from stdin"),
        "{help:?}"
    );

    // Run/Update, as Jenkins asks; REST answers 403 with the same words.
    let password = user(&c, "reader", &[]);
    let refused = c.cli_as(
        "reader",
        password,
        &["set-build-description", "app", "1", "x"],
        "",
    );
    assert_error(&refused, 6, "reader is missing the Run/Update permission");
    let refused = http_request(
        &c.addr,
        "POST",
        "/job/app/1/submitDescription?description=x",
        &[&basic("reader", password)],
        b"",
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(c.list_builds("app")[0].description, "From the page");
}

/// The controller's session id, once it answers.
fn session_id(c: &Controller) -> Option<String> {
    let out = c.cli(&["session-id"]);
    (out.code == 0).then(|| out.stdout.trim().to_owned())
}

#[test]
fn restart_runs_the_controller_again_in_place_and_a_running_build_finishes() {
    let c = Controller::start();
    let _node = node(&c);
    let gate = Gate::new();
    let script = format!(
        "echo before\n{}{}echo after",
        gate.mark_script("started"),
        gate.wait_script("release")
    );
    c.create_job("durable", &Freestyle::shell(&script));
    assert_eq!(c.cli(&["build", "durable", "-w"]).code, 0);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));

    let before = session_id(&c).expect("a session id");
    assert_eq!(before.len(), 36, "a UUID: {before}");
    assert_eq!(session_id(&c).as_deref(), Some(before.as_str()), "stable");
    let password = user(&c, "reader", &[]);
    let refused = c.cli_as("reader", password, &["restart"], "");
    assert_error(
        &refused,
        6,
        "reader is missing the Overall/Administer permission",
    );
    assert_error(&c.cli(&["restart", "now"]), 2, "Too many arguments: now");

    let pid = c.pid();
    let out = c.cli(&["restart"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "the answer comes first: {out:?}"
    );
    // The same process, started again: listening again on the same address.
    wait_until(DEADLINE, "the controller listening again", || {
        c.stdout.count("listening on ") == 2
    });
    let text = c.stdout.text();
    let listening: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("listening on ").nth(1))
        .collect();
    assert_eq!(listening, [c.addr.as_str(), c.addr.as_str()]);
    assert_eq!(c.pid(), pid);
    assert!(c.log.contains("restarting as asked"), "{}", c.log.text());
    let mut after = None;
    wait_until(DEADLINE, "a new session id", || {
        after = session_id(&c);
        after.is_some()
    });
    assert_ne!(after.unwrap(), before);

    // The build went on on its agent and is followed again.
    assert_eq!(c.list_builds("durable")[0].result, "RUNNING");
    c.wait_online("n1", true, DEADLINE);
    gate.open("release");
    let out = c.cli(&["console", "durable", "1", "-f"]);
    assert!(
        out.stdout
            .ends_with("+ echo after\nafter\nFinished: SUCCESS\n"),
        "{out:?}"
    );
    assert_eq!(c.list_builds("durable")[0].result, "SUCCESS");
}

#[test]
fn safe_restart_waits_for_running_builds_and_cancel_quiet_down_cancels_a_safe_shutdown() {
    let c = Controller::start();
    let _node = node(&c);
    let gate = Gate::new();
    let script = format!(
        "{}{}",
        gate.mark_script("started-$BUILD_NUMBER"),
        gate.wait_script("release-$BUILD_NUMBER")
    );
    c.create_job("slow", &Freestyle::shell(&script).concurrent());
    c.create_job("later", &Freestyle::shell("true"));
    assert_eq!(c.cli(&["build", "slow", "-w"]).code, 0);
    wait_until(DEADLINE, "build 1 started", || gate.is_marked("started-1"));

    // safe-shutdown, cancelled before the build ends: the controller stays.
    let before = session_id(&c).unwrap();
    assert_eq!(c.cli(&["safe-shutdown"]).code, 0);
    assert_eq!(c.cli(&["build", "later"]).code, 0);
    c.wait_queued("later", "Steward is about to shut down");
    assert_eq!(c.cli(&["cancel-quiet-down"]).code, 0);
    c.log
        .wait_for("quiet-down cancelled: not shutting down", DEADLINE);
    gate.open("release-1");
    wait_until(DEADLINE, "build 1 ended", || ended(&c, "slow", 1));
    wait_until(DEADLINE, "later ran", || ended(&c, "later", 1));
    assert_eq!(session_id(&c).as_deref(), Some(before.as_str()));

    // safe-restart: queued builds wait with the message; the restart comes once the
    // running build has ended.
    assert_eq!(c.cli(&["build", "slow", "-w"]).code, 0);
    wait_until(DEADLINE, "build 2 started", || gate.is_marked("started-2"));
    assert_error(
        &c.cli(&["safe-restart", "-reason", "x"]),
        2,
        "\"-reason\" is not a valid option",
    );
    assert_eq!(
        c.cli(&["safe-restart", "-message", "upgrade to 2.1"]).code,
        0
    );
    assert_eq!(c.cli(&["build", "later"]).code, 0);
    c.wait_queued("later", "Steward is about to shut down: upgrade to 2.1");
    c.log.wait_for("restarting once no build runs", DEADLINE);
    assert_eq!(
        session_id(&c).as_deref(),
        Some(before.as_str()),
        "still running"
    );
    gate.open("release-2");
    wait_until(DEADLINE, "the controller restarted", || {
        c.stdout.count("listening on ") == 2
    });
    let mut after = None;
    wait_until(DEADLINE, "a new session id", || {
        after = session_id(&c);
        after.is_some()
    });
    assert_ne!(after.unwrap(), before);
    assert_eq!(c.result_of("slow", 2), "SUCCESS");
    // A restart ends the quiet-down: the waiting build runs.
    wait_until(DEADLINE, "later ran after the restart", || {
        ended(&c, "later", 2)
    });
}

/// Whether build `number` of `job` has ended SUCCESS (false while it waits or runs).
fn ended(c: &Controller, job: &str, number: u64) -> bool {
    c.list_builds(job)
        .iter()
        .any(|b| b.number == number && b.result == "SUCCESS")
}

/// Whether process `pid` has exited (gone, or a zombie waiting for its parent).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn shutdown_answers_then_the_controller_exits() {
    let c = Controller::start();
    let pid = c.pid();
    let out = c.cli(&["shutdown"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    wait_until(DEADLINE, "the controller exited", || exited(pid));
    assert!(c.log.contains("shutting down as asked"), "{}", c.log.text());
    assert_eq!(c.stdout.count("listening on "), 1, "no restart");
}

#[test]
fn reload_picks_up_a_job_changed_in_the_database() {
    let c = Controller::start();
    c.create_job("app", &Freestyle::shell("echo one"));
    let db = rusqlite::Connection::open(c.home().join("steward.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let edited = Freestyle::shell("echo two").xml();
    db.execute(
        "UPDATE jobs SET config_xml = ?1 WHERE name = 'app'",
        [&edited],
    )
    .unwrap();
    assert!(
        c.cli(&["get-job", "app"]).stdout.contains("echo one"),
        "not yet"
    );
    let out = c.cli(&["reload-job", "app"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert!(c.cli(&["get-job", "app"]).stdout.contains("echo two"));

    // A job added by another program appears with reload-configuration; one broken is
    // named and refused until replaced.
    db.execute(
        "INSERT INTO jobs (name, config_xml, created_at, updated_at, name_key) \
         VALUES ('added', ?1, 0, 0, 'added')",
        [&Freestyle::shell("true").xml()],
    )
    .unwrap();
    db.execute(
        "UPDATE jobs SET config_xml = '<project><builders>' WHERE name = 'app'",
        [],
    )
    .unwrap();
    assert_eq!(c.cli(&["list-jobs"]).stdout, "app\n");
    let out = c.cli(&["reload-configuration"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("WARNING: job app cannot be read, builds of it are refused"),
        "{out:?}"
    );
    assert_eq!(c.cli(&["list-jobs"]).stdout, "added\napp\n");
    let out = c.cli(&["reload-job", "app"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("job 'app' XML"), "{out:?}");
    assert_eq!(c.cli(&["build", "app"]).code, 1, "unreadable");

    // Several names: each failure named, exit 5; the others reloaded.
    let out = c.cli(&["reload-job", "added", "nojob"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("nojob: No such job 'nojob'"), "{out:?}");
    assert_error(&c.cli(&["reload-job"]), 2, "Argument \"JOB\" is required");

    let password = user(&c, "reader", &[]);
    let refused = c.cli_as("reader", password, &["reload-job", "added"], "");
    assert_error(
        &refused,
        6,
        "reader is missing the Job/Configure permission",
    );
    let refused = c.cli_as("reader", password, &["reload-configuration"], "");
    assert_error(
        &refused,
        6,
        "reader is missing the Overall/Administer permission",
    );
}

#[test]
fn list_plugins_prints_jenkins_columns() {
    let c = Controller::start();
    let out = c.cli(&["list-plugins", "git"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "git Git plugin 5.2.1\n"),
        "{out:?}"
    );
    let all = c.cli(&["list-plugins"]);
    assert_eq!(all.code, 0, "{all:?}");
    let lines: Vec<&str> = all.stdout.lines().collect();
    // Padded to the longest short name (credentials-binding) and display name (Matrix
    // Authorization Strategy Plugin), as Jenkins' `%-Ns %-Ms %s`.
    let git = format!("{:<19} {:<36} 5.2.1", "git", "Git plugin");
    assert!(lines.contains(&git.as_str()), "{all:?}");
    assert!(lines.iter().any(|l| l.starts_with("junit ")), "{all:?}");
    let starts: Vec<usize> = lines
        .iter()
        .map(|l| {
            let name_end = l.find(' ').unwrap();
            l.len() - l[name_end..].trim_start().len()
        })
        .collect();
    assert!(starts.iter().all(|s| *s == 20), "{all:?}");
    assert_error(
        &c.cli(&["list-plugins", "maven-plugin"]),
        3,
        "No plugin with the name 'maven-plugin' found",
    );
    let password = user(&c, "reader", &[]);
    let refused = c.cli_as("reader", password, &["list-plugins"], "");
    assert_error(
        &refused,
        6,
        "reader is missing the Overall/Administer permission",
    );
    let rest = http_request(
        &c.addr,
        "GET",
        "/pluginManager/api/json?depth=1",
        &[&basic("reader", password)],
        b"",
    );
    assert_eq!(rest.status, 403);
}

#[test]
fn groovy_and_groovysh_are_refused_with_one_line_saying_why() {
    let c = Controller::start();
    for command in ["groovy", "groovysh"] {
        let out = c.cli_with_stdin(&[command, "="], "println 'hi'");
        assert_eq!(out.code, 1, "{out:?}");
        assert_eq!(out.stdout, "");
        let error = out.stderr.trim();
        assert!(!error.contains('\n'), "one line: {out:?}");
        assert!(
            error.starts_with(&format!(
                "ERROR: {command} is not available: Steward has no JVM and no script console"
            )),
            "{out:?}"
        );
        assert!(error.contains("exec-on-node"), "{out:?}");
        let help = c.cli(&["help", command]);
        assert!(
            help.stderr.contains("refused, Steward has no Groovy"),
            "{help:?}"
        );
    }
}

const WEB_VIEW: &str = "<hudson.model.ListView><name>web</name><description>Front end</description>\
    <jobNames><comparator class=\"hudson.util.CaseInsensitiveComparator\"/><string>api</string></jobNames>\
    <includeRegex>web-.*</includeRegex></hudson.model.ListView>";

#[test]
fn views_are_created_shown_updated_and_deleted() {
    let c = Controller::start();
    for job in ["api", "web-app", "old-web-app"] {
        c.create_job(job, &Freestyle::shell("true"));
    }
    let out = c.cli_with_stdin(&["create-view"], WEB_VIEW);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.cli(&["list-jobs", "web"]).stdout, "api\nweb-app\n");
    assert_eq!(
        c.cli(&["list-jobs", "all"]).stdout,
        "api\nold-web-app\nweb-app\n"
    );
    let xml = c.cli(&["get-view", "web"]);
    assert_eq!(xml.code, 0, "{xml:?}");
    assert!(
        xml.stdout.starts_with(
            "<?xml version=\"1.1\" encoding=\"UTF-8\"?>\n<hudson.model.ListView>\n  <name>web</name>\n  <description>Front end</description>\n"
        ),
        "{xml:?}"
    );
    assert!(xml.stdout.contains("    <string>api</string>\n"), "{xml:?}");
    assert!(
        xml.stdout.contains("<includeRegex>web-.*</includeRegex>"),
        "{xml:?}"
    );
    // What get-view prints, create-view takes back (under another name).
    assert_eq!(
        c.cli_with_stdin(&["create-view", "web2"], &xml.stdout).code,
        0
    );
    assert_eq!(c.cli(&["list-jobs", "web2"]).stdout, "api\nweb-app\n");
    let all = c.cli(&["get-view", "all"]);
    assert!(
        all.stdout
            .contains("<hudson.model.AllView>\n  <name>all</name>"),
        "{all:?}"
    );

    // update-view keeps the name, changes the rest.
    let out = c.cli_with_stdin(
        &["update-view", "web"],
        "<hudson.model.ListView><name>other</name><jobNames><string>OLD-WEB-APP</string></jobNames></hudson.model.ListView>",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(c.cli(&["list-jobs", "web"]).stdout, "old-web-app\n");

    // Bad input, with what is wrong.
    assert_error(
        &c.cli_with_stdin(&["create-view"], WEB_VIEW),
        4,
        "View 'web' already exists",
    );
    assert_error(
        &c.cli_with_stdin(&["create-view", "all"], WEB_VIEW),
        4,
        "View 'all' already exists",
    );
    assert_error(
        &c.cli_with_stdin(&["create-view", "bad/name"], WEB_VIEW),
        3,
        "Invalid view name: ‘/’ is an unsafe character in view name ‘bad/name’",
    );
    let out = c.cli_with_stdin(
        &["create-view", "broken"],
        "<hudson.model.ListView><includeRegex>(</includeRegex></hudson.model.ListView>",
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("ERROR: Invalid includeRegex (: "),
        "{out:?}"
    );
    assert_error(
        &c.cli_with_stdin(&["create-view", "x"], "<hudson.plugins.Dashboard/>"),
        3,
        "Invalid view XML: expected root element <hudson.model.ListView> or <hudson.model.AllView>",
    );
    assert_error(
        &c.cli_with_stdin(&["update-view", "web"], "<hudson.model.AllView/>"),
        3,
        "Expecting view type: class hudson.model.ListView but got: class hudson.model.AllView instead.",
    );
    assert_error(
        &c.cli(&["get-view", "nope"]),
        3,
        "No view named nope inside view Jenkins",
    );
    assert_error(
        &c.cli(&["list-jobs", "nope"]),
        3,
        "No view or item group with the given name 'nope' found.",
    );
    assert_error(
        &c.cli(&["delete-view", "all"]),
        4,
        "Jenkins does not allow to delete 'all' view",
    );
    let out = c.cli(&["delete-view", "web2", "nope"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .contains("nope: No view named nope inside view Jenkins"),
        "{out:?}"
    );
    assert_error(
        &c.cli(&["get-view", "web2"]),
        3,
        "No view named web2 inside view Jenkins",
    );

    // Permissions: View/Create to create; a view listing a job the caller reads is readable
    // without View/Read, as in Jenkins; an empty one is not.
    let password = user(&c, "reader", &[]);
    let refused = c.cli_as("reader", password, &["create-view", "mine"], WEB_VIEW);
    assert_error(&refused, 6, "reader is missing the View/Create permission");
    assert_eq!(
        c.cli_as("reader", password, &["get-view", "web"], "").code,
        0
    );
    let empty = "<hudson.model.ListView><name>empty</name></hudson.model.ListView>";
    assert_eq!(c.cli_with_stdin(&["create-view"], empty).code, 0);
    let refused = c.cli_as("reader", password, &["get-view", "empty"], "");
    assert_error(&refused, 6, "reader is missing the View/Read permission");
    let refused = c.cli_as("reader", password, &["delete-view", "web"], "");
    assert_error(&refused, 6, "reader is missing the View/Delete permission");
    let out = c.cli(&["grant-permissions", "reader", "View/Configure"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        c.cli_as("reader", password, &["get-view", "empty"], "")
            .code,
        0,
        "Configure implies Read"
    );
    assert_eq!(c.cli(&["delete-view", "web", "empty"]).code, 0);
    assert_eq!(c.cli(&["list-jobs", "All"]).code, 0);
}

#[test]
fn views_over_rest() {
    let c = Controller::start();
    c.create_job("web-app", &Freestyle::shell("true"));
    c.create_job("api", &Freestyle::shell("true"));
    let auth = c.admin_basic_auth_header();
    let get = |path: &str| http_request(&c.addr, "GET", path, &[&auth], b"");
    let all = get("/view/all/api/json");
    assert_eq!(all.status, 200, "{}", all.text());
    let all = all.json();
    assert_eq!(all["_class"], "hudson.model.AllView");
    assert_eq!(all["name"], "all");
    assert_eq!(all["url"], c.url.as_str());
    assert_eq!(all["jobs"].as_array().unwrap().len(), 2);
    let created = http_request(
        &c.addr,
        "POST",
        "/createView?name=web",
        &[&auth, "Content-Type: text/xml; charset=utf-8"],
        WEB_VIEW.as_bytes(),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let again = http_request(
        &c.addr,
        "POST",
        "/createView?name=web",
        &[&auth],
        WEB_VIEW.as_bytes(),
    );
    assert_eq!(
        (again.status, again.text()),
        (400, "A view already exists with the name web\n".to_owned())
    );
    let view = get("/view/web/api/json").json();
    assert_eq!(view["url"], format!("{}view/web/", c.url));
    assert_eq!(view["description"], "Front end");
    let names: Vec<&str> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web-app"]);
    assert_eq!(view["jobs"][1]["color"], "notbuilt");
    let root = get("/api/json").json();
    assert_eq!(root["primaryView"]["name"], "all");
    let views: Vec<&str> = root["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(views, ["all", "web"]);
    let config = get("/view/web/config.xml");
    assert!(
        config
            .text()
            .starts_with("<?xml version=\"1.1\" encoding=\"UTF-8\"?>\n<hudson.model.ListView>"),
        "{}",
        config.text()
    );
    // A job through a view.
    let job = get("/view/web/job/web-app/api/json");
    assert_eq!(
        (job.status, job.json()["name"].as_str()),
        (200, Some("web-app"))
    );
    let bad = http_request(
        &c.addr,
        "POST",
        "/view/web/config.xml",
        &[&auth],
        b"<hudson.model.ListView>",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(get("/view/nope/api/json").status, 404);
    let refused = http_request(&c.addr, "POST", "/view/all/doDelete", &[&auth], b"");
    assert_eq!(
        (refused.status, refused.text()),
        (
            400,
            "Jenkins does not allow to delete 'all' view\n".to_owned()
        )
    );
    let deleted = http_request(&c.addr, "POST", "/view/web/doDelete", &[&auth], b"");
    assert_eq!(deleted.status, 302);
    assert_eq!(get("/view/web/api/json").status, 404);
}

#[test]
fn jenkins_lifecycle_posts_answer_then_act() {
    let c = Controller::start();
    let auth = c.admin_basic_auth_header();
    let password = user(&c, "reader", &[]);
    for path in ["/restart", "/safeRestart", "/exit", "/safeExit", "/reload"] {
        let refused = http_request(&c.addr, "POST", path, &[&basic("reader", password)], b"");
        assert_eq!(refused.status, 403, "{path}: {}", refused.text());
    }
    let reload = http_request(&c.addr, "POST", "/reload", &[&auth], b"");
    assert_eq!(reload.status, 302, "{}", reload.text());
    let before = session_id(&c).unwrap();
    let restart = http_request(&c.addr, "POST", "/safeRestart?message=now", &[&auth], b"");
    assert_eq!(restart.status, 302, "{}", restart.text());
    wait_until(DEADLINE, "the controller restarted", || {
        c.stdout.count("listening on ") == 2
    });
    let mut after = None;
    wait_until(DEADLINE, "a new session id", || {
        after = session_id(&c);
        after.is_some()
    });
    assert_ne!(after.unwrap(), before);
    let pid = c.pid();
    let exit = http_request(&c.addr, "POST", "/exit", &[&auth], b"");
    assert_eq!(
        (exit.status, exit.text()),
        (200, "Shutting down\n".to_owned())
    );
    wait_until(DEADLINE, "the controller exited", || exited(pid));
}
