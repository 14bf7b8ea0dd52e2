//! Git checkouts as the Git plugin does them, against real repositories: a branch and a tag
//! over `file://`, `git daemon` with the clone options, the plugin's variables, and the
//! change log between builds on `list-changes` and REST.

use steward_tests::git::{GitDaemon, Repo, git, git_job};
use steward_tests::{Controller, http_request};

const NODE: &str = "n1";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let (agent, work) = c.node_with_agent(NODE);
    (c, agent, work)
}

const SHOW_ENV: &str = "echo \"C=$GIT_COMMIT B=$GIT_BRANCH U=$GIT_URL P=${GIT_PREVIOUS_COMMIT:-none} S=${GIT_PREVIOUS_SUCCESSFUL_COMMIT:-none}\"; cat README";

#[test]
fn a_branch_is_checked_out_with_the_plugins_variables_and_the_changes_between_builds() {
    let (c, _agent, _work) = setup();
    let repo = Repo::new();
    let first = repo.commit("README", "hello-one\n", "Initial commit", "Ann Lee");
    let job = git_job(&repo.url(), "*/main", "", SHOW_ENV);
    let out = c.cli_with_stdin(&["create-job", "app"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("WARNING"),
        "Git is not ignored: {out:?}"
    );
    assert_eq!(c.cli(&["build", "app", "-s"]).code, 0);
    let console = c.console("app", 1);
    assert!(
        console.contains(&format!("Checking out Revision {first} (origin/main)")),
        "{console}"
    );
    assert!(
        console.contains(&format!(
            "C={first} B=origin/main U={} P=none S=none",
            repo.url()
        )),
        "{console}"
    );
    assert!(console.contains("hello-one"), "{console}");
    assert!(
        console.contains("First time build. Skipping changelog."),
        "{console}"
    );
    assert!(
        console.contains("Commit message: \"Initial commit\""),
        "{console}"
    );

    let second = repo.commit(
        "src/feature.txt",
        "f\n",
        "Add the feature\n\nWith a body.",
        "Bob Ray",
    );
    assert_eq!(c.cli(&["build", "app", "-s"]).code, 0);
    let console = c.console("app", 2);
    assert!(
        console.contains(&format!(
            "C={second} B=origin/main U={} P={first} S={first}",
            repo.url()
        )),
        "{console}"
    );
    let changes = c.cli(&["list-changes", "app", "2"]);
    assert_eq!(changes.code, 0, "{changes:?}");
    assert_eq!(
        changes.stdout,
        "Bob Ray\tAdd the feature\n  src/feature.txt\n"
    );
    let csv = c.cli(&["list-changes", "app", "1-2", "-format", "CSV"]);
    assert_eq!(csv.stdout, "\"Bob Ray\",\"Add the feature\"\n");
    assert!(c.cli(&["list-changes", "app", "1"]).stdout.is_empty());

    let auth = c.admin_basic_auth_header();
    let build = http_request(&c.addr, "GET", "/job/app/2/api/json", &[auth.as_str()], b"").json();
    let set = &build["changeSets"][0];
    assert_eq!(set["kind"], "git", "{build}");
    assert_eq!(set["items"][0]["commitId"], second.as_str());
    assert_eq!(set["items"][0]["msg"], "Add the feature");
    assert_eq!(set["items"][0]["author"]["fullName"], "Bob Ray");
    assert_eq!(set["items"][0]["authorEmail"], "bob@example.com");
    assert_eq!(set["items"][0]["affectedPaths"][0], "src/feature.txt");
    assert_eq!(set["items"][0]["paths"][0]["editType"], "add");
    assert_eq!(build["changeSet"]["items"][0]["commitId"], second.as_str());
}

#[test]
fn a_tag_specifier_checks_out_the_tagged_commit() {
    let (c, _agent, _work) = setup();
    let repo = Repo::new();
    let tagged = repo.commit("README", "content-of-release\n", "Release 1.0", "Ann Lee");
    repo.tag("v1.0");
    repo.commit(
        "README",
        "content-after-release\n",
        "After the release",
        "Ann Lee",
    );
    let job = git_job(&repo.url(), "refs/tags/v1.*", "", SHOW_ENV);
    assert_eq!(c.cli_with_stdin(&["create-job", "rel"], &job).code, 0);
    assert_eq!(c.cli(&["build", "rel", "-s"]).code, 0);
    let console = c.console("rel", 1);
    assert!(
        console.contains(&format!("C={tagged} B=refs/tags/v1.0")),
        "{console}"
    );
    assert!(
        console.contains("content-of-release") && !console.contains("content-after-release"),
        "{console}"
    );
}

#[test]
fn git_daemon_with_a_shallow_clone_a_target_directory_a_clean_and_a_local_branch() {
    let (c, _agent, work) = setup();
    let repo = Repo::new();
    repo.commit("README", "one\n", "One", "Ann Lee");
    let head = repo.commit("README", "two\n", "Two", "Ann Lee");
    let daemon = GitDaemon::start(repo.base());
    let extensions = "<hudson.plugins.git.extensions.impl.RelativeTargetDirectory><relativeTargetDir>src</relativeTargetDir></hudson.plugins.git.extensions.impl.RelativeTargetDirectory>\
        <hudson.plugins.git.extensions.impl.CloneOption><shallow>true</shallow><noTags>false</noTags><depth>1</depth><timeout>2</timeout></hudson.plugins.git.extensions.impl.CloneOption>\
        <hudson.plugins.git.extensions.impl.CleanBeforeCheckout><deleteUntrackedNestedRepositories>false</deleteUntrackedNestedRepositories></hudson.plugins.git.extensions.impl.CleanBeforeCheckout>\
        <hudson.plugins.git.extensions.impl.LocalBranch><localBranch>**</localBranch></hudson.plugins.git.extensions.impl.LocalBranch>";
    let script = "cd src && echo \"branch=$(git rev-parse --abbrev-ref HEAD) depth=$(git rev-list --count HEAD) local=$GIT_LOCAL_BRANCH\" && echo \"files=$(ls | tr '\\n' ' ')\" && touch untracked.tmp";
    let job = git_job(&daemon.url("origin.git"), "main", extensions, script);
    assert_eq!(c.cli_with_stdin(&["create-job", "shallow"], &job).code, 0);
    assert_eq!(c.cli(&["build", "shallow", "-s"]).code, 0);
    let console = c.console("shallow", 1);
    assert!(
        console.contains("Using shallow clone with depth 1"),
        "{console}"
    );
    assert!(console.contains("--depth=1"), "{console}");
    assert!(
        console.contains("branch=main depth=1 local=main"),
        "{console}"
    );
    let checkout = work.path().join("workspace/shallow/src");
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]), head);
    assert!(checkout.join("untracked.tmp").exists());
    // The next build cleans what the last one left.
    assert_eq!(c.cli(&["build", "shallow", "-s"]).code, 0);
    let console = c.console("shallow", 2);
    assert!(console.contains("Cleaning workspace"), "{console}");
    assert!(
        console.contains("Fetching changes from the remote Git repository"),
        "{console}"
    );
    assert!(
        console.contains("files=README \n"),
        "cleaned before the step: {console}"
    );
}

