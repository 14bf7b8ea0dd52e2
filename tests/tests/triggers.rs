//! Triggers as Jenkins' are: `notifyCommit` and a signed GitHub webhook poll with `git
//! ls-remote` and start one build per new commit, and jobs chain through `BuildTrigger`
//! and `ReverseBuildTrigger` by result. (The cron timer's test waits on the clock:
//! clock.rs.)

use hmac::{Hmac, Mac};
use sha2::Sha256;
use steward_tests::git::{Repo, git_job};
use steward_tests::{Controller, DEADLINE, Freestyle, http_request, wait_until};

const NODE: &str = "n1";

fn with_triggers(job: &str, triggers: &str) -> String {
    job.replace(
        "<builders>",
        &format!("<triggers>{triggers}</triggers><builders>"),
    )
}

const SCM_TRIGGER: &str = "<hudson.triggers.SCMTrigger><spec></spec><ignorePostCommitHooks>false</ignorePostCommitHooks></hudson.triggers.SCMTrigger>";

fn polling_log(c: &Controller, job: &str) -> String {
    let auth = c.admin_basic_auth_header();
    http_request(
        &c.addr,
        "GET",
        &format!("/job/{job}/scmPollLog/pollingLog"),
        &[auth.as_str()],
        b"",
    )
    .text()
}

/// Waits until the job's last poll has ended and its log says `outcome`, where the poll
/// before it said something else.
fn wait_poll(c: &Controller, job: &str, outcome: &str) {
    wait_until(
        DEADLINE,
        &format!("a poll of {job} ending with {outcome}"),
        || polling_log(c, job).ends_with(&format!("{outcome}\n")),
    );
}

fn notify(c: &Controller, query: &str) -> steward_tests::HttpResponse {
    http_request(
        &c.addr,
        "GET",
        &format!("/git/notifyCommit?{query}"),
        &[],
        b"",
    )
}

