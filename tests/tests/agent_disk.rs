//! An agent whose work dir fills up, end to end through the real binaries: the build that
//! filled it names the lack of space (not a SIGKILL), the node goes offline with the
//! disk-space reason and the fresh free figure in `list-nodes`, `node-info` and the REST
//! API, later builds wait in the queue, and the node comes back by itself once the space is
//! freed. Also a node's own threshold from its XML (`DiskSpaceMonitorNodeProperty`), and
//! the refusal of one that does not parse.
//!
//! The full disk is a small tmpfs mounted for the agent's work dir, which needs root: the
//! test that fills it says why it skips otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use steward_tests::{Controller, DEADLINE, Freestyle, http_request, wait_until};

/// The tmpfs's size: small enough to fill in a moment, and 1% of it (the default threshold
/// of a disk under 100 GiB) is 204.8 KiB.
const TMPFS_SIZE: &str = "20m";
/// The default threshold on it, as the node's offline reason writes it.
const TMPFS_THRESHOLD: &str = "204.8 KiB";
/// How often a node low on space is looked at again (`monitors::LOW_SPACE_INTERVAL`).
const LOW_SPACE_INTERVAL: Duration = Duration::from_secs(15);

/// A tmpfs mounted on a temporary directory; unmounted when dropped (lazily if something
/// still holds it).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size`; `None`, with the reason printed, when this process may not.
    fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "SKIPPED: mounting a tmpfs to fill an agent's work dir needs root; \
                 run the test as root (the CI does)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs although root (a container without \
                 CAP_SYS_ADMIN?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Creates `name` with one executor and the node properties `properties` (XML).
fn create_node(c: &Controller, name: &str, properties: &str) -> steward_tests::CliOutput {
    let xml = format!(
        "<slave><name>{name}</name><remoteFS></remoteFS><numExecutors>1</numExecutors>\
         <mode>NORMAL</mode><launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true\
         </webSocket></launcher><label></label><nodeProperties>{properties}</nodeProperties>\
         </slave>"
    );
    c.cli_with_stdin(&["create-node"], &xml)
}

/// The disk-space node property with `threshold`.
fn disk_property(threshold: &str) -> String {
    format!(
        "<hudson.node__monitors.DiskSpaceMonitorNodeProperty><freeDiskSpaceThreshold>\
         {threshold}</freeDiskSpaceThreshold><freeTempSpaceThreshold>1GiB\
         </freeTempSpaceThreshold></hudson.node__monitors.DiskSpaceMonitorNodeProperty>"
    )
}

/// `GET /computer/NAME/api/json` as admin.
fn computer_json(c: &Controller, name: &str) -> serde_json::Value {
    let auth = c.admin_basic_auth_header();
    let answer = http_request(
        &c.addr,
        "GET",
        &format!("/computer/{name}/api/json"),
        &[&auth],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[test]
fn a_full_work_dir_is_named_takes_the_node_offline_and_space_freed_brings_it_back() {
    let Some(disk) = Tmpfs::mount(TMPFS_SIZE) else {
        return;
    };
    let work = disk.path().to_path_buf();
    let c = Controller::start();
    let out = create_node(&c, "c2", "");
    assert_eq!(out.code, 0, "{out:?}");
    let _agent = c.start_agent_in("c2", &work);
    // Twice the disk: `head` fails with ENOSPC, and then the step's wrapper cannot write
    // its result either.
    c.create_job(
        "fill",
        &Freestyle::shell("head -c 41943040 /dev/zero > big").label("c2"),
    );
    c.create_job("after", &Freestyle::shell("echo space is back").label("c2"));

    // The build that fills the disk says so.
    let out = c.cli(&["build", "fill", "-s"]);
    assert_eq!(
        out.stdout, "Started fill #1\nCompleted fill #1 : FAILURE\n",
        "{out:?}"
    );
    let console = c.console("fill", 1);
    let cause = format!(
        "ERROR: the step's process on c2 ended without an exit status: the agent's work dir \
         ({}) has only ",
        work.display()
    );
    assert!(console.contains(&cause), "{console}");
    assert!(
        console.contains(&format!(
            "free, too little to write the step's log or result. c2 takes no new builds \
             until it has {TMPFS_THRESHOLD} free.\n"
        )),
        "{console}"
    );
    assert!(!console.contains("SIGKILL"), "{console}");

    // The node is offline for it, with the free space measured after the failure (not the
    // 20 MiB of the sample taken when the agent connected).
    let node = c.node_json("c2");
    assert_eq!(node["online"], false, "{node}");
    assert_eq!(node["connected"], true, "{node}");
    let free = node["freeDiskBytes"].as_u64().expect("a free-disk figure");
    assert!(free < 204 * 1024, "{node}");
    assert_eq!(node["freeDiskThresholdBytes"], 209_715, "{node}");
    assert_eq!(node["diskTotalBytes"], 20 << 20, "{node}");
    let reason = node["offlineReason"].as_str().expect("a reason").to_owned();
    assert!(
        reason.starts_with("Disk space is too low. Only ")
            && reason.ends_with(&format!(
                " free in {} (threshold {TMPFS_THRESHOLD})",
                work.display()
            )),
        "{reason}"
    );
    // (The figure may have moved since: the node is looked at often while low.)
    let table = c.cli(&["list-nodes"]).stdout;
    assert!(
        table.contains("c2    offline (Disk space is too low. Only ")
            && table.contains(&format!("(threshold {TMPFS_THRESHOLD}))")),
        "{table}"
    );
    let info = c.cli(&["node-info", "c2"]);
    assert_eq!(info.code, 0, "{info:?}");
    assert!(
        info.stdout
            .contains("state:         offline (Disk space is too low. Only "),
        "{}",
        info.stdout
    );
    assert!(
        info.stdout
            .contains(&format!(" of 20.0 MiB (threshold {TMPFS_THRESHOLD})\n")),
        "{}",
        info.stdout
    );
    let computer = computer_json(&c, "c2");
    assert_eq!(computer["offline"], true, "{computer}");
    assert_eq!(computer["temporarilyOffline"], false, "{computer}");
    assert_eq!(
        computer["offlineCause"]["_class"],
        "hudson.node_monitors.DiskSpaceMonitorDescriptor$DiskSpace",
        "{computer}"
    );
    assert!(
        computer["offlineCauseReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Disk space is too low. Only ")),
        "{computer}"
    );

    // Later builds wait rather than fail one after another.
    let out = c.cli(&["build", "after"]);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_queued("after", "All nodes of label ‘c2’ are offline");
    assert!(c.list_builds("after").is_empty());

    // Freeing the space brings the node back by itself, and the waiting build runs.
    std::fs::remove_file(work.join("workspace/fill/big")).expect("removing the big file");
    wait_until(
        LOW_SPACE_INTERVAL + DEADLINE,
        "c2 back online once space is freed",
        || c.is_online("c2"),
    );
    let node = c.node_json("c2");
    assert!(node["freeDiskBytes"].as_u64().unwrap() > 19 << 20, "{node}");
    wait_until(DEADLINE, "the waiting build ends", || {
        c.list_builds("after")
            .first()
            .is_some_and(|b| b.result != "RUNNING")
    });
    let builds = c.list_builds("after");
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].result, "SUCCESS", "{builds:?}");
    assert!(c.console("after", 1).contains("space is back\n"));
}

