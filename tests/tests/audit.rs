//! The audit log through the real binaries: actions by an administrator and by another
//! user recorded with who, what and from where; `audit-log`'s `-since`, `-user` and `-json`
//! and the REST form; a non-administrator refused; an SSH session into a node recorded
//! from start to end with the key's fingerprint as OpenSSH prints it; and the bounds by
//! count and by age pruning old entries.

use std::process::Command;

use serde_json::Value;
use steward_tests::ssh::{Proxy, SshUser, shown};
use steward_tests::{Controller, DEADLINE, Freestyle, http_request, wait_until};

const ALICE_PASSWORD: &str = "wonder-land-7";

/// `audit-log -json ARGS…` as the admin, parsed.
fn entries(c: &Controller, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["audit-log", "-json"];
    full.extend_from_slice(args);
    let out = c.cli(&full);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("audit-log -json is not JSON ({e}): {out:?}"))
        .as_array()
        .expect("an array")
        .clone()
}

fn find<'a>(all: &'a [Value], user: &str, action: &str, target: &str) -> Option<&'a Value> {
    all.iter()
        .find(|e| e["user"] == user && e["action"] == action && e["target"] == target)
}

/// Waits until the entry is in the log (entries are written just after the action).
fn wait_entry(c: &Controller, user: &str, action: &str, target: &str) -> Value {
    let mut found = None;
    wait_until(DEADLINE, &format!("{user} {action} {target}"), || {
        found = find(&entries(c, &[]), user, action, target).cloned();
        found.is_some()
    });
    found.unwrap()
}

fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