#[test]
fn notify_commit_polls_and_builds_once_per_new_commit() {
    let c = Controller::start();
    let (_agent, _work) = c.node_with_agent(NODE);
    let repo = Repo::new();
    let first = repo.commit("README", "1\n", "One", "Ann Lee");
    let job = with_triggers(
        &git_job(&repo.url(), "*/main", "", "echo \"at $GIT_COMMIT\""),
        SCM_TRIGGER,
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "hooked"], &job).code, 0);
    // A job without an SCM trigger is not polled by hooks.
    let quiet = git_job(&repo.url(), "*/main", "", "echo quiet");
    assert_eq!(c.cli_with_stdin(&["create-job", "quiet"], &quiet).code, 0);

    let url = url::form_urlencoded::byte_serialize(repo.url().as_bytes()).collect::<String>();
    let answer = notify(&c, &format!("url={url}"));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "Scheduled polling of hooked\n");
    assert!(
        answer
            .header("Triggered")
            .is_some_and(|t| t.ends_with("/job/hooked/"))
    );
    c.wait_finished_builds("hooked", 1);
    let build = &c.list_builds("hooked")[0];
    assert_eq!(build.cause, "Started by an SCM change");
    assert!(c.console("hooked", 1).contains(&format!("at {first}")));
    assert!(polling_log(&c, "hooked").ends_with("Changes found\n"));

    // Nothing new: polled, not built; twice at once for one new commit: one build.
    assert_eq!(notify(&c, &format!("url={url}&branches=main")).status, 200);
    wait_poll(&c, "hooked", "No changes");
    let second = repo.commit("README", "2\n", "Two", "Ann Lee");
    assert_eq!(notify(&c, &format!("url={url}")).status, 200);
    assert_eq!(notify(&c, &format!("url={url}")).status, 200);
    c.wait_finished_builds("hooked", 2);
    wait_poll(&c, "hooked", "No changes");
    assert_eq!(c.list_builds("hooked").len(), 2);
    assert!(c.console("hooked", 2).contains(&format!("at {second}")));
    assert!(c.list_builds("quiet").is_empty());

    // Other branches and other repositories are named as the plugin names them.
    let other = notify(&c, &format!("url={url}&branches=feature"));
    assert_eq!(
        other.text(),
        format!(
            "No git jobs using repository: {} and branches: feature\n",
            repo.url()
        )
    );
    assert_eq!(notify(&c, "").status, 400);
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_signed_github_push_builds_and_a_bad_signature_is_refused() {
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook");
    std::fs::write(&secret_file, "whsec-1234\n").unwrap();
    let c = Controller::start_with(&[
        "--github-webhook-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let (_agent, _work) = c.node_with_agent(NODE);
    let repo = Repo::new();
    repo.commit("README", "1\n", "One", "Ann Lee");
    let trigger = "<com.cloudbees.jenkins.GitHubPushTrigger plugin=\"github@1.40.0\"><spec></spec></com.cloudbees.jenkins.GitHubPushTrigger>";
    let job = with_triggers(&git_job(&repo.url(), "*/main", "", "echo pushed"), trigger);
    let out = c.cli_with_stdin(&["create-job", "gh"], &job);
    assert_eq!(out.code, 0);
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    let payload = serde_json::json!({
        "ref": "refs/heads/main",
        "repository": {"clone_url": repo.url(), "html_url": "https://example.invalid/o/r"},
        "pusher": {"name": "octocat"},
    })
    .to_string();
    let post = |headers: &[&str]| {
        let mut all = vec!["X-GitHub-Event: push", "Content-Type: application/json"];
        all.extend_from_slice(headers);
        http_request(
            &c.addr,
            "POST",
            "/github-webhook/",
            &all,
            payload.as_bytes(),
        )
    };
    let wrong = format!(
        "X-Hub-Signature-256: {}",
        sign("not-the-secret", payload.as_bytes())
    );
    let refused = post(&[&wrong]);
    assert_eq!(refused.status, 403);
    assert!(
        refused.text().contains("does not match"),
        "{}",
        refused.text()
    );
    let missing = post(&[]);
    assert_eq!(missing.status, 400);
    assert!(
        missing.text().contains("no X-Hub-Signature-256"),
        "{}",
        missing.text()
    );

    let good = format!(
        "X-Hub-Signature-256: {}",
        sign("whsec-1234", payload.as_bytes())
    );
    let accepted = post(&[&good]);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_eq!(accepted.text(), "Scheduled polling of gh\n");
    c.wait_finished_builds("gh", 1);
    assert_eq!(
        c.list_builds("gh")[0].cause,
        "Started by GitHub push by octocat"
    );
    // The same delivery again: polled, nothing new.
    assert_eq!(post(&[&good]).status, 200);
    wait_poll(&c, "gh", "No changes");
    assert_eq!(c.list_builds("gh").len(), 1);
}

#[test]
fn a_controller_without_a_webhook_secret_refuses_deliveries() {
    let c = Controller::start();
    let answer = http_request(
        &c.addr,
        "POST",
        "/github-webhook/",
        &["X-GitHub-Event: push", "X-Hub-Signature-256: sha256=00"],
        b"{}",
    );
    assert_eq!(answer.status, 403);
    assert!(
        answer.text().contains("--github-webhook-secret-file"),
        "{}",
        answer.text()
    );
}

#[test]
fn builds_chain_by_result_threshold() {
    let c = Controller::start();
    let (_agent, _work) = c.node_with_agent(NODE);
    let upstream = |name: &str, exit: u8| {
        let job = Freestyle::shell(&format!("exit {exit}")).xml().replace(
            "</project>",
            "<publishers><hudson.tasks.BuildTrigger><childProjects>after-success</childProjects>\
             <threshold><name>SUCCESS</name><ordinal>0</ordinal><color>BLUE</color><completeBuild>true</completeBuild></threshold>\
             </hudson.tasks.BuildTrigger></publishers></project>",
        );
        assert_eq!(c.cli_with_stdin(&["create-job", name], &job).code, 0);
    };
    c.create_job("after-success", &Freestyle::shell("echo downstream"));
    let watcher = with_triggers(
        &Freestyle::shell("echo watching").xml(),
        "<jenkins.triggers.ReverseBuildTrigger><spec></spec><upstreamProjects>lib-ok, lib-bad</upstreamProjects>\
         <threshold><name>FAILURE</name><ordinal>2</ordinal><color>RED</color><completeBuild>true</completeBuild></threshold>\
         </jenkins.triggers.ReverseBuildTrigger>",
    );
    assert_eq!(
        c.cli_with_stdin(&["create-job", "watcher"], &watcher).code,
        0
    );
    upstream("lib-ok", 0);
    upstream("lib-bad", 1);

    assert_eq!(c.cli(&["build", "lib-ok", "-s"]).code, 0);
    c.wait_finished_builds("after-success", 1);
    c.wait_finished_builds("watcher", 1);
    assert_eq!(
        c.list_builds("after-success")[0].cause,
        "Started by upstream project \"lib-ok\" build number 1"
    );
    assert_eq!(c.cli(&["build", "lib-bad", "-s"]).code, 2);
    // FAILURE meets the watcher's threshold, not the BuildTrigger's.
    c.wait_finished_builds("watcher", 2);
    assert_eq!(
        c.list_builds("watcher")[0].cause,
        "Started by upstream project \"lib-bad\" build number 1"
    );
    assert_eq!(c.list_builds("after-success").len(), 1);
    let auth = c.admin_basic_auth_header();
    let build = http_request(
        &c.addr,
        "GET",
        "/job/watcher/2/api/json",
        &[auth.as_str()],
        b"",
    )
    .json();
    let cause = &build["actions"][0]["causes"][0];
    assert_eq!(cause["upstreamProject"], "lib-bad", "{build}");
    assert_eq!(cause["upstreamBuild"], 1);
}