#[test]
fn a_nodes_own_threshold_comes_from_its_xml_and_a_bad_one_is_refused() {
    let c = Controller::start();

    let out = create_node(&c, "odd", &disk_property("lots"));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains(
            "Invalid node XML: invalid value \"lots\" in <freeDiskSpaceThreshold>: expected \
             a size such as 1GiB, 500MiB, 1.5GB or 2048 (bytes)"
        ),
        "{out:?}"
    );
    assert_eq!(c.cli(&["get-node", "odd"]).code, 3, "nothing is stored");

    // More than any disk the test runs on: offline as soon as the first sample is in.
    let out = create_node(&c, "big", &disk_property("16384TiB"));
    assert_eq!(out.code, 0, "{out:?}");
    let work = tempfile::tempdir().unwrap();
    let work_dir: PathBuf = work.path().to_path_buf();
    let _agent = c.agent("big", &["-workDir", work_dir.to_str().unwrap()]);
    let mut node = serde_json::Value::Null;
    wait_until(DEADLINE, "big offline for its disk space", || {
        node = c.node_json("big");
        node["connected"] == true && node["offlineReason"].as_str().is_some()
    });
    assert_eq!(node["online"], false, "{node}");
    let reason = node["offlineReason"].as_str().unwrap();
    assert!(
        reason.starts_with("Disk space is too low. Only ")
            && reason.ends_with(&format!(
                " free in {} (threshold 16.0 PiB)",
                work_dir.display()
            )),
        "{node}"
    );
    assert_eq!(node["freeDiskThresholdBytes"], 1u64 << 54, "{node}");

    // A lower threshold takes effect at once, without waiting for a sample.
    let lower = format!(
        "<slave><name>big</name><numExecutors>1</numExecutors><launcher \
         class=\"hudson.slaves.JNLPLauncher\"/><nodeProperties>{}</nodeProperties></slave>",
        disk_property("1KiB")
    );
    let out = c.cli_with_stdin(&["update-node", "big"], &lower);
    assert_eq!(out.code, 0, "{out:?}");
    c.wait_online("big", true, DEADLINE);

    // An unparsable one changes nothing.
    let out = c.cli_with_stdin(&["update-node", "big"], &lower.replace("1KiB", "1.5.GB"));
    assert_eq!(out.code, 3, "{out:?}");
    let stored = c.cli(&["get-node", "big"]).stdout;
    assert!(
        stored.contains("<freeDiskSpaceThreshold>1KiB</freeDiskSpaceThreshold>"),
        "{stored}"
    );
    assert!(c.is_online("big"));
}