#[test]
fn actions_of_two_users_are_recorded_and_filtered_and_only_administrators_read_them() {
    let c = Controller::start();
    c.create_job("app", &Freestyle::shell("echo hi"));
    assert_eq!(c.cli(&["create-user", "alice"]).code, 0);
    let set = c.cli_with_stdin(&["set-password", "alice"], &format!("{ALICE_PASSWORD}\n"));
    assert_eq!(set.code, 0, "{set:?}");
    let granted = c.cli(&["grant-permissions", "alice", "Job/Build", "Job/Configure"]);
    assert_eq!(granted.code, 0, "{granted:?}");
    let built = c.cli_as("alice", ALICE_PASSWORD, &["build", "app"], "");
    assert_eq!(built.code, 0, "{built:?}");
    let disabled = c.cli_as("alice", ALICE_PASSWORD, &["disable-job", "app"], "");
    assert_eq!(disabled.code, 0, "{disabled:?}");

    let disable = wait_entry(&c, "alice", "job.disable", "app");
    let all = entries(&c, &[]);
    let create = find(&all, "admin", "job.create", "app").expect("admin's job.create");
    assert_eq!(create["remoteAddress"], "127.0.0.1", "{create}");
    for (action, target) in [
        ("user.create", "alice"),
        ("user.set-password", "alice"),
        ("permission.grant", "alice"),
    ] {
        assert!(
            find(&all, "admin", action, target).is_some(),
            "{action}: {all:?}"
        );
    }
    let grant = find(&all, "admin", "permission.grant", "alice").unwrap();
    assert_eq!(
        grant["details"]["permissions"],
        serde_json::json!(["Job/Build", "Job/Configure"])
    );
    let queued = find(&all, "alice", "build.queue", "app").expect("alice's build");
    assert_eq!(queued["remoteAddress"], "127.0.0.1");
    assert_eq!(queued["details"]["cause"], "cli");
    assert!(
        !all.iter().any(|e| e.to_string().contains(ALICE_PASSWORD)),
        "the password is in the log: {all:?}"
    );

    // One line an entry: time, user, action, target, address, details.
    let text = c.cli(&["audit-log"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(text.stdout.lines().count(), all.len(), "{text:?}");
    let line = text
        .stdout
        .lines()
        .find(|l| l.contains("\talice\tjob.disable\t"))
        .unwrap_or_else(|| panic!("{text:?}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 6, "{line}");
    assert_eq!(fields[0], disable["time"], "{line}");
    assert_eq!(
        &fields[1..5],
        ["alice", "job.disable", "app", "127.0.0.1"],
        "{line}"
    );

    // -user: alice's entries only.
    let alices = entries(&c, &["-user", "alice"]);
    assert_eq!(alices.len(), 2, "{alices:?}");
    assert!(alices.iter().all(|e| e["user"] == "alice"), "{alices:?}");
    // -since: from alice's first entry on, the administrator's earlier ones are left out.
    let since = alices[0]["time"].as_str().unwrap().to_owned();
    let later = entries(&c, &["-since", &since]);
    assert!(
        later
            .iter()
            .all(|e| e["timestamp"].as_i64() >= alices[0]["timestamp"].as_i64())
    );
    assert!(
        find(&later, "alice", "build.queue", "app").is_some(),
        "{later:?}"
    );
    assert!(
        find(&later, "admin", "job.create", "app").is_none(),
        "{later:?}"
    );
    assert_eq!(entries(&c, &["-since", "1h"]).len(), all.len());
    assert!(entries(&c, &["-since", "2999-01-01T00:00:00Z"]).is_empty());
    let bad = c.cli(&["audit-log", "-since", "yesterday"]);
    assert_eq!(bad.code, 3, "{bad:?}");
    assert!(
        bad.stderr.contains("‘yesterday’ is neither a time"),
        "{bad:?}"
    );

    // Administrators only, with Jenkins' refusal.
    let refused = c.cli_as("alice", ALICE_PASSWORD, &["audit-log"], "");
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("ERROR: alice is missing the Overall/Administer permission"),
        "{refused:?}"
    );

    // REST: the same entries, filtered by the query.
    let rest = http_request(
        &c.addr,
        "GET",
        "/audit-log/api/json?user=alice",
        &[&c.admin_basic_auth_header()],
        b"",
    );
    assert_eq!(rest.status, 200, "{}", rest.text());
    let body = rest.json();
    assert_eq!(body["_class"], "steward.audit.AuditLog");
    assert_eq!(body["entries"].as_array().unwrap(), &alices);
    let rest = http_request(
        &c.addr,
        "GET",
        "/audit-log/api/json",
        &[&basic("alice", ALICE_PASSWORD)],
        b"",
    );
    assert_eq!(rest.status, 403, "{}", rest.text());
    let rest = http_request(
        &c.addr,
        "GET",
        "/audit-log/api/json?since=soon",
        &[&c.admin_basic_auth_header()],
        b"",
    );
    assert_eq!(rest.status, 400, "{}", rest.text());
}

/// The key's fingerprint as `ssh-keygen -lf KEY.pub` prints it: `SHA256:…`.
fn openssh_fingerprint(user: &SshUser) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(user.dir().join("id.pub"))
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen -lf failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{text}");
    fingerprint
}

#[test]
fn an_ssh_session_into_a_node_is_recorded_with_its_key_and_address_from_start_to_end() {
    let (c, _agent, _work, user) = steward_tests::ssh::node_and_user("n1", 1);
    let fingerprint = openssh_fingerprint(&user);
    let out = user.exec(&c, Proxy::Cli, "/computer/n1/ssh", "n1", "echo in");
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));

    let end = wait_entry(&c, "admin", "ssh.end", "n1");
    let all = entries(&c, &["-user", "admin"]);
    let connect = find(&all, "admin", "ssh.connect", "n1").expect("ssh.connect");
    let start = find(&all, "admin", "ssh.start", "n1").expect("ssh.start");
    for entry in [connect, start, &end] {
        assert_eq!(entry["remoteAddress"], "127.0.0.1", "{entry}");
        assert_eq!(
            entry["details"]["connection"], connect["details"]["connection"],
            "{entry}"
        );
    }
    assert_eq!(
        start["details"]["keyFingerprint"],
        fingerprint.as_str(),
        "{start}"
    );
    assert_eq!(start["details"]["keyOwner"], "admin", "{start}");
    assert_eq!(start["details"]["sshUser"], "tester", "{start}");
    assert_eq!(
        end["details"]["keyFingerprint"],
        fingerprint.as_str(),
        "{end}"
    );
    assert!(end["details"]["why"].is_string(), "{end}");
    assert!(
        connect["timestamp"].as_i64() <= start["timestamp"].as_i64()
            && start["timestamp"].as_i64() <= end["timestamp"].as_i64(),
        "{all:?}"
    );
    // The agent's connection, from its address.
    let agents = entries(&c, &["-user", "SYSTEM"]);
    let connected = find(&agents, "SYSTEM", "agent.connect", "n1").expect("agent.connect");
    assert_eq!(connected["remoteAddress"], "127.0.0.1");
    // The key added for it.
    let added = find(&all, "admin", "ssh-key.add", "admin").expect("ssh-key.add");
    assert_eq!(added["details"]["fingerprint"], fingerprint.as_str());
}

