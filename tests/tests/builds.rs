//! Builds of freestyle jobs end to end, through the real controller, agents and cli: label
//! routing, executors as the limit on concurrency, parameters in the environment, step
//! failure, the console (streamed, followed, tailed, by permalink), the queue with its
//! reasons, merging and cancellation, non-concurrent jobs, EXCLUSIVE nodes, aborting (by
//! stop-builds, by an interrupted `build -s`, by delete-job, while the agent is away), a
//! controller or agent restart in the middle of a step, both CLI transports, and deleting
//! builds (delete-builds, `doDelete`, the job's build discarder). Steps
//! that must stay running wait on a [`Gate`] the test opens.

use std::collections::BTreeSet;

use steward_tests::{
    Agent, CliOutput, Controller, DEADLINE, Freestyle, Gate, http_request, wait_until,
};

/// An online node: its agent and the agent's work dir.
struct Node {
    _agent: Agent,
    dir: tempfile::TempDir,
}

impl Node {
    fn work_dir(&self) -> String {
        self.dir.path().to_str().expect("UTF-8 path").to_owned()
    }
}

/// Creates a node and starts its agent in a fresh work dir.
fn online_node(c: &Controller, name: &str, labels: &str, executors: u32, mode: &str) -> Node {
    c.create_node_with(name, labels, executors, mode);
    let dir = tempfile::tempdir().expect("work dir");
    let agent = c.start_agent_in(name, dir.path());
    Node { _agent: agent, dir }
}

/// Asserts a `build -s` that ended with `result` (exit code and both lines).
fn assert_completed(out: &CliOutput, job: &str, number: u64, result: &str, code: i32) {
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            code,
            format!("Started {job} #{number}\nCompleted {job} #{number} : {result}\n").as_str()
        ),
        "{out:?}"
    );
}

