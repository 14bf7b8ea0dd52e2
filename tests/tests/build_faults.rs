//! Builds under faults, end to end through the real binaries: a `build -s` client
//! interrupted, an agent killed and restarted mid-build or gone for good, a controller killed
//! with finished builds and with one running, an abort while the agent is away or just
//! before a controller restart, a step killed outright. Each test checks what a user sees
//! afterwards: the build's result in `list-builds`, its `console`, `build -s`'s exit code,
//! and that no step process is left behind where the build was aborted.
//!
//! Steps block only on files the test creates (`go` files in a control dir), untraced
//! (`set +x`) and bounded, so output can be produced exactly while nobody follows it. A
//! step outlives its agent by design, so every test guards its agent's work dir with
//! [`StepsGuard`].

use std::path::{Path, PathBuf};

use steward_tests::{Agent, Controller, DEADLINE, wait_until};

const NODE: &str = "builder";

/// Creates [`NODE`] with one executor, so that a build holding it keeps the next one waiting.
fn create_node(c: &Controller) {
    let xml = format!(
        "<slave><name>{NODE}</name><remoteFS></remoteFS><numExecutors>1</numExecutors>\
         <mode>NORMAL</mode><launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket>\
         </launcher><label></label></slave>"
    );
    let out = c.cli_with_stdin(&["create-node"], &xml);
    assert_eq!(out.code, 0, "create-node: {out:?}");
}

/// Starts the node's agent on `work` and waits until it is online. An agent started again
/// on the same work dir finds the steps the previous one started.
fn start_agent(c: &Controller, work: &Path) -> Agent {
    let agent = c.agent(NODE, &["-workDir", work.to_str().unwrap()]);
    agent.output.wait_for("Connected", DEADLINE);
    c.wait_online(NODE, true, DEADLINE);
    agent
}

/// Kills the agent with SIGKILL (its steps live on) and waits until the controller has
/// seen the connection go.
fn kill_agent(c: &Controller, agent: &mut Agent) {
    agent.kill();
    c.wait_online(NODE, false, DEADLINE);
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A freestyle job for [`NODE`] running `script`, with string parameters `(name, default)`.
fn job_xml(script: &str, parameters: &[(&str, &str)]) -> String {
    let mut properties = String::new();
    if !parameters.is_empty() {
        properties.push_str("<hudson.model.ParametersDefinitionProperty><parameterDefinitions>");
        for (name, default) in parameters {
            properties.push_str(&format!(
                "<hudson.model.StringParameterDefinition><name>{name}</name>\
                 <defaultValue>{default}</defaultValue></hudson.model.StringParameterDefinition>"
            ));
        }
        properties.push_str("</parameterDefinitions></hudson.model.ParametersDefinitionProperty>");
    }
    format!(
        "<project><assignedNode>{NODE}</assignedNode><concurrentBuild>false</concurrentBuild>\
         <properties>{properties}</properties><builders><hudson.tasks.Shell><command>{}</command>\
         </hudson.tasks.Shell></builders></project>",
        xml_escape(script)
    )
}

fn create_job(c: &Controller, name: &str, xml: &str) {
    let out = c.cli_with_stdin(&["create-job", name], xml);
    assert_eq!(out.code, 0, "create-job {name}: {out:?}");
}

/// `'PATH'` for a shell script (temp dirs hold no quote).
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(!text.contains('\''), "{text}");
    format!("'{text}'")
}

/// Shell that waits (at most a minute) until `path` exists.
fn wait_for_file(path: &Path) -> String {
    format!(
        "for i in $(seq 1 1200); do [ -e {} ] && break; sleep 0.05; done",
        quoted(path)
    )
}

/// Shell that prints `line-FROM` to `line-TO`, one a line.
fn print_lines(from: u32, to: u32) -> String {
    format!("i={from}; while [ $i -le {to} ]; do echo line-$i; i=$((i+1)); done")
}

fn touch(path: &Path) {
    std::fs::write(path, b"").unwrap();
}

/// Where the phases of [`phased_script`] end.
const FIRST_PHASE: u32 = 3;
const SECOND_PHASE: u32 = 5000;
const LAST_LINE: u32 = 5100;