#[test]
fn the_log_keeps_at_most_its_configured_number_of_entries() {
    let c = Controller::start_with(&["--audit-max-entries", "5"]);
    for i in 0..8 {
        c.create_job(&format!("j{i}"), &Freestyle::shell("true"));
    }
    wait_entry(&c, "admin", "job.create", "j7");
    let kept: Vec<String> = entries(&c, &[])
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, ["j3", "j4", "j5", "j6", "j7"]);
}

#[test]
fn entries_older_than_the_retention_are_pruned_as_new_ones_come() {
    let c = Controller::start_with(&["--audit-retention", "2s"]);
    c.create_job("old", &Freestyle::shell("true"));
    wait_entry(&c, "admin", "job.create", "old");
    // Each new entry prunes what is past the retention: the first goes once it is 2 s old.
    let mut n = 0;
    wait_until(DEADLINE, "the old entry to be pruned", || {
        n += 1;
        assert_eq!(c.cli(&["create-user", &format!("u{n}")]).code, 0);
        find(&entries(&c, &[]), "admin", "job.create", "old").is_none()
    });
    wait_entry(&c, "admin", "user.create", &format!("u{n}"));
}

#[test]
fn bounds_that_keep_nothing_are_refused_at_start() {
    for (option, value, why) in [
        (
            "--audit-retention",
            "0s",
            "--audit-retention must be more than 0",
        ),
        (
            "--audit-max-entries",
            "0",
            "--audit-max-entries must be at least 1",
        ),
        ("--audit-retention", "90", "has no unit"),
    ] {
        let home = tempfile::tempdir().unwrap();
        let out = steward_tests::command("controller")
            .arg("--home")
            .arg(home.path())
            .args(["--listen", "127.0.0.1:0", option, value])
            .output()
            .expect("controller");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{option} {value} was taken");
        assert!(stderr.contains(why), "{option} {value}: {stderr}");
    }
}

#[test]
fn build_records_the_queue_and_quiet_down_changed_by_hand_are_recorded() {
    let c = Controller::start();
    let work = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "", 1, "NORMAL");
    let _agent = c.start_agent_in("n1", work.path());
    c.create_job("app", &Freestyle::shell("echo hi"));
    assert_eq!(c.cli(&["build", "app", "-s"]).code, 0);
    assert_eq!(c.cli(&["build", "app", "-s"]).code, 0);
    assert_eq!(c.cli(&["keep-build", "app", "2"]).code, 0);
    let kept = wait_entry(&c, "admin", "build.keep", "app#2");
    assert_eq!(kept["details"]["keep"], true, "{kept}");
    assert_eq!(c.cli(&["delete-builds", "app", "1"]).code, 0);
    let deleted = wait_entry(&c, "admin", "build.delete", "app");
    assert_eq!(
        deleted["details"]["numbers"],
        serde_json::json!([1]),
        "{deleted}"
    );

    // A build that cannot start waits; cancelling it is recorded with its job.
    c.create_job("elsewhere", &Freestyle::shell("true").label("nowhere"));
    assert_eq!(c.cli(&["build", "elsewhere"]).code, 0);
    let waiting = c.wait_queued_matching("elsewhere", |_| true);
    assert_eq!(c.cli(&["cancel-queue", &waiting.id.to_string()]).code, 0);
    let cancelled = wait_entry(&c, "admin", "queue.cancel", "elsewhere");
    assert_eq!(cancelled["details"]["id"], waiting.id, "{cancelled}");

    assert_eq!(c.cli(&["quiet-down", "-reason", "upgrade"]).code, 0);
    let quiet = wait_entry(&c, "admin", "quiet-down", "");
    assert_eq!(quiet["details"]["reason"], "upgrade", "{quiet}");
    assert_eq!(c.cli(&["cancel-quiet-down"]).code, 0);
    wait_entry(&c, "admin", "quiet-down.cancel", "");
}