/// Whether `text` has a line that is exactly `line` (a step's output, not the `+ …` trace
/// of the command that printed it).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// The console with the build id in each `/steps/build-N-I/` path written as `ID`: build
/// ids are the controller's to choose.
fn without_build_ids(console: &str) -> String {
    let mut out = String::new();
    let mut rest = console;
    while let Some(at) = rest.find("/steps/build-") {
        let (head, tail) = rest.split_at(at + "/steps/build-".len());
        out.push_str(head);
        out.push_str("ID");
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Whether process `pid` has ended (gone, or a zombie waiting to be reaped).
fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "PID (comm) STATE …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The pid a step wrote to `file`.
fn read_pid(file: &std::path::Path) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// The steps in an agent's work dir.
fn steps_on_agent(work_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(work_dir.join("steps"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn label_expressions_route_builds_to_the_matching_node() {
    let c = Controller::start();
    let amd = online_node(&c, "amd64", "linux x86_64", 2, "NORMAL");
    let pi = online_node(&c, "pi", "linux arm b", 2, "NORMAL");
    let cases = [
        ("linux-not-arm", "linux && !arm", "amd64"),
        ("arm", "arm", "pi"),
        ("a-or-b", "a || b", "pi"),
        ("x86-or-a", "x86_64 || a", "amd64"),
        ("by-name", "pi", "pi"),
        // Both nodes match: the first by name with a free executor takes it.
        ("linux", "linux", "amd64"),
    ];
    for (job, expression, node) in cases {
        c.create_job(
            job,
            &Freestyle::shell("echo \"on=$NODE_NAME labels=$NODE_LABELS\"").label(expression),
        );
        let out = c.cli(&["build", job, "-s"]);
        assert_completed(&out, job, 1, "SUCCESS", 0);

        let (labels, dir) = match node {
            "pi" => ("linux arm b", pi.work_dir()),
            _ => ("linux x86_64", amd.work_dir()),
        };
        let console = c.console(job, 1);
        assert!(
            has_line(&console, &format!("on={node} labels={labels} {node}")),
            "{job} ({expression}) should run on {node}:\n{console}"
        );
        assert!(
            has_line(
                &console,
                &format!(
                    "Building remotely on {node} ({labels}) in workspace {dir}/workspace/{job}"
                )
            ),
            "{console}"
        );
        let builds = c.list_builds(job);
        assert_eq!(builds.len(), 1, "{builds:?}");
        assert_eq!(
            (
                builds[0].number,
                builds[0].result.as_str(),
                builds[0].node.as_str()
            ),
            (1, "SUCCESS", node),
            "{job} ({expression})"
        );
        assert_eq!(builds[0].cause, "Started from command line by admin");
    }
}

#[test]
fn two_executors_run_two_builds_at_once_and_the_third_waits() {
    let c = Controller::start();
    let gate = Gate::new();
    let duo = online_node(&c, "duo", "", 2, "NORMAL");
    let script = format!(
        "{}echo \"executor=$EXECUTOR_NUMBER\"\necho \"workspace=$WORKSPACE pwd=$(pwd)\"\n{}",
        gate.mark_script("started-$N"),
        gate.wait_script("release")
    );
    c.create_job(
        "hold",
        &Freestyle::shell(&script)
            .concurrent()
            .string_parameter("N", ""),
    );

    let clis: Vec<_> = (1..=3)
        .map(|n| c.cli_spawn(&["build", "hold", "-s", "-p", &format!("N={n}")]))
        .collect();
    wait_until(DEADLINE, "two builds started", || {
        gate.marks("started-").len() >= 2
    });
    let waiting = c.wait_queued("hold", "Waiting for next available executor");
    // Both executors are held until the gate opens: the third cannot have started.
    let started = gate.marks("started-");
    assert_eq!(started.len(), 2, "{started:?}");
    assert_eq!(c.queue().len(), 1, "{:?}", c.queue());
    let waiting_n = waiting.params.strip_prefix("N=").expect("N=…");
    assert!(
        !started.contains(&format!("started-{waiting_n}")),
        "{waiting:?} {started:?}"
    );
    let running = c.list_builds("hold");
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(running.iter().all(|b| b.result == "RUNNING"), "{running:?}");
    let executors: BTreeSet<String> = [1, 2]
        .iter()
        .map(|n| {
            let console = c.console("hold", *n);
            console
                .lines()
                .find_map(|l| l.strip_prefix("executor="))
                .unwrap_or_else(|| panic!("no executor line in:\n{console}"))
                .to_owned()
        })
        .collect();
    assert_eq!(executors, BTreeSet::from(["0".into(), "1".into()]));
    // As in Jenkins, builds of one job side by side on a node never share a directory.
    let workspace_line = |number: u64| {
        let console = c.console("hold", number);
        console
            .lines()
            .find(|l| l.starts_with("workspace="))
            .unwrap_or_else(|| panic!("no workspace line in:\n{console}"))
            .to_owned()
    };
    let base = format!("{}/workspace/hold", duo.work_dir());
    let workspaces: BTreeSet<String> = [1, 2].into_iter().map(workspace_line).collect();
    assert_eq!(
        workspaces,
        BTreeSet::from([
            format!("workspace={base} pwd={base}"),
            format!("workspace={base}@2 pwd={base}@2"),
        ])
    );

    gate.open("release");
    let mut numbers = BTreeSet::new();
    for cli in clis {
        let out = cli.wait(DEADLINE);
        assert_eq!(out.code, 0, "{out:?}");
        let number: u64 = out
            .stdout
            .strip_prefix("Started hold #")
            .and_then(|s| s.split('\n').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{out:?}"));
        assert_completed(&out, "hold", number, "SUCCESS", 0);
        numbers.insert(number);
    }
    assert_eq!(numbers, BTreeSet::from([1, 2, 3]));
    let third = c.console("hold", 3);
    assert!(
        has_line(&third, "executor=0") || has_line(&third, "executor=1"),
        "{third}"
    );
    let done = c.list_builds("hold");
    assert!(
        done.iter()
            .all(|b| b.result == "SUCCESS" && b.node == "duo"),
        "{done:?}"
    );
    // Ended builds give their workspaces back: a build alone takes the job's own again
    // (the gate stays open, so it runs straight through).
    let out = c.cli(&["build", "hold", "-s", "-p", "N=4"]);
    assert_completed(&out, "hold", 4, "SUCCESS", 0);
    assert_eq!(workspace_line(4), format!("workspace={base} pwd={base}"));
}

#[test]
fn parameters_reach_the_environment_and_bad_values_queue_nothing() {
    let c = Controller::start();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    c.create_job(
        "params",
        &Freestyle::shell("echo \"BRANCH=[$BRANCH] DEPLOY=[$DEPLOY] TARGET=[$TARGET]\"")
            .string_parameter("BRANCH", "main")
            .boolean_parameter("DEPLOY", false)
            .choice_parameter("TARGET", &["staging", "production"]),
    );

    let defaults = c.cli(&["build", "params", "-s"]);
    assert_completed(&defaults, "params", 1, "SUCCESS", 0);
    let console = c.console("params", 1);
    assert!(
        has_line(&console, "BRANCH=[main] DEPLOY=[false] TARGET=[staging]"),
        "{console}"
    );

    let given = c.cli(&[
        "build",
        "params",
        "-s",
        "-p",
        "BRANCH=feature/x y",
        "-p",
        "DEPLOY=TRUE",
        "-p",
        "TARGET=production",
    ]);
    assert_completed(&given, "params", 2, "SUCCESS", 0);
    let console = c.console("params", 2);
    assert!(
        has_line(
            &console,
            "BRANCH=[feature/x y] DEPLOY=[true] TARGET=[production]"
        ),
        "{console}"
    );
    let params: Vec<String> = c
        .list_builds("params")
        .into_iter()
        .map(|b| b.params)
        .collect();
    assert_eq!(
        params,
        [
            "BRANCH=feature/x y DEPLOY=true TARGET=production",
            "BRANCH=main DEPLOY=false TARGET=staging"
        ]
    );

    c.create_job("plain", &Freestyle::shell("true"));
    c.create_job("off", &Freestyle::shell("true"));
    assert_eq!(c.cli(&["disable-job", "off"]).code, 0);
    let refused: [(&[&str], i32, &str); 6] = [
        (
            &["params", "-p", "TARGET=qa"],
            3,
            "‘qa’ is not a choice of parameter ‘TARGET’; the choices are ‘staging’, ‘production’",
        ),
        // Jenkins' words and exit 2, with the usage after them; the nearest name suggested
        // (DEPLOY and TARGET are both 5 edits from NOPE: the first wins).
        (
            &["params", "-p", "NOPE=1"],
            2,
            "'NOPE' is not a valid parameter. Did you mean DEPLOY?",
        ),
        (
            &["params", "-p", "BRANCH"],
            2,
            "An argument for setting a Map must contain a \"=\" (\"BRANCH\" has none)",
        ),
        (
            &["ghost"],
            3,
            "No such job 'ghost'; perhaps you meant 'off'?",
        ),
        (
            &["plain", "-p", "A=1"],
            4,
            "plain is not parameterized but the -p option was specified.",
        ),
        (&["off"], 4, "Cannot build off because it is disabled."),
    ];
    for (args, code, message) in refused {
        let mut full = vec!["build"];
        full.extend_from_slice(args);
        full.push("-s");
        let out = c.cli(&full);
        let error = format!("\nERROR: {message}\n");
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (code, ""),
            "build {args:?}"
        );
        if code == 2 {
            assert!(out.stderr.starts_with(&error), "build {args:?}: {out:?}");
            assert!(out.stderr.contains("\ncli build JOB "), "usage: {out:?}");
        } else {
            assert_eq!(out.stderr, error, "build {args:?}");
        }
    }
    assert_eq!(c.queue(), []);
    assert_eq!(c.list_builds("params").len(), 2);
    // A boolean takes any value, as Java's Boolean.parseBoolean reads it: `yes` is false.
    let yes = c.cli(&[
        "build",
        "params",
        "-p",
        "DEPLOY=yes",
        "-p",
        "TARGET=production",
        "-s",
    ]);
    assert_completed(&yes, "params", 3, "SUCCESS", 0);
    assert!(
        has_line(
            &c.console("params", 3),
            "BRANCH=[main] DEPLOY=[false] TARGET=[production]"
        ),
        "{}",
        c.console("params", 3)
    );
    assert_eq!(c.list_builds("plain"), []);
    assert_eq!(c.list_builds("off"), []);
}

#[test]
fn a_failing_step_fails_the_build_and_later_steps_do_not_run() {
    let c = Controller::start();
    let solo = online_node(&c, "solo", "", 2, "NORMAL");
    c.create_job(
        "broken",
        &Freestyle::shell("echo one")
            .step("echo two\nfalse\necho not-reached")
            .step("echo three"),
    );
    let out = c.cli(&["build", "broken", "-s"]);
    assert_completed(&out, "broken", 1, "FAILURE", 2);
    let dir = solo.work_dir();
    assert_eq!(
        without_build_ids(&c.console("broken", 1)),
        format!(
            "Started from command line by admin\n\
             Building remotely on solo in workspace {dir}/workspace/broken\n\
             [broken] $ /bin/sh -xe {dir}/steps/build-ID-0/script.sh\n\
             + echo one\n\
             one\n\
             [broken] $ /bin/sh -xe {dir}/steps/build-ID-1/script.sh\n\
             + echo two\n\
             two\n\
             + false\n\
             Build step 'Execute shell' marked build as failure\n\
             Finished: FAILURE\n"
        )
    );
    assert_eq!(c.list_builds("broken")[0].result, "FAILURE");
}

#[test]
fn a_job_without_steps_succeeds_and_still_names_its_node_and_workspace() {
    let c = Controller::start();
    let solo = online_node(&c, "solo", "", 1, "NORMAL");
    let out = c.cli_with_stdin(&["create-job", "empty"], "<project><builders/></project>");
    assert_eq!(out.code, 0, "{out:?}");
    assert_completed(&c.cli(&["build", "empty", "-s"]), "empty", 1, "SUCCESS", 0);
    assert_eq!(
        c.console("empty", 1),
        format!(
            "Started from command line by admin\n\
             Building remotely on solo in workspace {}/workspace/empty\n\
             Finished: SUCCESS\n",
            solo.work_dir()
        )
    );
}

#[test]
fn passing_steps_run_in_order_in_the_workspace_with_jenkins_variables() {
    let c = Controller::start();
    let solo = online_node(&c, "solo", "linux", 2, "NORMAL");
    let print_env = "set +x\n\
        for name in BUILD_NUMBER BUILD_ID BUILD_DISPLAY_NAME BUILD_TAG BUILD_URL JOB_NAME \
        JOB_BASE_NAME JOB_URL WORKSPACE NODE_NAME NODE_LABELS EXECUTOR_NUMBER JENKINS_URL; do\n\
          eval \"echo $name=\\$$name\"\n\
        done\n\
        echo \"pwd=$(pwd)\"";
    c.create_job(
        "steps",
        &Freestyle::shell("echo first")
            .step(print_env)
            .step("echo third"),
    );
    let out = c.cli(&["build", "steps", "-s"]);
    assert_completed(&out, "steps", 1, "SUCCESS", 0);
    let (dir, url) = (solo.work_dir(), &c.url);
    assert!(url.ends_with('/'), "{url}");
    assert_eq!(
        without_build_ids(&c.console("steps", 1)),
        format!(
            "Started from command line by admin\n\
             Building remotely on solo (linux) in workspace {dir}/workspace/steps\n\
             [steps] $ /bin/sh -xe {dir}/steps/build-ID-0/script.sh\n\
             + echo first\n\
             first\n\
             [steps] $ /bin/sh -xe {dir}/steps/build-ID-1/script.sh\n\
             + set +x\n\
             BUILD_NUMBER=1\n\
             BUILD_ID=1\n\
             BUILD_DISPLAY_NAME=#1\n\
             BUILD_TAG=jenkins-steps-1\n\
             BUILD_URL={url}job/steps/1/\n\
             JOB_NAME=steps\n\
             JOB_BASE_NAME=steps\n\
             JOB_URL={url}job/steps/\n\
             WORKSPACE={dir}/workspace/steps\n\
             NODE_NAME=solo\n\
             NODE_LABELS=linux solo\n\
             EXECUTOR_NUMBER=0\n\
             JENKINS_URL={url}\n\
             pwd={dir}/workspace/steps\n\
             [steps] $ /bin/sh -xe {dir}/steps/build-ID-2/script.sh\n\
             + echo third\n\
             third\n\
             Finished: SUCCESS\n"
        )
    );
}

#[test]
fn build_v_streams_the_console_while_the_build_runs() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    // printf's trace line does not contain what it prints.
    let script = format!(
        "printf '%s-%s\\n' half way\n{}echo after",
        gate.wait_script("release")
    );
    c.create_job("live", &Freestyle::shell(&script));

    let cli = c.cli_spawn(&["build", "live", "-s", "-v"]);
    wait_until(DEADLINE, "half-way on build -v's stdout", || {
        has_line(&cli.stdout.text(), "half-way")
    });
    let so_far = cli.stdout.text();
    assert!(so_far.starts_with("Started live #1\n"), "{so_far}");
    assert!(
        !so_far.contains("after") && !so_far.contains("Finished") && !so_far.contains("Completed"),
        "the build is held at the gate:\n{so_far}"
    );

    gate.open("release");
    let out = cli.wait(DEADLINE);
    assert_eq!(out.code, 0, "{out:?}");
    // -v prints the console, whole, between the two lines of `build -s`.
    assert_eq!(
        out.stdout,
        format!(
            "Started live #1\n{}Completed live #1 : SUCCESS\n",
            c.console("live", 1)
        )
    );
    assert!(has_line(&out.stdout, "after"), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("Finished: SUCCESS\nCompleted live #1 : SUCCESS\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn build_w_returns_once_started_and_console_follows_tails_and_finds_builds() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "if [ \"$HOLD\" = true ]; then\n{}fi\necho \"FAIL=$FAIL\"\ntest \"$FAIL\" = false",
        gate.wait_script("release")
    );
    c.create_job(
        "w",
        &Freestyle::shell(&script)
            .boolean_parameter("HOLD", false)
            .boolean_parameter("FAIL", false),
    );

    let started = c.cli(&["build", "w", "-w", "-p", "HOLD=true"]);
    assert_eq!(
        (started.code, started.stdout.as_str()),
        (0, "Started w #1\n"),
        "{started:?}"
    );
    assert_eq!(c.list_builds("w")[0].result, "RUNNING");

    let mut follower = c.cli_spawn(&["console", "w", "1", "-f"]);
    follower.stdout.wait_for("+ set +x\n", DEADLINE);
    // From the last line so far, then on.
    let mut tail_follower = c.cli_spawn(&["console", "w", "1", "-f", "-n", "1"]);
    tail_follower.stdout.wait_for("+ set +x\n", DEADLINE);
    assert_eq!(tail_follower.stdout.text(), "+ set +x\n");
    for cli in [&mut follower, &mut tail_follower] {
        assert!(
            !cli.has_exited(),
            "console -f ended while the build runs: {}",
            cli.stdout.text()
        );
    }
    gate.open("release");
    let followed = follower.wait(DEADLINE);
    assert_eq!(
        tail_follower.wait(DEADLINE).stdout,
        "+ set +x\n+ echo FAIL=false\nFAIL=false\n+ test false = false\nFinished: SUCCESS\n"
    );
    assert_eq!(followed.code, 0, "{followed:?}");
    assert!(
        followed
            .stdout
            .ends_with("FAIL=false\n+ test false = false\nFinished: SUCCESS\n"),
        "{}",
        followed.stdout
    );
    assert_eq!(followed.stdout, c.console("w", 1));

    assert_completed(
        &c.cli(&["build", "w", "-s", "-p", "FAIL=true"]),
        "w",
        2,
        "FAILURE",
        2,
    );
    assert_completed(&c.cli(&["build", "w", "-s"]), "w", 3, "SUCCESS", 0);

    // Without a build: the last one.
    assert_eq!(c.cli(&["console", "w"]).stdout, c.console("w", 3));
    let tail = c.cli(&["console", "w", "-n", "2"]);
    assert_eq!(
        (tail.code, tail.stdout.as_str()),
        (0, "+ test false = false\nFinished: SUCCESS\n")
    );
    let tail = c.cli(&["console", "w", "2", "-n", "2"]);
    assert_eq!(
        tail.stdout,
        "Build step 'Execute shell' marked build as failure\nFinished: FAILURE\n"
    );
    let failed = c.cli(&["console", "w", "lastFailedBuild"]);
    assert_eq!(failed.code, 0, "{failed:?}");
    assert_eq!(failed.stdout, c.console("w", 2));
    assert!(has_line(&failed.stdout, "FAIL=true"), "{}", failed.stdout);
    // A finished build: -f prints it all and returns.
    assert_eq!(c.cli(&["console", "w", "2", "-f"]).stdout, failed.stdout);

    let missing = c.cli(&["console", "w", "99"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (3, "\nERROR: No such build #99\n")
    );
    let none = c.cli(&["console", "w", "lastUnstableBuild"]);
    assert_eq!(
        (none.code, none.stderr.as_str()),
        (
            4,
            "\nERROR: Permalink lastUnstableBuild produced no build\n"
        )
    );
    // The only job, `w`, is suggested, as Jenkins suggests the nearest.
    let ghost = c.cli(&["console", "ghost"]);
    assert_eq!(
        (ghost.code, ghost.stderr.as_str()),
        (3, "\nERROR: No such job 'ghost'; perhaps you meant 'w'?\n")
    );
}

#[test]
fn a_build_whose_label_no_node_has_waits_with_the_reason_until_cancelled() {
    let c = Controller::start();
    let _n = online_node(&c, "n1", "linux", 2, "NORMAL");
    c.create_job("win", &Freestyle::shell("true").label("windows"));

    let cli = c.cli_spawn(&["build", "win", "-s"]);
    let item = c.wait_queued("win", "There are no nodes with the label ‘windows’");
    // The same build asked for again joins the waiting item, as in Jenkins.
    let same = c.cli(&["build", "win"]);
    assert_eq!(same.code, 0, "{same:?}");
    assert_eq!(c.queue(), std::slice::from_ref(&item));
    let id = item.id.to_string();
    let cancel = c.cli(&["cancel-queue", &id]);
    assert_eq!(cancel.code, 0, "{cancel:?}");
    assert_eq!(c.queue(), []);
    let out = cli.wait(DEADLINE);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (4, "", "\nERROR: The queued build of win was cancelled\n")
    );
    let again = c.cli(&["cancel-queue", &id]);
    assert_eq!(
        (again.code, again.stderr),
        (
            3,
            format!("\nERROR: No queue item '{id}' (it may have started already)\n")
        )
    );
    assert_eq!(c.list_builds("win"), []);

    // A label that does not parse is the item's reason too.
    c.create_job("typo", &Freestyle::shell("true").label("linux &&"));
    assert_eq!(c.cli(&["build", "typo"]).code, 0);
    let mut typo = None;
    wait_until(DEADLINE, "typo's reason", || {
        typo = c.queue().into_iter().find(|q| q.job == "typo");
        typo.as_ref()
            .is_some_and(|q| q.reason != "Waiting for the scheduler")
    });
    let typo = typo.unwrap();
    assert!(
        typo.reason.starts_with("Invalid label expression: "),
        "{typo:?}"
    );
    assert_eq!(c.cli(&["cancel-queue", &typo.id.to_string()]).code, 0);

    // A label whose only node is offline waits until the node connects.
    c.create_node_with("gpu1", "gpu", 1, "NORMAL");
    c.create_job("train", &Freestyle::shell("true").label("gpu"));
    let cli = c.cli_spawn(&["build", "train", "-s"]);
    c.wait_queued("train", "All nodes of label ‘gpu’ are offline");
    let dir = tempfile::tempdir().unwrap();
    let _agent = c.start_agent_in("gpu1", dir.path());
    assert_completed(&cli.wait(DEADLINE), "train", 1, "SUCCESS", 0);
    assert_eq!(c.list_builds("train")[0].node, "gpu1");
}

#[test]
fn a_job_that_is_not_concurrent_waits_for_its_running_build() {
    let c = Controller::start();
    let gate = Gate::new();
    let _duo = online_node(&c, "duo", "", 2, "NORMAL");
    let script = format!(
        "{}{}",
        gate.mark_script("started-$N"),
        gate.wait_script("release")
    );
    c.create_job(
        "serial",
        &Freestyle::shell(&script).string_parameter("N", ""),
    );

    let first = c.cli_spawn(&["build", "serial", "-s", "-p", "N=1"]);
    wait_until(DEADLINE, "build 1 started", || gate.is_marked("started-1"));
    let second = c.cli_spawn(&["build", "serial", "-s", "-p", "N=2"]);
    let item = c.wait_queued("serial", "Build #1 is already in progress");
    assert_eq!(item.params, "N=2");
    // The node has a free executor; only the running build holds the second back.
    assert!(!gate.is_marked("started-2"));

    gate.open("release");
    assert_completed(&first.wait(DEADLINE), "serial", 1, "SUCCESS", 0);
    assert_completed(&second.wait(DEADLINE), "serial", 2, "SUCCESS", 0);
}

#[test]
fn an_exclusive_node_takes_only_jobs_whose_label_matches_it() {
    let c = Controller::start();
    let _reserved = online_node(&c, "reserved", "special", 2, "EXCLUSIVE");
    c.create_job("anywhere", &Freestyle::shell("true"));
    c.create_job("named", &Freestyle::shell("true").label("reserved"));
    c.create_job("by-label", &Freestyle::shell("true").label("special"));

    let anywhere = c.cli_spawn(&["build", "anywhere", "-s"]);
    c.wait_queued(
        "anywhere",
        "Waiting for next available executor (no node takes jobs without a label)",
    );
    for job in ["named", "by-label"] {
        assert_completed(&c.cli(&["build", job, "-s"]), job, 1, "SUCCESS", 0);
        assert_eq!(c.list_builds(job)[0].node, "reserved");
    }
    // Free executors on the EXCLUSIVE node did not take the unlabeled job.
    let queue = c.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].job, "anywhere");
    assert_eq!(c.list_builds("anywhere"), []);

    // A NORMAL node does.
    let _common = online_node(&c, "common", "", 1, "NORMAL");
    assert_completed(&anywhere.wait(DEADLINE), "anywhere", 1, "SUCCESS", 0);
    assert_eq!(c.list_builds("anywhere")[0].node, "common");
}

#[test]
fn stop_builds_aborts_a_running_build_and_kills_its_step() {
    let c = Controller::start();
    let gate = Gate::new();
    let n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "echo $$ > \"$WORKSPACE/pid\"\n{}{}",
        gate.mark_script("started"),
        gate.wait_script("never")
    );
    c.create_job("long", &Freestyle::shell(&script));

    let cli = c.cli_spawn(&["build", "long", "-s"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));
    let pid = read_pid(&n.dir.path().join("workspace/long/pid"));
    assert!(!process_ended(pid));

    let stop = c.cli(&["stop-builds", "long"]);
    assert_eq!(
        (stop.code, stop.stdout.as_str()),
        (0, "Build '#1' stopped for job 'long'\n"),
        "{stop:?}"
    );
    assert_completed(&cli.wait(DEADLINE), "long", 1, "ABORTED", 4);
    wait_until(DEADLINE, "the step's shell ended", || process_ended(pid));
    let console = c.console("long", 1);
    assert!(
        console.ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
        "{console}"
    );
    assert_eq!(c.list_builds("long")[0].result, "ABORTED");
    wait_until(DEADLINE, "the ended step removed from the agent", || {
        steps_on_agent(n.dir.path()).is_empty()
    });

    let again = c.cli(&["stop-builds", "long"]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, "No builds stopped\n")
    );
    assert!(!gate.is_marked("never"));
}

#[test]
fn builds_run_over_both_cli_transports() {
    let c = Controller::start();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    c.create_job("hello", &Freestyle::shell("echo \"hello from $BUILD_TAG\""));
    c.create_job("sad", &Freestyle::shell("exit 3"));
    for (i, mode) in [(0, "-webSocket"), (1, "-http")] {
        let out = c.cli(&[mode, "build", "hello", "-s"]);
        assert_completed(&out, "hello", 2 * i + 1, "SUCCESS", 0);
        let out = c.cli(&[mode, "build", "sad", "-s"]);
        assert_completed(&out, "sad", i + 1, "FAILURE", 2);

        let streamed = c.cli(&[mode, "build", "hello", "-s", "-v"]);
        assert_eq!(streamed.code, 0, "{mode}: {streamed:?}");
        let n = 2 * i + 2;
        assert_eq!(
            streamed.stdout,
            format!(
                "Started hello #{n}\n{}Completed hello #{n} : SUCCESS\n",
                c.console("hello", n)
            ),
            "{mode}"
        );
        assert!(
            has_line(&streamed.stdout, &format!("hello from jenkins-hello-{n}")),
            "{mode}: {}",
            streamed.stdout
        );
    }
}

#[test]
fn interrupting_build_s_aborts_its_build_and_build_f_leaves_it_running() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 4, "NORMAL");
    let script = format!(
        "{}{}",
        gate.mark_script("started-$N"),
        gate.wait_script("release")
    );
    c.create_job(
        "held",
        &Freestyle::shell(&script)
            .concurrent()
            .string_parameter("N", ""),
    );
    c.create_job("nowhere", &Freestyle::shell("true").label("windows"));
    let disconnects = |c: &Controller| c.log.count("CLI client disconnected during the command");

    for (number, mode) in [(1, "-webSocket"), (2, "-http")] {
        // Running: Ctrl-C, and the build is aborted by the user who started it.
        let n = format!("N=s{number}");
        let cli = c.cli_spawn(&[mode, "build", "held", "-s", "-p", &n]);
        wait_until(DEADLINE, "the build started", || {
            gate.is_marked(&format!("started-s{number}"))
        });
        cli.signal("INT");
        assert_eq!(cli.wait(DEADLINE).code, 130, "{mode}");
        wait_until(DEADLINE, "the build aborted", || {
            c.list_builds("held")
                .iter()
                .any(|b| b.number == number && b.result == "ABORTED")
        });
        assert!(
            c.console("held", number)
                .ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n"),
            "{mode}"
        );

        // Queued: the item is cancelled.
        let cli = c.cli_spawn(&[mode, "build", "nowhere", "-s"]);
        c.wait_queued("nowhere", "There are no nodes with the label ‘windows’");
        cli.signal("INT");
        assert_eq!(cli.wait(DEADLINE).code, 130, "{mode}");
        wait_until(DEADLINE, "the queue item cancelled", || {
            c.queue().is_empty()
        });
    }

    // -f: the build goes on without its client.
    let before = disconnects(&c);
    let cli = c.cli_spawn(&["build", "held", "-f", "-p", "N=f"]);
    wait_until(DEADLINE, "the build started", || {
        gate.is_marked("started-f")
    });
    drop(cli);
    wait_until(DEADLINE, "the controller saw the client leave", || {
        disconnects(&c) > before
    });
    assert_eq!(c.list_builds("held")[0].result, "RUNNING");
    gate.open("release");
    let follow = c.cli(&["console", "held", "3", "-f"]);
    assert!(
        follow.stdout.ends_with("Finished: SUCCESS\n"),
        "{}",
        follow.stdout
    );
    assert_eq!(c.list_builds("held")[0].result, "SUCCESS");
}

