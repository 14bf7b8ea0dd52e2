//! The controller's home on a full disk (a 30 MiB tmpfs): a build whose console fills it
//! ends FAILURE in its record as the client is told, with the reason in its console, and a
//! restart does not change that; builds can still be deleted to make room; queued builds
//! wait saying why and start once space is back. Each test needs root to mount its tmpfs
//! and says so when it cannot.

use steward_tests::tmpfs::Tmpfs;
use steward_tests::{Agent, Controller, DEADLINE, Freestyle, Gate, wait_until};

/// The home's file system, in MiB: room for the database, the reserved space and a few
/// consoles.
const HOME_MIB: u32 = 30;
const NODE: &str = "n1";
/// A step that prints 60 MB, twice the disk.
const FLOOD: &str = "set +x\nhead -c 60000000 /dev/zero | tr '\\0' x | fold -w 100\necho done\n";

struct Setup {
    // Dropped in this order: the processes before the file system they write to.
    c: Controller,
    agent: Agent,
    work: tempfile::TempDir,
    disk: Tmpfs,
}

/// A controller whose home is on a small tmpfs, with an agent (its work dir elsewhere).
fn setup() -> Option<Setup> {
    let disk = Tmpfs::mount(HOME_MIB)?;
    let c = Controller::start_in(disk.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    c.create_node_with(NODE, "", 2, "NORMAL");
    let agent = c.start_agent_in(NODE, work.path());
    Some(Setup {
        c,
        agent,
        work,
        disk,
    })
}

fn result_of(c: &Controller, job: &str, number: u64) -> String {
    c.list_builds(job)
        .into_iter()
        .find(|b| b.number == number)
        .map(|b| b.result)
        .unwrap_or_else(|| panic!("no build #{number} of {job}"))
}

/// The last lines of a build's console.
fn console_end(c: &Controller, job: &str, number: u64) -> String {
    let out = c.cli(&["console", job, &number.to_string(), "-n", "4"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

/// Runs `job` with `build -s`, which must end FAILURE because the disk filled.
fn build_filling_the_disk(c: &Controller, job: &str, number: u64) {
    let out = c.cli(&["build", job, "-s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            2,
            format!("Started {job} #{number}\nCompleted {job} #{number} : FAILURE\n").as_str()
        ),
        "{out:?}"
    );
}

#[test]
fn a_console_that_fills_the_disk_ends_its_build_failure_in_the_record_too_and_a_restart_keeps_it() {
    let Some(mut s) = setup() else { return };
    s.c.create_job("flood", &Freestyle::shell(FLOOD));
    build_filling_the_disk(&s.c, "flood", 1);

    // The record says what the client was told, at once.
    assert_eq!(result_of(&s.c, "flood", 1), "FAILURE");
    // The console says why, and ends like any other.
    let end = console_end(&s.c, "flood", 1);
    assert!(
        end.contains("ERROR: the controller's disk is full (")
            && end.ends_with("Finished: FAILURE\n"),
        "{end}"
    );
    assert!(!end.contains("\ndone\n"), "the step was stopped: {end}");

    // A restart, with the disk as full as ever, changes nothing.
    s.c.kill_and_restart();
    wait_until(DEADLINE, "the agent is back", || s.c.is_online(NODE));
    assert_eq!(result_of(&s.c, "flood", 1), "FAILURE");
    let again = console_end(&s.c, "flood", 1);
    assert_eq!(again, end);
}

#[test]
fn delete_builds_works_on_a_full_disk_and_frees_it() {
    let Some(s) = setup() else { return };
    s.c.create_job("flood", &Freestyle::shell(FLOOD));
    build_filling_the_disk(&s.c, "flood", 1);
    // Something else takes what the controller gave back: the disk is full to the byte.
    let filler = s.disk.fill("filler");
    assert_eq!(s.disk.free_bytes(), 0);

    let out = s.c.cli(&["delete-builds", "flood", "1"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Deleted 1 builds\n"),
        "{out:?}"
    );
    assert!(s.c.list_builds("flood").is_empty());
    // The console's space is free again.
    assert!(s.disk.free_bytes() > 10 << 20, "{}", s.disk.free_bytes());
    std::fs::remove_file(filler).unwrap();
    // And the controller writes again.
    let out =
        s.c.cli_with_stdin(&["create-job", "after"], &Freestyle::shell("echo ok").xml());
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_build_queued_on_a_full_disk_waits_saying_why_and_starts_once_space_is_freed() {
    let Some(mut s) = setup() else { return };
    s.c.create_job("small", &Freestyle::shell("echo small"));
    // Queued while no node can take it.
    s.agent.kill();
    s.c.wait_online(NODE, false, DEADLINE);
    let out = s.c.cli(&["build", "small"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Then the disk fills up, and the node comes back: the build cannot be recorded.
    let filler = s.disk.fill("filler");
    s.agent = s.c.start_agent_in(NODE, s.work.path());

    let line = s.c.wait_queued_matching("small", |reason| {
        reason.starts_with("The controller's disk is full (")
            && reason.ends_with("); builds start once space is freed")
    });
    assert!(line.reason.contains(" free in "), "{line:?}");
    assert!(s.c.list_builds("small").is_empty());

    std::fs::remove_file(filler).unwrap();
    wait_until(DEADLINE, "the queued build starts and ends", || {
        s.c.list_builds("small")
            .first()
            .is_some_and(|b| b.result == "SUCCESS")
    });
    assert!(s.c.queue().is_empty());
}

#[test]
fn a_build_printing_once_the_disk_is_full_ends_failure_for_its_client_and_record_alike() {
    let Some(s) = setup() else { return };
    let gate = Gate::new();
    let script = format!(
        "{}{}echo after the disk filled\n",
        gate.mark_script("running"),
        gate.wait_script("go")
    );
    s.c.create_job("late", &Freestyle::shell(&script));
    s.c.create_job("flood", &Freestyle::shell(FLOOD));
    let late = s.c.cli_spawn(&["build", "late", "-s"]);
    wait_until(DEADLINE, "the quiet build runs", || {
        gate.is_marked("running")
    });
    build_filling_the_disk(&s.c, "flood", 1);
    // Whatever the controller kept back goes too.
    let filler = s.disk.fill("filler");

    // The quiet build prints: nothing of it can be kept.
    gate.open("go");
    // Room comes back while (or after) it ends; either way client and record agree.
    wait_until(DEADLINE, "the build's output is refused", || {
        s.c.log.contains("cannot write the console job=\"late\"")
            || s.c.log.contains("writing a build's console")
                && s.c.log.text().contains("job=\"late\"")
    });
    std::fs::remove_file(filler).unwrap();
    let out = late.wait(DEADLINE * 3);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "Started late #1\nCompleted late #1 : FAILURE\n"),
        "{out:?}"
    );
    assert_eq!(result_of(&s.c, "late", 1), "FAILURE");
    let mut end = String::new();
    wait_until(DEADLINE, "the console's end is written", || {
        end = console_end(&s.c, "late", 1);
        end.ends_with("Finished: FAILURE\n")
    });
    assert!(
        end.contains("ERROR: the controller's disk is full ("),
        "{end}"
    );
    assert!(!end.contains("after the disk filled\n"), "{end}");
}