/// Prints lines 1 to [`FIRST_PHASE`], waits for `CTL/go1`, prints on to [`SECOND_PHASE`]
/// (some 50 KB, more than one tail chunk), waits for `CTL/go2`, prints on to
/// [`LAST_LINE`]. Untraced, so the numbered lines are the whole of its output but for
/// `+ set +x`.
fn phased_script(ctl: &Path) -> String {
    [
        "set +x".to_owned(),
        print_lines(1, FIRST_PHASE),
        wait_for_file(&ctl.join("go1")),
        print_lines(FIRST_PHASE + 1, SECOND_PHASE),
        wait_for_file(&ctl.join("go2")),
        print_lines(SECOND_PHASE + 1, LAST_LINE),
    ]
    .join("\n")
}

/// The numbers of the `line-N` lines of a console, in order.
fn numbered(console: &str) -> Vec<u32> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect()
}

/// Fails unless the console has `line-1` to `line-LAST` each exactly once, in order.
fn assert_one_continuous_log(console: &str, last: u32) {
    let seen = numbered(console);
    let expected: Vec<u32> = (1..=last).collect();
    if seen != expected {
        let at = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        let from = at.saturating_sub(3);
        panic!(
            "the console's numbered lines are not 1..={last} once each: {} lines, first \
             difference at index {at}: saw {:?}, expected {:?}",
            seen.len(),
            &seen[from..(at + 3).min(seen.len())],
            &expected[from..(at + 3).min(expected.len())],
        );
    }
}

fn console(c: &Controller, job: &str, number: u32) -> String {
    let out = c.cli(&["console", job, &number.to_string()]);
    assert_eq!(out.code, 0, "console {job} {number}: {out:?}");
    out.stdout
}

/// The result column of build `number` in `list-builds` (`RUNNING` while it runs).
fn result_of(c: &Controller, job: &str, number: u32) -> String {
    let out = c.cli(&["list-builds", job]);
    assert_eq!(out.code, 0, "list-builds {job}: {out:?}");
    let prefix = format!("#{number}\t");
    out.stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or_else(|| panic!("no build #{number} in:\n{}", out.stdout))
        .to_owned()
}

/// Waits until build `number` has ended; its result.
fn wait_result(c: &Controller, job: &str, number: u32) -> String {
    let mut result = String::new();
    wait_until(DEADLINE, &format!("{job} #{number} ends"), || {
        result = result_of(c, job, number);
        result != "RUNNING"
    });
    result
}

/// Everything the agent's steps in `work` have logged, read from their files.
fn step_logs(work: &Path) -> String {
    let mut text = String::new();
    for dir in step_dirs(work) {
        text.push_str(&std::fs::read_to_string(dir.join("log")).unwrap_or_default());
    }
    text
}