#[test]
fn queued_builds_start_when_their_job_or_node_changes() {
    let c = Controller::start();
    let dir = tempfile::tempdir().unwrap();
    c.create_node_with("n1", "linux", 1, "NORMAL");
    let _agent = c.start_agent_in("n1", dir.path());

    // The job's label changes.
    c.create_job("moving", &Freestyle::shell("true").label("windows"));
    let cli = c.cli_spawn(&["build", "moving", "-s"]);
    c.wait_queued("moving", "There are no nodes with the label ‘windows’");
    let relabelled = Freestyle::shell("true").label("linux").xml();
    let out = c.cli_with_stdin(&["update-job", "moving"], &relabelled);
    assert_eq!(out.code, 0, "{out:?}");
    assert_completed(&cli.wait(DEADLINE), "moving", 1, "SUCCESS", 0);

    // The node's labels change.
    c.create_job("mac", &Freestyle::shell("true").label("mac"));
    let cli = c.cli_spawn(&["build", "mac", "-s"]);
    c.wait_queued("mac", "There are no nodes with the label ‘mac’");
    let node_xml = c.cli(&["get-node", "n1"]).stdout;
    let updated = node_xml.replace("<label>linux</label>", "<label>linux mac</label>");
    assert_ne!(node_xml, updated, "{node_xml}");
    let out = c.cli_with_stdin(&["update-node", "n1"], &updated);
    assert_eq!(out.code, 0, "{out:?}");
    assert_completed(&cli.wait(DEADLINE), "mac", 1, "SUCCESS", 0);

    // The node is marked offline, then online again.
    assert_eq!(c.cli(&["offline-node", "n1", "-m", "maintenance"]).code, 0);
    c.create_job("later", &Freestyle::shell("true").label("linux"));
    let cli = c.cli_spawn(&["build", "later", "-s"]);
    c.wait_queued("later", "All nodes of label ‘linux’ are offline");
    assert_eq!(c.cli(&["online-node", "n1"]).code, 0);
    assert_completed(&cli.wait(DEADLINE), "later", 1, "SUCCESS", 0);

    // The job is disabled while its build waits: as in Jenkins, that cancels the build.
    c.create_job("paused", &Freestyle::shell("true").label("gpu"));
    let cli = c.cli_spawn(&["build", "paused", "-s"]);
    c.wait_queued("paused", "There are no nodes with the label ‘gpu’");
    assert_eq!(c.cli(&["disable-job", "paused"]).code, 0);
    let out = cli.wait(DEADLINE);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("ERROR: The queued build of paused was cancelled"),
        "{out:?}"
    );
    assert!(c.queue().is_empty());
    // A queued build of a job disabled by its XML waits, saying why, until it is enabled.
    let disabled = Freestyle::shell("true")
        .label("gpu")
        .xml()
        .replace("<disabled>false</disabled>", "<disabled>true</disabled>");
    assert_eq!(c.cli(&["enable-job", "paused"]).code, 0);
    let cli = c.cli_spawn(&["build", "paused", "-s"]);
    c.wait_queued("paused", "There are no nodes with the label ‘gpu’");
    let out = c.cli_with_stdin(&["update-job", "paused"], &disabled);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_queued("paused", "paused is disabled");
    let out = c.cli_with_stdin(
        &["update-job", "paused"],
        &Freestyle::shell("true").label("linux").xml(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_completed(&cli.wait(DEADLINE), "paused", 1, "SUCCESS", 0);
}

#[test]
fn a_running_build_survives_a_controller_restart() {
    let mut c = Controller::start();
    let gate = Gate::new();
    let n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "echo before\n{}{}echo after",
        gate.mark_script("started"),
        gate.wait_script("release")
    );
    c.create_job("durable", &Freestyle::shell(&script));
    c.create_job("nowhere", &Freestyle::shell("true").label("windows"));
    assert_eq!(
        c.cli(&["build", "durable", "-w"]).stdout,
        "Started durable #1\n"
    );
    assert_eq!(c.cli(&["build", "nowhere"]).code, 0);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));
    let queued = c.wait_queued("nowhere", "There are no nodes with the label ‘windows’");

    c.kill_and_restart();
    // The queue is kept, the build still runs.
    assert_eq!(
        c.wait_queued("nowhere", "There are no nodes with the label ‘windows’"),
        queued
    );
    assert_eq!(c.list_builds("durable")[0].result, "RUNNING");
    c.wait_online("n1", true, DEADLINE);
    gate.open("release");
    let out = c.cli(&["console", "durable", "1", "-f"]);
    assert_eq!(out.code, 0, "{out:?}");
    let dir = n.work_dir();
    assert_eq!(
        without_build_ids(&out.stdout),
        format!(
            "Started from command line by admin\n\
             Building remotely on n1 in workspace {dir}/workspace/durable\n\
             [durable] $ /bin/sh -xe {dir}/steps/build-ID-0/script.sh\n\
             + echo before\n\
             before\n\
             + touch {}/started\n\
             + set +x\n\
             + echo after\n\
             after\n\
             Finished: SUCCESS\n",
            gate.dir().display()
        )
    );
    assert_eq!(c.list_builds("durable")[0].result, "SUCCESS");
}

