//! Secrets kept out of sight: off command lines, which every local user and every build
//! step reads in `ps` (`/proc/PID/cmdline`), and off the controller's stdout when that is a
//! log file or a journal rather than the terminal of whoever started it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use steward_tests::{Captured, Controller, DEADLINE, bin, wait_until};

/// A process the test started, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes whose arguments contain `needle`, as `ps` would show them.
fn processes_with_argument(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if args.contains(needle) {
            found.push(format!("{}: {args}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Runs `script` with `sh -e` in `dir`, as a user pasting it would.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("secret file")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn agent_command_keeps_the_secret_off_command_lines() {
    let c = Controller::start();
    let box_dir = tempfile::tempdir().expect("the agent machine's directory");
    let work_dir = box_dir.path().join("work");
    let xml = format!(
        "<slave><name>linux-1</name><remoteFS>{}</remoteFS><numExecutors>1</numExecutors>\
         <launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket></launcher></slave>",
        work_dir.display()
    );
    assert_eq!(c.cli_with_stdin(&["create-node"], &xml).code, 0);
    let secret = c.secret("linux-1");

    let out = c.cli(&["agent-command", "linux-1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let run = lines
        .iter()
        .position(|l| l.starts_with("./agent "))
        .unwrap_or_else(|| panic!("no ./agent line in:\n{}", out.stdout));
    let run_line = lines[run];
    assert!(run_line.contains(" -secret @secret-file"), "{run_line}");
    assert!(!run_line.contains(&secret), "{run_line}");
    // The secret is printed once, as an argument of printf, which sh runs itself: no
    // process is started with it.
    let with_secret: Vec<&&str> = lines.iter().filter(|l| l.contains(&secret)).collect();
    assert_eq!(with_secret.len(), 1, "{}", out.stdout);
    assert!(
        with_secret[0].starts_with(&format!(
            "(umask 077 && printf '%s\\n' {secret} > secret-file)"
        )),
        "{}",
        with_secret[0]
    );

    // The lines before the agent's, run as printed: the download and a private secret file,
    // private even when an earlier, readable one was there.
    let setup = lines[..run].join("\n");
    // The secret goes only to `printf`, which the shell runs itself: no process is started
    // with it as an argument (what the test can see of that: `sh` has `printf` built in, and
    // the line holds no other command the secret could reach).
    let builtin = Command::new("sh")
        .args(["-c", "command -V printf"])
        .output()
        .expect("sh");
    assert!(
        String::from_utf8_lossy(&builtin.stdout).contains("builtin"),
        "{builtin:?}"
    );
    let with_secret: Vec<&&str> = lines[..run]
        .iter()
        .filter(|l| l.contains(&secret))
        .collect();
    assert_eq!(with_secret.len(), 1, "{lines:?}");
    let before_secret = with_secret[0].split(&secret).next().unwrap_or_default();
    assert!(
        before_secret.ends_with("printf '%s\\n' "),
        "the secret is an argument of printf alone: {}",
        with_secret[0]
    );
    sh(box_dir.path(), &setup);
    let secret_file = box_dir.path().join("secret-file");
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        format!("{secret}\n")
    );
    assert_eq!(mode(&secret_file), 0o600);
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    sh(box_dir.path(), &setup);
    assert_eq!(
        mode(&secret_file),
        0o600,
        "a readable secret file made private"
    );

    // The agent's line as printed (exec: the shell becomes the agent, so it can be killed).
    let agent = Running(
        Command::new("sh")
            .args(["-c", &format!("exec {run_line}")])
            .current_dir(box_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the agent line"),
    );
    c.wait_online("linux-1", true, DEADLINE);
    let seen = processes_with_argument(&secret);
    assert!(seen.is_empty(), "the secret is in `ps`: {seen:?}");
    drop(agent);
}

#[test]
fn controller_prints_the_admin_token_only_to_a_terminal() {
    // The harness reads the controller's stdout through a pipe, as a service manager does.
    let c = Controller::start();
    c.stdout.wait_for("secrets/initialAdminToken", DEADLINE);
    assert!(
        !c.stdout.text().contains(&c.token),
        "the token on a stdout that is not a terminal:\n{}",
        c.stdout.text()
    );
    assert!(!c.log.text().contains(&c.token), "{}", c.log.text());
    drop(c);

    // On a terminal (script(1) gives it one) the first start shows it, ready to paste.
    let home = tempfile::tempdir().expect("temp home");
    let controller = format!(
        "exec {} --home {} --listen 127.0.0.1:0",
        bin("controller").display(),
        home.path().display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &controller, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1), from util-linux");
    let shown = Captured::default();
    let _reader = shown.follow(child.stdout.take().unwrap());
    let terminal = Running(child);
    let token_file = home.path().join("secrets/initialAdminToken");
    wait_until(DEADLINE, "the admin token file", || {
        std::fs::read_to_string(&token_file).is_ok_and(|t| !t.trim().is_empty())
    });
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    shown.wait_for(&format!("-auth admin:{token} who-am-i"), DEADLINE);

    // SIGTERM: script(1) ends the controller it runs before it exits.
    let status = Command::new("kill")
        .args(["-TERM", &terminal.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let home_arg = home.path().display().to_string();
    wait_until(DEADLINE, "the controller on the terminal stopped", || {
        processes_with_argument(&home_arg).is_empty()
    });
    drop(terminal);
}