/// `WORK/steps/ID` for every step, sorted.
fn step_dirs(work: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(work.join("steps"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The pid a script wrote to `path`, once it has.
fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` runs (a zombie has ended: it only waits to be reaped).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.starts_with('Z')
    })
}

/// Kills, when dropped, the process group of every step in a work dir that has not written
/// its result: a step outlives its agent by design, so one that a failing test leaves
/// behind would run on until its bound.
struct StepsGuard(PathBuf);

impl Drop for StepsGuard {
    fn drop(&mut self) {
        for dir in step_dirs(&self.0) {
            if dir.join("result").exists() {
                continue;
            }
            if let Some(pgid) = read_pid(&dir.join("pgid"))
                && pgid > 1
            {
                // SAFETY: killpg only sends a signal, to a group this test's agent started.
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
            }
        }
    }
}

/// A controller with [`NODE`] and its agent on a temporary work dir (guarded), and a
/// control dir for the scripts' files.
struct Setup {
    c: Controller,
    agent: Agent,
    ctl: tempfile::TempDir,
    _steps: StepsGuard,
    work: tempfile::TempDir,
}

fn setup(controller_args: &[&str]) -> Setup {
    let c = Controller::start_with(controller_args);
    let work = tempfile::tempdir().unwrap();
    let steps = StepsGuard(work.path().to_owned());
    create_node(&c);
    let agent = start_agent(&c, work.path());
    Setup {
        c,
        agent,
        ctl: tempfile::tempdir().unwrap(),
        _steps: steps,
        work,
    }
}

#[test]
fn interrupting_build_s_aborts_the_build_and_kills_its_processes() {
    let s = setup(&[]);
    let (c, ctl) = (&s.c, s.ctl.path());
    // The script and a child `sleep` write their pids, then the script waits for the child.
    let script = format!(
        "set +x\necho $$ >{script_pid}-$BUILD_NUMBER\nsleep 60 &\necho $! >{child_pid}-$BUILD_NUMBER\nwait\n",
        script_pid = quoted(&ctl.join("script.pid")),
        child_pid = quoted(&ctl.join("child.pid")),
    );
    create_job(c, "interrupted", &job_xml(&script, &[]));

    for (number, transport) in [(1, "-webSocket"), (2, "-http")] {
        let client = c.cli_spawn(&[transport, "build", "interrupted", "-s"]);
        client
            .stdout
            .wait_for(&format!("Started interrupted #{number}\n"), DEADLINE);
        let (mut script, mut child) = (None, None);
        wait_until(DEADLINE, "the step and its child run", || {
            script = read_pid(&ctl.join(format!("script.pid-{number}")));
            child = read_pid(&ctl.join(format!("child.pid-{number}")));
            script.is_some_and(running) && child.is_some_and(running)
        });
        let (script, child) = (script.unwrap(), child.unwrap());

        // Ctrl-C: the client dies and its connection drops.
        client.signal("INT");
        let out = client.wait(DEADLINE);
        assert!(!out.stdout.contains("Completed"), "{transport}: {out:?}");

        assert_eq!(
            wait_result(c, "interrupted", number),
            "ABORTED",
            "{transport}"
        );
        let text = console(c, "interrupted", number);
        assert!(
            text.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
            "{transport}:\n{text}"
        );
        wait_until(DEADLINE, "the step's processes are gone", || {
            !running(script) && !running(child)
        });
    }
}

#[test]
fn interrupting_build_s_while_it_waits_in_the_queue_cancels_the_item() {
    let mut s = setup(&[]);
    let (c, work) = (&s.c, s.work.path());
    // With the node offline the build waits in the queue.
    kill_agent(c, &mut s.agent);
    create_job(c, "queued", &job_xml("echo built", &[]));
    let client = c.cli_spawn(&["build", "queued", "-s"]);
    wait_until(DEADLINE, "the build waits in the queue", || {
        c.cli(&["queue"]).stdout.contains("\tqueued\t")
    });
    client.signal("INT");
    let out = client.wait(DEADLINE);
    assert_eq!(out.stdout, "", "it never started");
    wait_until(DEADLINE, "the item leaves the queue", || {
        c.cli(&["queue"]).stdout.is_empty()
    });

    // With the node back, the next build is the job's first: the cancelled item never ran.
    let _agent = start_agent(c, work);
    let out = c.cli(&["build", "queued", "-s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started queued #1\nCompleted queued #1 : SUCCESS\n"),
        "{out:?}"
    );
    assert_eq!(c.cli(&["list-builds", "queued"]).stdout.lines().count(), 1);
}

#[test]
fn interrupting_build_f_leaves_the_build_running_to_its_end() {
    let s = setup(&[]);
    let (c, ctl) = (&s.c, s.ctl.path());
    let script = format!(
        "set +x\ntouch {}\n{}\nset -x\necho released\n",
        quoted(&ctl.join("running")),
        wait_for_file(&ctl.join("go"))
    );
    create_job(c, "followed", &job_xml(&script, &[]));

    let client = c.cli_spawn(&["build", "followed", "-f"]);
    client.stdout.wait_for("Started followed #1\n", DEADLINE);
    wait_until(DEADLINE, "the step runs", || ctl.join("running").exists());
    let interrupted = "CLI command interrupted by its user";
    let seen = c.log.count(interrupted);
    client.signal("INT");
    let out = client.wait(DEADLINE);
    assert_eq!(out.code, 130, "{out:?}");
    wait_until(DEADLINE, "the controller sees the interrupt", || {
        c.log.count(interrupted) > seen
    });
    assert_eq!(result_of(c, "followed", 1), "RUNNING");

    touch(&ctl.join("go"));
    assert_eq!(wait_result(c, "followed", 1), "SUCCESS");
    let text = console(c, "followed", 1);
    assert!(!text.contains("Aborted"), "{text}");
    assert!(
        text.ends_with("+ echo released\nreleased\nFinished: SUCCESS\n"),
        "{text}"
    );
}

#[test]
fn an_agent_killed_mid_build_and_restarted_on_its_work_dir_finishes_the_build_with_one_log() {
    let mut s = setup(&[]);
    let (c, ctl, work) = (&s.c, s.ctl.path(), s.work.path());
    create_job(c, "survivor", &job_xml(&phased_script(ctl), &[]));
    // -v: the client follows the console live, across the agent's absence.
    let client = c.cli_spawn(&["build", "survivor", "-s", "-v"]);
    client.stdout.wait_for("Started survivor #1\n", DEADLINE);
    wait_until(DEADLINE, "the first lines reach the console", || {
        numbered(&console(c, "survivor", 1)).last() == Some(&FIRST_PHASE)
    });

    kill_agent(c, &mut s.agent);
    // The step prints on while no agent follows it.
    touch(&ctl.join("go1"));
    let last_line = format!("line-{SECOND_PHASE}\n");
    wait_until(DEADLINE, "the step prints with its agent gone", || {
        step_logs(work).contains(&last_line)
    });
    assert_eq!(
        numbered(&console(c, "survivor", 1)).last(),
        Some(&FIRST_PHASE),
        "nothing followed the step while its agent was gone"
    );

    let _agent = start_agent(c, work);
    wait_until(DEADLINE, "the console catches up", || {
        numbered(&console(c, "survivor", 1)).last() == Some(&SECOND_PHASE)
    });
    // And follows the step live again.
    touch(&ctl.join("go2"));
    let out = client.wait(DEADLINE);
    let text = console(c, "survivor", 1);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout == format!("Started survivor #1\n{text}Completed survivor #1 : SUCCESS\n"),
        "build -s -v printed other than the console:\n{}",
        out.stdout
    );
    assert_one_continuous_log(&text, LAST_LINE);
    assert_eq!(text.matches("+ set +x\n").count(), 1, "the step ran once");
    assert!(
        text.ends_with(&format!("line-{LAST_LINE}\nFinished: SUCCESS\n")),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
}

#[test]
fn a_build_whose_agent_does_not_come_back_fails_and_frees_its_executor() {
    let mut s = setup(&["--build-reconnect-grace", "2"]);
    let (c, ctl, work) = (&s.c, s.ctl.path(), s.work.path());
    let script = format!(
        "set +x\n{}\nset -x\necho released\n",
        wait_for_file(&ctl.join("go"))
    );
    create_job(c, "orphan", &job_xml(&script, &[]));
    let client = c.cli_spawn(&["build", "orphan", "-s"]);
    client.stdout.wait_for("Started orphan #1\n", DEADLINE);
    wait_until(DEADLINE, "the step runs", || {
        console(c, "orphan", 1).contains("+ set +x\n")
    });

    kill_agent(c, &mut s.agent);
    let out = client.wait(DEADLINE);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "Started orphan #1\nCompleted orphan #1 : FAILURE\n"),
        "{out:?}"
    );
    let text = console(c, "orphan", 1);
    assert!(
        text.contains(&format!(
            "ERROR: Agent {NODE} was lost during step 1 and did not reconnect within 2 s"
        )),
        "{text}"
    );
    assert!(text.ends_with("Finished: FAILURE\n"), "{text}");
    assert_eq!(result_of(c, "orphan", 1), "FAILURE");
    assert_eq!(c.cli(&["queue"]).stdout, "");

    // The node's only executor is free: with an agent back, the next build of the job (not
    // concurrent) runs at once. The orphaned step ends too.
    touch(&ctl.join("go"));
    let _agent = start_agent(c, work);
    let out = c.cli(&["build", "orphan", "-s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started orphan #2\nCompleted orphan #2 : SUCCESS\n"),
        "{out:?}"
    );
}

#[test]
fn finished_builds_and_build_numbers_survive_a_controller_restart() {
    let mut s = setup(&[]);
    let ctl = s.ctl.path().to_owned();
    let script = format!(
        "echo \"outcome $OUTCOME\"\ncase \"$OUTCOME\" in\n  fail) exit 3 ;;\n  hold) set +x; touch {}; {} ;;\nesac\n",
        quoted(&ctl.join("holding")),
        wait_for_file(&ctl.join("never"))
    );
    let xml = job_xml(&script, &[("OUTCOME", "pass")]);
    let c = &mut s.c;
    create_job(c, "history", &xml);

    let out = c.cli(&["build", "history", "-s", "-p", "OUTCOME=pass"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started history #1\nCompleted history #1 : SUCCESS\n")
    );
    let out = c.cli(&["build", "history", "-s", "-p", "OUTCOME=fail"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "Started history #2\nCompleted history #2 : FAILURE\n")
    );
    let out = c.cli(&["build", "history", "-w", "-p", "OUTCOME=hold"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "Started history #3\n"));
    wait_until(DEADLINE, "build #3 holds", || ctl.join("holding").exists());
    let out = c.cli(&["stop-builds", "history"]);
    assert_eq!(out.stdout, "Build '#3' stopped for job 'history'\n");
    assert_eq!(wait_result(c, "history", 3), "ABORTED");

    let consoles: Vec<String> = (1..=3).map(|n| console(c, "history", n)).collect();
    for (text, end) in consoles.iter().zip([
        "outcome pass\nFinished: SUCCESS\n",
        "+ exit 3\nBuild step 'Execute shell' marked build as failure\nFinished: FAILURE\n",
        "Build was aborted\nAborted by admin\nFinished: ABORTED\n",
    ]) {
        assert!(text.ends_with(end), "{text}");
    }
    let list = c.cli(&["list-builds", "history"]).stdout;
    assert_eq!(list.lines().count(), 3, "{list}");
    let last = c.cli(&["console", "history"]).stdout;
    assert_eq!(last, consoles[2]);

    c.kill_and_restart();
    for (n, before) in (1..=3).zip(&consoles) {
        assert_eq!(&console(c, "history", n), before, "console of #{n}");
    }
    assert_eq!(c.cli(&["list-builds", "history"]).stdout, list);
    assert_eq!(c.cli(&["console", "history"]).stdout, last);

    // The numbers go on after the restart, and after the job is deleted and created again.
    c.wait_online(NODE, true, DEADLINE);
    let out = c.cli(&["build", "history", "-s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started history #4\nCompleted history #4 : SUCCESS\n")
    );
    assert_eq!(c.cli(&["delete-job", "history"]).code, 0);
    create_job(c, "history", &xml);
    assert_eq!(c.cli(&["list-builds", "history"]).stdout, "");
    c.kill_and_restart();
    c.wait_online(NODE, true, DEADLINE);
    let out = c.cli(&["build", "history", "-s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started history #5\nCompleted history #5 : SUCCESS\n")
    );
    assert_eq!(result_of(c, "history", 5), "SUCCESS");
    assert_eq!(c.cli(&["list-builds", "history"]).stdout.lines().count(), 1);
}

#[test]
fn a_build_running_when_the_controller_is_killed_is_reattached_and_finishes_with_one_log() {
    let mut s = setup(&[]);
    let (ctl, work) = (s.ctl.path().to_owned(), s.work.path().to_owned());
    let c = &mut s.c;
    create_job(c, "reattached", &job_xml(&phased_script(&ctl), &[]));
    let out = c.cli(&["build", "reattached", "-w"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started reattached #1\n")
    );
    wait_until(DEADLINE, "the first lines reach the console", || {
        numbered(&console(c, "reattached", 1)).last() == Some(&FIRST_PHASE)
    });

    c.kill();
    // The step prints on while the controller is down.
    touch(&ctl.join("go1"));
    let last_line = format!("line-{SECOND_PHASE}\n");
    wait_until(DEADLINE, "the step prints with the controller down", || {
        step_logs(&work).contains(&last_line)
    });

    c.kill_and_restart();
    wait_until(DEADLINE, "the console catches up", || {
        numbered(&console(c, "reattached", 1)).last() == Some(&SECOND_PHASE)
    });
    assert_eq!(result_of(c, "reattached", 1), "RUNNING");
    touch(&ctl.join("go2"));
    let followed = c.cli(&["console", "reattached", "1", "-f"]);
    assert_eq!(followed.code, 0, "{followed:?}");
    assert_eq!(result_of(c, "reattached", 1), "SUCCESS");
    let text = console(c, "reattached", 1);
    assert_eq!(followed.stdout, text);
    assert_one_continuous_log(&text, LAST_LINE);
    assert_eq!(text.matches("+ set +x\n").count(), 1, "the step ran once");
    assert!(
        text.ends_with(&format!("line-{LAST_LINE}\nFinished: SUCCESS\n")),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
}

#[test]
fn a_build_whose_agent_is_gone_when_the_controller_restarts_fails_after_the_grace() {
    let mut s = setup(&["--build-reconnect-grace", "2"]);
    let ctl = s.ctl.path().to_owned();
    let script = format!(
        "set +x\n{}\nset -x\necho released\n",
        wait_for_file(&ctl.join("go"))
    );
    create_job(&s.c, "stranded", &job_xml(&script, &[]));
    let out = s.c.cli(&["build", "stranded", "-w"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Started stranded #1\n")
    );
    wait_until(DEADLINE, "the step runs", || {
        console(&s.c, "stranded", 1).contains("+ set +x\n")
    });

    s.agent.kill();
    s.c.kill_and_restart();
    let c = &s.c;
    assert_eq!(wait_result(c, "stranded", 1), "FAILURE");
    let text = console(c, "stranded", 1);
    assert!(
        text.contains(&format!(
            "ERROR: Agent {NODE} was lost during step 1 and did not reconnect within 2 s"
        )),
        "{text}"
    );
    assert!(text.ends_with("Finished: FAILURE\n"), "{text}");
    assert_eq!(text.matches("+ set +x\n").count(), 1, "{text}");
    assert_eq!(c.cli(&["queue"]).stdout, "");
    touch(&ctl.join("go"));
}

/// A script that writes its pid to `CTL/script.pid` and waits (untraced) for `CTL/go`.
fn waiting_script(ctl: &Path) -> String {
    format!(
        "set +x\necho $$ >{}\n{}\n",
        quoted(&ctl.join("script.pid")),
        wait_for_file(&ctl.join("go"))
    )
}

/// Waits until the script of [`waiting_script`] runs; its pid.
fn wait_script_pid(ctl: &Path) -> i32 {
    let mut pid = None;
    wait_until(DEADLINE, "the step runs", || {
        pid = read_pid(&ctl.join("script.pid"));
        pid.is_some_and(running)
    });
    pid.unwrap()
}

#[test]
fn a_build_aborted_while_its_agent_is_away_ends_at_once_and_its_step_is_killed_when_the_agent_is_back()
 {
    let mut s = setup(&["--build-reconnect-grace", "30"]);
    let (c, ctl, work) = (&s.c, s.ctl.path(), s.work.path());
    create_job(c, "away", &job_xml(&waiting_script(ctl), &[]));
    let client = c.cli_spawn(&["build", "away", "-s"]);
    client.stdout.wait_for("Started away #1\n", DEADLINE);
    let pid = wait_script_pid(ctl);

    kill_agent(c, &mut s.agent);
    client.signal("INT");
    client.wait(DEADLINE);
    c.log
        .wait_for("build -s interrupted: aborting the build", DEADLINE);
    // An aborted build does not wait for its agent (30 s of grace here): it ends at once and
    // frees its executor; the step runs on where the agent was, until the agent is back.
    assert_eq!(wait_result(c, "away", 1), "ABORTED");
    let text = console(c, "away", 1);
    assert!(
        text.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
        "{text}"
    );
    assert!(running(pid));

    let _agent = start_agent(c, work);
    wait_until(DEADLINE, "the step is killed", || !running(pid));
}

#[test]
fn a_build_aborted_while_its_agent_stays_away_ends_at_once_and_its_step_is_stopped_later() {
    let mut s = setup(&["--build-reconnect-grace", "2"]);
    let (c, ctl, work) = (&s.c, s.ctl.path(), s.work.path());
    create_job(c, "gone", &job_xml(&waiting_script(ctl), &[]));
    let out = c.cli(&["build", "gone", "-w"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "Started gone #1\n"));
    let pid = wait_script_pid(ctl);

    kill_agent(c, &mut s.agent);
    let out = c.cli(&["stop-builds", "gone"]);
    assert_eq!(out.stdout, "Build '#1' stopped for job 'gone'\n");
    assert_eq!(wait_result(c, "gone", 1), "ABORTED");
    let text = console(c, "gone", 1);
    assert!(
        text.ends_with(&format!(
            "\nAgent {NODE} is not connected, so step 1 could not be stopped; its process may \
             still run there, and is stopped when the agent reconnects.\n\
             Build was aborted\nAborted by admin\nFinished: ABORTED\n"
        )),
        "{text}"
    );
    assert!(
        running(pid),
        "nothing could stop the step while its agent was away"
    );

    // When the agent connects again, the controller stops and removes the orphaned step.
    let _agent = start_agent(c, work);
    wait_until(DEADLINE, "the orphaned step is killed", || !running(pid));
    let steps = work.join("steps");
    wait_until(DEADLINE, "the orphaned step's directory is removed", || {
        std::fs::read_dir(&steps).is_ok_and(|mut d| d.next().is_none())
    });
}

#[test]
fn a_step_killed_outright_fails_its_build_with_a_line_that_says_so() {
    let s = setup(&[]);
    let (c, ctl, work) = (&s.c, s.ctl.path(), s.work.path());
    create_job(c, "oom", &job_xml(&waiting_script(ctl), &[]));
    let client = c.cli_spawn(&["build", "oom", "-s"]);
    client.stdout.wait_for("Started oom #1\n", DEADLINE);
    wait_script_pid(ctl);

    // SIGKILL to the whole group, wrapper included, as the OOM killer or a reboot would:
    // the step ends with no exit status.
    let dirs = step_dirs(work);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let pgid = read_pid(&dirs[0].join("pgid")).expect("the step's group");
    // SAFETY: killpg only sends a signal, to the group of the step this test started.
    assert_eq!(unsafe { libc::killpg(pgid, libc::SIGKILL) }, 0);

    let out = client.wait(DEADLINE);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "Started oom #1\nCompleted oom #1 : FAILURE\n"),
        "{out:?}"
    );
    let text = console(c, "oom", 1);
    assert!(
        text.ends_with(&format!(
            "\nERROR: the step's process on {NODE} ended without an exit status (killed with \
             SIGKILL, or the machine restarted)\nFinished: FAILURE\n"
        )),
        "{text}"
    );
}

#[test]
fn a_build_aborted_before_a_controller_restart_stays_aborted() {
    let mut s = setup(&[]);
    let (ctl, work) = (s.ctl.path().to_owned(), s.work.path().to_owned());
    // The script takes its SIGTERM as a request to wrap up, and ends (successfully, its
    // `sleep` killed or not) once the test lets it: the controller is killed in between.
    let script = format!(
        "set +x\ntrap 'touch {}' TERM\necho $$ >{}\n\
         for i in $(seq 1 1200); do [ -e {} ] && break; sleep 0.05 || true; done\n",
        quoted(&ctl.join("terminating")),
        quoted(&ctl.join("script.pid")),
        quoted(&ctl.join("go"))
    );
    let c = &mut s.c;
    create_job(c, "wrapup", &job_xml(&script, &[]));
    let out = c.cli(&["build", "wrapup", "-w"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "Started wrapup #1\n"));
    let pid = wait_script_pid(&ctl);
    let out = c.cli(&["stop-builds", "wrapup"]);
    assert_eq!(out.stdout, "Build '#1' stopped for job 'wrapup'\n");
    wait_until(DEADLINE, "the step gets its SIGTERM", || {
        ctl.join("terminating").exists()
    });

    c.kill();
    touch(&ctl.join("go"));
    wait_until(DEADLINE, "the step ends", || !running(pid));
    assert_eq!(step_dirs(&work).len(), 1);
    c.kill_and_restart();
    assert_eq!(wait_result(c, "wrapup", 1), "ABORTED");
    let text = console(c, "wrapup", 1);
    assert!(
        text.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
        "{text}"
    );
}