#[test]
fn a_large_console_streams_whole() {
    let c = Controller::start();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    c.create_job("chatty", &Freestyle::shell("set +x\nseq 1 300000"));
    let out = c.cli(&["build", "chatty", "-s", "-v"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let console = c.console("chatty", 1);
    assert_eq!(
        out.stdout,
        format!("Started chatty #1\n{console}Completed chatty #1 : SUCCESS\n")
    );
    let numbers: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
    assert!(console.contains(&format!("+ set +x\n{numbers}Finished: SUCCESS\n")));
    let tail = c.cli(&["console", "chatty", "-n", "3"]);
    assert_eq!(tail.stdout, "299999\n300000\nFinished: SUCCESS\n");
}

#[test]
fn a_build_survives_its_agent_restarting_and_fails_when_it_stays_away() {
    let c = Controller::start_with(&["--build-reconnect-grace", "2"]);
    let gate = Gate::new();
    c.create_node_with("n1", "", 2, "NORMAL");
    let dir = tempfile::tempdir().unwrap();
    let mut agent = c.start_agent_in("n1", dir.path());
    let script = format!(
        "echo $$ > \"$WORKSPACE/pid-$N\"\n{}{}echo \"after $N\"",
        gate.mark_script("started-$N"),
        gate.wait_script("release-$N")
    );
    c.create_job(
        "sturdy",
        &Freestyle::shell(&script)
            .concurrent()
            .string_parameter("N", ""),
    );

    // The agent dies and comes back while the step runs: the build goes on.
    let cli = c.cli_spawn(&["build", "sturdy", "-s", "-p", "N=1"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started-1"));
    agent.kill();
    c.wait_online("n1", false, DEADLINE);
    let mut agent = c.start_agent_in("n1", dir.path());
    gate.open("release-1");
    assert_completed(&cli.wait(DEADLINE), "sturdy", 1, "SUCCESS", 0);
    assert!(has_line(&c.console("sturdy", 1), "after 1"));

    // It dies and stays away longer than the grace: the build fails.
    let cli = c.cli_spawn(&["build", "sturdy", "-s", "-p", "N=2"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started-2"));
    agent.kill();
    assert_completed(&cli.wait(DEADLINE), "sturdy", 2, "FAILURE", 2);
    let console = c.console("sturdy", 2);
    assert!(
        console.contains(
            "ERROR: Agent n1 was lost during step 1 and did not reconnect within 2 s; \
             the build fails. Its process, if it still runs, is killed when the agent reconnects."
        ),
        "{console}"
    );
    // The failed build's step ran on without the agent; it goes when the agent is back.
    let pid = read_pid(&dir.path().join("workspace/sturdy/pid-2"));
    assert!(!process_ended(pid));
    let _agent = c.start_agent_in("n1", dir.path());
    wait_until(DEADLINE, "the failed build's step killed", || {
        process_ended(pid)
    });
    wait_until(DEADLINE, "the agent's steps removed", || {
        steps_on_agent(dir.path()).is_empty()
    });
    assert!(!has_line(&c.console("sturdy", 2), "after 2"));
}

#[test]
fn identical_builds_asked_for_at_once_queue_once() {
    let c = Controller::start();
    c.create_job("win", &Freestyle::shell("true").label("windows"));
    // A few rounds: the requests must overlap inside the controller for this to fail.
    for round in 0..5 {
        let clis: Vec<_> = (0..8).map(|_| c.cli_spawn(&["build", "win"])).collect();
        for cli in clis {
            let out = cli.wait(DEADLINE);
            assert_eq!(out.code, 0, "{out:?}");
        }
        let queue = c.queue();
        assert_eq!(queue.len(), 1, "round {round}: {queue:?}");
        assert_eq!(c.cli(&["cancel-queue", &queue[0].id.to_string()]).code, 0);
    }
}

#[test]
fn deleting_a_job_aborts_its_build_and_cancels_its_queue_and_numbers_go_on() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "{}{}",
        gate.mark_script("started"),
        gate.wait_script("never")
    );
    c.create_job("doomed", &Freestyle::shell(&script));

    let running = c.cli_spawn(&["build", "doomed", "-s"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));
    let queued = c.cli_spawn(&["build", "doomed", "-s"]);
    c.wait_queued("doomed", "Build #1 is already in progress");

    let out = c.cli(&["delete-job", "doomed"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_completed(&running.wait(DEADLINE), "doomed", 1, "ABORTED", 4);
    let out = queued.wait(DEADLINE);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (4, "\nERROR: The queued build of doomed was cancelled\n")
    );
    assert_eq!(c.queue(), []);

    // A job of the same name starts after the old one's numbers.
    c.create_job("doomed", &Freestyle::shell("true"));
    assert_completed(
        &c.cli(&["build", "doomed", "-s"]),
        "doomed",
        2,
        "SUCCESS",
        0,
    );
    let builds = c.list_builds("doomed");
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].number, 2);
    let gone = c.cli(&["console", "doomed", "1"]);
    assert_eq!(
        (gone.code, gone.stderr.as_str()),
        (3, "\nERROR: No such build #1\n")
    );
}

#[test]
fn a_job_name_with_spaces_and_accents_reaches_urls_encoded_and_paths_as_is() {
    let c = Controller::start();
    let n = online_node(&c, "n1", "", 2, "NORMAL");
    let job = "nightly build ü";
    c.create_job(
        job,
        &Freestyle::shell(
            "set +x\necho \"JOB_NAME=$JOB_NAME\"\necho \"BUILD_TAG=$BUILD_TAG\"\n\
             echo \"BUILD_URL=$BUILD_URL\"\necho \"pwd=$(pwd)\"",
        ),
    );
    assert_completed(&c.cli(&["build", job, "-s"]), job, 1, "SUCCESS", 0);
    let console = c.console(job, 1);
    let dir = n.work_dir();
    for line in [
        format!("[{job}] $ /bin/sh -xe {dir}/steps/build-ID-0/script.sh"),
        format!("JOB_NAME={job}"),
        format!("BUILD_TAG=jenkins-{job}-1"),
        format!("BUILD_URL={}job/nightly%20build%20%C3%BC/1/", c.url),
        format!("pwd={dir}/workspace/{job}"),
    ] {
        assert!(
            has_line(&without_build_ids(&console), &line),
            "{line:?} missing from:\n{console}"
        );
    }
}

#[test]
fn a_build_aborted_while_its_agent_is_away_has_its_step_killed_when_the_agent_returns() {
    let c = Controller::start();
    let gate = Gate::new();
    c.create_node_with("n1", "", 2, "NORMAL");
    let dir = tempfile::tempdir().unwrap();
    let mut agent = c.start_agent_in("n1", dir.path());
    let script = format!(
        "echo $$ > \"$WORKSPACE/pid\"\n{}{}",
        gate.mark_script("started"),
        gate.wait_script("never")
    );
    c.create_job("away", &Freestyle::shell(&script));
    let cli = c.cli_spawn(&["build", "away", "-s"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));
    let pid = read_pid(&dir.path().join("workspace/away/pid"));

    agent.kill();
    c.wait_online("n1", false, DEADLINE);
    let stop = c.cli(&["stop-builds", "away"]);
    assert_eq!(
        stop.stdout, "Build '#1' stopped for job 'away'\n",
        "{stop:?}"
    );
    // The build ends at once: nothing can be killed while the agent is away.
    assert_completed(&cli.wait(DEADLINE), "away", 1, "ABORTED", 4);
    assert!(
        c.console("away", 1)
            .ends_with("Build was aborted\nAborted by admin\nFinished: ABORTED\n")
    );
    assert!(!process_ended(pid), "the step outlives its agent");

    let _agent = c.start_agent_in("n1", dir.path());
    wait_until(DEADLINE, "the aborted build's step killed", || {
        process_ended(pid)
    });
    wait_until(DEADLINE, "the aborted build's step removed", || {
        steps_on_agent(dir.path()).is_empty()
    });
    assert!(!gate.is_marked("never"));
}

#[test]
fn a_build_aborted_while_its_agent_is_frozen_ends_when_the_connection_is_found_dead() {
    // Dead connections are found within 3 s; a lost agent is waited for much longer.
    let c = Controller::start_with(&[
        "--ws-ping-interval",
        "1",
        "--ws-idle-timeout",
        "3",
        "--build-reconnect-grace",
        "120",
    ]);
    let gate = Gate::new();
    c.create_node_with("n1", "", 2, "NORMAL");
    let dir = tempfile::tempdir().unwrap();
    let agent = c.start_agent_in("n1", dir.path());
    let script = format!(
        "echo $$ > \"$WORKSPACE/pid\"\n{}{}",
        gate.mark_script("started"),
        gate.wait_script("never")
    );
    c.create_job("frozen", &Freestyle::shell(&script));
    let cli = c.cli_spawn(&["build", "frozen", "-s"]);
    wait_until(DEADLINE, "the step started", || gate.is_marked("started"));
    let pid = read_pid(&dir.path().join("workspace/frozen/pid"));

    // The connection stays open while the agent is stopped: the abort's kill gets no
    // answer until the idle timeout closes it. The build must not then wait out the grace.
    agent.signal("STOP");
    let stop = c.cli(&["stop-builds", "frozen"]);
    assert_eq!(
        stop.stdout, "Build '#1' stopped for job 'frozen'\n",
        "{stop:?}"
    );
    assert_completed(&cli.wait(DEADLINE), "frozen", 1, "ABORTED", 4);
    assert!(!process_ended(pid));

    // Once the agent runs again it reconnects, and the step is killed.
    agent.signal("CONT");
    wait_until(DEADLINE, "the aborted build's step killed", || {
        process_ended(pid)
    });
    wait_until(DEADLINE, "the aborted build's step removed", || {
        steps_on_agent(dir.path()).is_empty()
    });
}

/// Build numbers of `job` on record, newest first.
fn numbers(c: &Controller, job: &str) -> Vec<u64> {
    c.list_builds(job).iter().map(|b| b.number).collect()
}

#[test]
fn delete_builds_removes_ended_builds_and_their_consoles_but_never_a_running_one() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "echo out-$BUILD_NUMBER\nif [ \"$BUILD_NUMBER\" = 5 ]; then\n{}{}fi\n",
        gate.mark_script("started"),
        gate.wait_script("finish")
    );
    c.create_job("j", &Freestyle::shell(&script));
    for number in 1..=4 {
        assert_completed(&c.cli(&["build", "j", "-s"]), "j", number, "SUCCESS", 0);
    }
    let dir = |n: u64| c.home().join(format!("jobs/j/builds/{n}"));
    assert!(dir(2).join("log").is_file());

    let out = c.cli(&["delete-builds", "j", "2-3,9"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Deleted 2 builds\n"),
        "{out:?}"
    );
    assert_eq!(numbers(&c, "j"), [4, 1]);
    assert!(!dir(2).exists() && !dir(3).exists(), "consoles left behind");
    assert!(has_line(&c.console("j", 4), "out-4"));
    let gone = c.cli(&["console", "j", "2"]);
    assert_eq!(
        (gone.code, gone.stderr.as_str()),
        (3, "\nERROR: No such build #2\n")
    );

    // A running build in the range: nothing is deleted, by the CLI or the REST API.
    let running = c.cli_spawn(&["build", "j", "-s"]);
    wait_until(DEADLINE, "build #5 started", || gate.is_marked("started"));
    let refused = c.cli(&["delete-builds", "j", "4-5"]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (
            4,
            "\nERROR: Build #5 of job 'j' is still running: wait for it to end or stop it; \
             nothing was deleted\n"
        ),
        "{refused:?}"
    );
    let auth = c.admin_basic_auth_header();
    let post = |path: &str| http_request(&c.addr, "POST", path, &[&auth], b"");
    let conflict = post("/job/j/5/doDelete");
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    assert!(
        conflict.text().contains("still running"),
        "{}",
        conflict.text()
    );
    assert_eq!(numbers(&c, "j"), [5, 4, 1]);

    gate.open("finish");
    assert_completed(&running.wait(DEADLINE), "j", 5, "SUCCESS", 0);
    let deleted = post("/job/j/lastBuild/doDelete");
    assert_eq!(deleted.status, 302, "{}", deleted.text());
    assert!(
        deleted
            .header("Location")
            .is_some_and(|l| l.ends_with("/job/j/")),
        "{}",
        deleted.headers
    );
    assert_eq!(numbers(&c, "j"), [4, 1]);
    assert!(!dir(5).exists());
    assert_eq!(post("/job/j/5/doDelete").status, 404);
    let anonymous = http_request(&c.addr, "POST", "/job/j/4/doDelete", &[], b"");
    assert_eq!(anonymous.status, 403, "{}", anonymous.text());

    // Bad input changes nothing.
    for (args, code, message) in [
        (
            &["delete-builds", "j", "5-3"][..],
            3,
            "ERROR: Unable to parse '5-3', expected string with a range M-N where M<N\n",
        ),
        (
            &["delete-builds", "j", "one"][..],
            3,
            "Unable to parse 'one'",
        ),
        (&["delete-builds", "nope", "1"][..], 3, "No such job 'nope'"),
        (
            &["delete-builds", "j"][..],
            2,
            "Argument \"RANGE\" is required",
        ),
    ] {
        let out = c.cli(args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {out:?}");
    }
    assert_eq!(numbers(&c, "j"), [4, 1]);

    // Numbers are not reused.
    assert_completed(&c.cli(&["build", "j", "-s"]), "j", 6, "SUCCESS", 0);
}

#[test]
fn the_build_discarder_keeps_the_newest_the_last_successful_and_kept_builds() {
    let c = Controller::start();
    let _n = online_node(&c, "n1", "", 1, "NORMAL");
    // Builds 1 and 2 pass, the rest fail: #2 stays as the last successful (and stable)
    // build however many follow.
    let script = "echo out-$BUILD_NUMBER\n[ \"$BUILD_NUMBER\" -le 2 ]";
    c.create_job("rotated", &Freestyle::shell(script).discard_old(2, -1));
    let home = c.home().to_path_buf();
    let dirs = || -> BTreeSet<u64> {
        std::fs::read_dir(home.join("jobs/rotated/builds"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let build = |number: u64, result: &str, code: i32| {
        assert_completed(
            &c.cli(&["build", "rotated", "-s"]),
            "rotated",
            number,
            result,
            code,
        );
    };
    let auth = c.admin_basic_auth_header();
    let keep_log = |number: u64| {
        let answer = http_request(
            &c.addr,
            "GET",
            &format!("/job/rotated/{number}/api/json"),
            &[&auth],
            b"",
        );
        answer.json()["keepLog"].as_bool().expect("keepLog")
    };

    build(1, "SUCCESS", 0);
    build(2, "SUCCESS", 0);
    build(3, "FAILURE", 2);
    // The discarder has run by the time `build -s` learns the result.
    assert_eq!(numbers(&c, "rotated"), [3, 2]);
    let kept = c.cli(&["keep-build", "rotated", "3"]);
    assert_eq!((kept.code, kept.stdout.as_str()), (0, ""), "{kept:?}");
    assert!(keep_log(3));
    let refused = http_request(&c.addr, "POST", "/job/rotated/3/doDelete", &[&auth], b"");
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(
        refused.text().contains("kept forever"),
        "{}",
        refused.text()
    );
    build(4, "FAILURE", 2);
    build(5, "FAILURE", 2);
    assert_eq!(numbers(&c, "rotated"), [5, 4, 3, 2]);
    assert_eq!(dirs(), BTreeSet::from([2, 3, 4, 5]));
    let last_successful = c.cli(&["console", "rotated", "lastSuccessfulBuild"]);
    assert!(
        has_line(&last_successful.stdout, "out-2"),
        "{last_successful:?}"
    );

    // No longer kept (the REST toggle): the next build's discarder takes it.
    let toggled = http_request(
        &c.addr,
        "POST",
        "/job/rotated/3/toggleLogKeep",
        &[&auth],
        b"",
    );
    assert_eq!(toggled.status, 302, "{}", toggled.text());
    assert!(!keep_log(3));
    build(6, "FAILURE", 2);
    assert_eq!(numbers(&c, "rotated"), [6, 5, 2]);
    assert_eq!(dirs(), BTreeSet::from([2, 5, 6]));
    for (args, message) in [
        (&["keep-build", "rotated", "3"][..], "No such build #3"),
        (&["keep-build", "nope", "1"][..], "No such job 'nope'"),
    ] {
        let out = c.cli(args);
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {out:?}");
    }

    // Without the discarder nothing more goes; a bad limit is refused and changes nothing.
    let keep_all = Freestyle::shell(script).xml();
    let out = c.cli_with_stdin(&["update-job", "rotated"], &keep_all);
    assert_eq!(out.code, 0, "{out:?}");
    build(7, "FAILURE", 2);
    let bad = Freestyle::shell(script).discard_old(-5, -1).xml();
    let out = c.cli_with_stdin(&["update-job", "rotated"], &bad);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("<numToKeep>"), "{out:?}");
    build(8, "FAILURE", 2);
    assert_eq!(numbers(&c, "rotated"), [8, 7, 6, 5, 2]);
}

#[test]
fn progressive_text_reads_the_console_in_whole_lines_while_the_build_runs() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 1, "NORMAL");
    // The step leaves half a line in the console while it waits.
    let script = format!(
        "echo first-part\nset +x\nprintf half-\n{}{}echo second-part\n",
        gate.mark_script("started"),
        gate.wait_script("go")
    );
    c.create_job("p", &Freestyle::shell(&script));
    let auth = c.admin_basic_auth_header();
    let get = |query: &str| {
        http_request(
            &c.addr,
            "GET",
            &format!("/job/p/1/logText/progressiveText{query}"),
            &[&auth],
            b"",
        )
    };
    let size = |answer: &steward_tests::HttpResponse| -> u64 {
        answer
            .header("X-Text-Size")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no X-Text-Size: {}", answer.headers))
    };

    let running = c.cli_spawn(&["build", "p", "-s"]);
    wait_until(DEADLINE, "the half line in the console", || {
        gate.is_marked("started") && c.console("p", 1).ends_with("half-")
    });
    // The first piece: the whole lines so far, and more to come.
    let first = get("");
    assert_eq!(first.status, 200);
    assert!(
        first.text().ends_with("first-part\n+ set +x\n"),
        "{}",
        first.text()
    );
    assert_eq!(
        first.header("X-More-Data"),
        Some("true"),
        "{}",
        first.headers
    );
    assert_eq!(size(&first), first.body.len() as u64);
    let at = size(&first);
    let nothing_new = get(&format!("?start={at}"));
    assert_eq!(
        (
            nothing_new.body.len(),
            size(&nothing_new),
            nothing_new.header("X-More-Data")
        ),
        (0, at, Some("true"))
    );

    gate.open("go");
    assert_completed(&running.wait(DEADLINE), "p", 1, "SUCCESS", 0);
    let rest = get(&format!("?start={at}"));
    assert_eq!(rest.header("X-More-Data"), None, "{}", rest.headers);
    assert_eq!(size(&rest), at + rest.body.len() as u64);
    assert!(rest.text().starts_with("half-"), "{}", rest.text());
    assert!(
        rest.text().ends_with("second-part\nFinished: SUCCESS\n"),
        "{}",
        rest.text()
    );
    let whole = c.console("p", 1);
    assert_eq!(format!("{}{}", first.text(), rest.text()), whole);

    // Past the end starts again from the beginning, as Jenkins does for a cut log.
    assert_eq!(get("?start=99999999").text(), whole);
    let bad = get("?start=ten");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.text().contains("start must be a byte offset"),
        "{}",
        bad.text()
    );
    let missing = http_request(
        &c.addr,
        "GET",
        "/job/p/9/logText/progressiveText",
        &[&auth],
        b"",
    );
    assert_eq!(
        (missing.status, missing.text().contains("No such build #9")),
        (404, true)
    );
}

#[test]
fn quiet_down_holds_new_builds_while_running_ones_finish_until_cancelled() {
    let c = Controller::start();
    let gate = Gate::new();
    let _n = online_node(&c, "n1", "", 2, "NORMAL");
    let script = format!(
        "{}{}",
        gate.mark_script("started-$BUILD_NUMBER"),
        gate.wait_script("finish-$BUILD_NUMBER")
    );
    c.create_job("q", &Freestyle::shell(&script).concurrent());
    let auth = c.admin_basic_auth_header();
    let quieting = || {
        http_request(&c.addr, "GET", "/api/json", &[&auth], b"").json()["quietingDown"]
            .as_bool()
            .expect("quietingDown")
    };
    assert!(!quieting());

    let first = c.cli_spawn(&["build", "q", "-s"]);
    wait_until(DEADLINE, "build #1 started", || gate.is_marked("started-1"));
    let out = c.cli(&["quiet-down", "-reason", "upgrade to 2.1"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert!(quieting());
    let second = c.cli_spawn(&["build", "q", "-s"]);
    c.wait_queued("q", "Steward is about to shut down: upgrade to 2.1");

    // -block waits for the running build; with a timeout it gives up and says so. The
    // one without a timeout, started first, is still waiting when that one gives up.
    let mut blocking = c.cli_spawn(&["quiet-down", "-block"]);
    let timed = c.cli(&["quiet-down", "-block", "-timeout", "300"]);
    assert_eq!(timed.code, 0, "{timed:?}");
    assert!(
        timed.stderr.contains("1 build(s) still running"),
        "{timed:?}"
    );
    assert!(
        !blocking.has_exited(),
        "-block returned with a build running"
    );
    gate.open("finish-1");
    assert_completed(&first.wait(DEADLINE), "q", 1, "SUCCESS", 0);
    let out = blocking.wait(DEADLINE);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert!(
        !gate.is_marked("started-2"),
        "a build started while quieting down"
    );
    assert_eq!(c.queue().len(), 1);

    // Cancelled: the held build starts.
    let out = c.cli(&["cancel-quiet-down"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!quieting());
    wait_until(DEADLINE, "build #2 started", || gate.is_marked("started-2"));

    // A -block that the cancel cuts short says so.
    let blocking = c.cli_spawn(&["quiet-down", "-block"]);
    wait_until(DEADLINE, "quieting down again", quieting);
    let cancelled = http_request(&c.addr, "POST", "/cancelQuietDown", &[&auth], b"");
    assert_eq!(cancelled.status, 302, "{}", cancelled.text());
    let out = blocking.wait(DEADLINE);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            4,
            "\nERROR: Quiet-down was cancelled before the running builds ended\n"
        ),
        "{out:?}"
    );
    gate.open("finish-2");
    assert_completed(&second.wait(DEADLINE), "q", 2, "SUCCESS", 0);

    // The REST API (python-jenkins' quiet_down), blocking until no build runs, and bad
    // input.
    let down = http_request(
        &c.addr,
        "POST",
        "/quietDown?message=maint&block=true&timeout=-1",
        &[&auth],
        b"",
    );
    assert_eq!(down.status, 302, "{}", down.text());
    assert!(quieting());
    for query in ["block=yes", "timeout=soon"] {
        let bad = http_request(
            &c.addr,
            "POST",
            &format!("/quietDown?{query}"),
            &[&auth],
            b"",
        );
        assert_eq!(bad.status, 400, "{query}: {}", bad.text());
    }
    assert_eq!(
        http_request(&c.addr, "POST", "/cancelQuietDown", &[], b"").status,
        403
    );
    assert!(quieting());
    let bad = c.cli(&["quiet-down", "-timeout", "soon"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .contains("\"soon\" is not a valid value for \"-timeout\""),
        "{bad:?}"
    );
    let anonymous = c.cli_anonymous(&["cancel-quiet-down"]);
    assert_eq!(anonymous.code, 6, "{anonymous:?}");
    assert!(quieting());
}

#[test]
fn a_build_s_console_names_its_cause_as_soon_as_its_number_is_known() {
    // python-jenkins' get_build_console_output takes an empty console for a missing build.
    // Without the header written before the number is told, this fails only when the
    // runner's first write is slower than the client's next request (a loaded machine).
    let c = Controller::start();
    let _n = online_node(&c, "n1", "", 4, "NORMAL");
    c.create_job("quick", &Freestyle::shell("true").concurrent());
    let auth = c.admin_basic_auth_header();
    for number in 1..=10u64 {
        let out = c.cli(&["build", "quick", "-w"]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, format!("Started quick #{number}\n").as_str()),
            "{out:?}"
        );
        let console = http_request(
            &c.addr,
            "GET",
            &format!("/job/quick/{number}/consoleText"),
            &[&auth],
            b"",
        );
        assert!(
            console
                .text()
                .starts_with("Started from command line by admin\n"),
            "#{number}: {:?}",
            console.text()
        );
    }
}

#[test]
fn clear_queue_cancels_every_waiting_build_for_administrators_only() {
    let c = Controller::start();
    c.create_job("a", &Freestyle::shell("true").label("nowhere"));
    c.create_job("b", &Freestyle::shell("true").label("nowhere"));
    assert_eq!(c.cli(&["build", "a"]).code, 0);
    assert_eq!(c.cli(&["build", "b"]).code, 0);
    assert_eq!(c.cli(&["queue"]).stdout.lines().count(), 2);
    assert_eq!(c.cli(&["create-user", "carol"]).code, 0);
    assert_eq!(
        c.cli_with_stdin(&["set-password", "carol"], "carol-pass-1\n")
            .code,
        0
    );
    let refused = c.cli_as("carol", "carol-pass-1", &["clear-queue"], "");
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("carol is missing the Overall/Administer permission")
    );
    let out = c.cli(&["clear-queue"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(c.cli(&["queue"]).stdout, "");
}
