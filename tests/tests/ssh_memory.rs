//! The controller's memory under SSH sessions stays flat: an idle session costs nothing as
//! it sits, and a client that stops reading a session that writes without end makes the
//! agent wait, not the controller buffer.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use steward_tests::ssh::{Proxy, shown};
use steward_tests::{DEADLINE, rss_bytes, wait_until};

const NODE: &str = "n1";
/// How long each phase is watched: long enough for a leak of a window per second to show.
const WATCH: Duration = Duration::from_secs(6);
/// What the controller may grow by over a phase: allocator noise and a few buffers, far
/// below what a session's output (hundreds of MB a second) would add if it were held.
const SLACK: u64 = 16 << 20;

/// The largest RSS seen while sampling for `WATCH`.
fn peak_rss(pid: u32) -> u64 {
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < WATCH {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

#[test]
fn controller_memory_stays_flat_with_an_idle_session_and_a_client_that_stops_reading() {
    let (c, _agent, _work, user) = steward_tests::ssh::node_and_user(NODE, 1);
    let pid = c.pid();

    // An idle session.
    let mut idle = user
        .command("ssh", &c, Proxy::Cli, "/computer/n1/ssh", NODE)
        .arg("tester@steward")
        .arg("echo ready; exec sleep 600")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    idle.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    let base = rss_bytes(pid);
    let idle_peak = peak_rss(pid);
    assert!(
        idle_peak <= base + SLACK,
        "an idle session grew the controller from {base} to {idle_peak} bytes"
    );

    // A session writing without end to a client that reads a little, then nothing.
    let mut flood = user
        .command("ssh", &c, Proxy::Cli, "/computer/n1/ssh", NODE)
        .arg("tester@steward")
        .arg("exec yes steward")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut some = vec![0u8; 1 << 20];
    if let Err(e) = flood.stdout.as_mut().unwrap().read_exact(&mut some) {
        let _ = flood.kill();
        let out = flood.wait_with_output().unwrap();
        panic!("the flooding session ended early ({e}): {}", shown(&out));
    }
    // Reading stopped: once the pipes and windows between are full, the flow stops. Wait
    // until the controller's CPU time no longer moves (nothing flows through it).
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
    };
    let mut last = cpu();
    wait_until(
        DEADLINE,
        "the stalled flow to stop using the controller's CPU",
        || {
            std::thread::sleep(Duration::from_millis(500));
            let now = cpu();
            let still = now.saturating_sub(last) <= 1;
            last = now;
            still
        },
    );
    let stalled = rss_bytes(pid);
    let stalled_peak = peak_rss(pid);
    assert!(
        stalled_peak <= stalled + SLACK && stalled <= base + 4 * SLACK,
        "a client that stopped reading grew the controller: {base} idle, {stalled} stalled, {stalled_peak} after"
    );
    for mut child in [idle, flood] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