#[test]
fn a_missing_branch_and_a_missing_repository_fail_the_build_with_the_reason() {
    let (c, _agent, _work) = setup();
    let repo = Repo::new();
    repo.commit("README", "x\n", "X", "Ann Lee");
    let job = git_job(&repo.url(), "*/nope", "", "echo never-ran");
    assert_eq!(c.cli_with_stdin(&["create-job", "nobranch"], &job).code, 0);
    assert_eq!(c.cli(&["build", "nobranch", "-s"]).code, 2);
    let console = c.console("nobranch", 1);
    assert!(
        console.contains("ERROR: Couldn't find any revision to build."),
        "{console}"
    );
    assert!(!console.contains("never-ran\n") && console.ends_with("Finished: FAILURE\n"));
    let job = git_job(
        "file:///nonexistent/repo.git",
        "*/main",
        "",
        "echo never-ran",
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "norepo"], &job).code, 0);
    assert_eq!(c.cli(&["build", "norepo", "-s"]).code, 2);
    let console = c.console("norepo", 1);
    assert!(console.contains("ERROR: Command \"git fetch"), "{console}");
    assert!(console.ends_with("Finished: FAILURE\n"), "{console}");
}

#[test]
fn an_agent_without_git_says_so() {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 1, "NORMAL");
    let secret = c.secret(NODE);
    // PATH without git: the checkout's runner is still found (the agent's bin directory
    // comes first on a step's PATH).
    let empty = tempfile::tempdir().unwrap();
    let _agent = steward_tests::Agent::spawn_env(
        &[
            "-webSocket",
            "-url",
            &c.url,
            "-name",
            NODE,
            "-secret",
            &secret,
            "-workDir",
            work.path().to_str().unwrap(),
        ],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    c.wait_online(NODE, true, steward_tests::DEADLINE);
    let repo = Repo::new();
    repo.commit("README", "x\n", "X", "Ann Lee");
    let job = git_job(&repo.url(), "*/main", "", "echo never-ran");
    assert_eq!(c.cli_with_stdin(&["create-job", "nogit"], &job).code, 0);
    assert_eq!(c.cli(&["build", "nogit", "-s"]).code, 2);
    let console = c.console("nogit", 1);
    assert!(
        console.contains("ERROR: git is not installed on this node (no `git` on PATH): a Git checkout needs git 2.3 or later"),
        "{console}"
    );
}
