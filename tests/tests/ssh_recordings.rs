//! SSH sessions recorded: a shell's output and keystrokes, a command's output, SFTP as
//! markers only, a build's sessions in the build's directory, and a node that refuses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use steward_tests::ssh::{Proxy, shown};
use steward_tests::terminals::asciinema;
use steward_tests::{DEADLINE, Freestyle, wait_until};

const NODE: &str = "n1";
const NODE_PATH: &str = "/computer/n1/ssh";

/// The `.cast` files under `dir`, with their text, once there are `count` of them and each
/// has ended (its last line written when the session ended).
fn casts(dir: &Path, count: usize) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    wait_until(
        DEADLINE,
        &format!("{count} recordings in {}", dir.display()),
        || {
            found = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "cast"))
                        .map(|p| {
                            let text = std::fs::read_to_string(&p).unwrap_or_default();
                            (p, text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            found.len() >= count
        },
    );
    found.sort();
    found
}

fn header(text: &str) -> serde_json::Value {
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn events(text: &str, code: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e[1] == code)
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn shells_commands_and_sftp_into_a_node_are_recorded() {
    let (c, _agent, _work, user) = steward_tests::ssh::node_and_user(NODE, 1);
    let dir = c.home().join("ssh/n1/recordings");

    // A command.
    let out = user.exec(&c, Proxy::Cli, NODE_PATH, NODE, "echo exec-$((2*3))");
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let recorded = casts(&dir, 1);
    let (path, text) = &recorded[0];
    assert_eq!(header(text)["command"], "echo exec-$((2*3))");
    assert!(
        header(text)["title"]
            .as_str()
            .unwrap()
            .starts_with("exec by admin on n1"),
        "{text}"
    );
    wait_until(DEADLINE, "the command's output recorded", || {
        events(&std::fs::read_to_string(path).unwrap(), "o").contains("exec-6")
    });

    // A shell in a terminal, typed into.
    let ssh = user.command("ssh", &c, Proxy::Cli, NODE_PATH, NODE);
    let mut line: Vec<String> = vec![ssh.get_program().to_string_lossy().into_owned()];
    line.extend(
        ssh.get_args()
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''"))),
    );
    line.extend(["-tt".into(), "tester@steward".into()]);
    let mut session = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    session
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo shell-$((6*7)); exit 0\n")
        .unwrap();
    let mut out = String::new();
    session
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(session.wait().unwrap().success(), "{out}");
    let recorded = casts(&dir, 2);
    let shell = recorded
        .iter()
        .find(|(_, t)| header(t)["title"].as_str().unwrap().starts_with("shell"))
        .unwrap();
    wait_until(DEADLINE, "the shell recorded to its end", || {
        let text = std::fs::read_to_string(&shell.0).unwrap();
        events(&text, "o").contains("shell-42") && events(&text, "i").contains("exit 0")
    });
    let played = asciinema().arg("cat").arg(&shell.0).output().unwrap();
    assert!(
        String::from_utf8_lossy(&played.stdout).contains("shell-42"),
        "{played:?}"
    );

    // SFTP: that it happened, not what it moved.
    let local = tempfile::tempdir().unwrap();
    let secret = "a-secret-nobody-records-0123456789";
    std::fs::write(local.path().join("up.txt"), secret).unwrap();
    let batch = local.path().join("batch");
    std::fs::write(
        &batch,
        format!("put {} up.txt\n", local.path().join("up.txt").display()),
    )
    .unwrap();
    let out = user.sftp_batch(&c, Proxy::Cli, NODE_PATH, NODE, &batch);
    assert!(out.status.success(), "{}", shown(&out));
    let recorded = casts(&dir, 3);
    let sftp = recorded
        .iter()
        .find(|(_, t)| header(t)["command"] == "sftp")
        .unwrap();
    wait_until(DEADLINE, "the sftp session's end marker", || {
        events(&std::fs::read_to_string(&sftp.0).unwrap(), "m").contains("sftp session ended")
    });
    for (path, _) in casts(&dir, 3) {
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains(secret),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_build_session_is_recorded_with_the_build_and_a_node_may_refuse_recording() {
    let (c, _agent, _work, user) = steward_tests::ssh::node_and_user(NODE, 1);
    let gate = steward_tests::Gate::new();
    c.create_job(
        "web",
        &Freestyle::shell(&format!(
            "{}{}",
            gate.mark_script("running"),
            gate.wait_script("go")
        )),
    );
    assert_eq!(c.cli(&["build", "web"]).code, 0);
    wait_until(DEADLINE, "the build runs", || gate.is_marked("running"));
    let out = user.exec(
        &c,
        Proxy::Cli,
        "/job/web/1/ssh",
        NODE,
        "echo in-build-$((1+2))",
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let dir = c.home().join("jobs/web/builds/1/ssh-recordings");
    let recorded = casts(&dir, 1);
    assert!(
        header(&recorded[0].1)["title"]
            .as_str()
            .unwrap()
            .contains("web#1"),
        "{}",
        recorded[0].1
    );
    wait_until(DEADLINE, "the output recorded", || {
        events(&std::fs::read_to_string(&recorded[0].0).unwrap(), "o").contains("in-build-3")
    });
    gate.open("go");

    // A node with the property: its sessions leave no recording.
    let xml = "<slave><name>n2</name><remoteFS></remoteFS><numExecutors>1</numExecutors><mode>NORMAL</mode>\
               <launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket></launcher><label></label>\
               <nodeProperties><steward.NoSshRecording/></nodeProperties></slave>";
    assert_eq!(c.cli_with_stdin(&["create-node"], xml).code, 0);
    let work2 = tempfile::tempdir().unwrap();
    let _agent2 = c.start_agent_in("n2", work2.path());
    user.trust(&c, "n2");
    let out = user.exec(
        &c,
        Proxy::Cli,
        "/computer/n2/ssh",
        "n2",
        "echo unrecorded-$((3+4))",
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unrecorded-7"));
    // The agent asked, and was told no.
    c.log.wait_for("not recording an SSH session", DEADLINE);
    assert!(
        c.log
            .contains("node n2 does not record SSH sessions (steward.NoSshRecording)")
    );
    assert!(
        !c.home().join("ssh/n2").exists(),
        "node n2 refused recording"
    );
}
