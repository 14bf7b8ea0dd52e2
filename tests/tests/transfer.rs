//! Large transfers through the CLI, controller and agent: a 1 GiB copy in each direction with
//! matching sha256, and a reader that stops reading without growing anyone's memory.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use steward_tests::{Controller, DEADLINE, command, rss_bytes, wait_until};

const GIB: u64 = 1024 * 1024 * 1024;
/// Block of the generated file; every block differs so misplaced data changes the hash.
const BLOCK: usize = 1024 * 1024;

/// A scratch directory in memory when the machine has one: the test is about the transfer,
/// not the disk.
fn scratch() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir()
        && let Ok(dir) = tempfile::tempdir_in("/dev/shm")
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

/// Writes `len` bytes of distinct blocks to `path`; returns their sha256.
fn generate(path: &Path, len: u64) -> String {
    let mut file = File::create(path).unwrap();
    let mut hash = Sha256::new();
    let mut block = vec![0u8; BLOCK];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(BLOCK as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        hash.update(&block[..n]);
        left -= n as u64;
    }
    hex(hash)
}

fn hash_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    hex(hash)
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `cli ARGS…` with stdin and stdout connected to files; its exit code and stderr.
fn cli_files(
    c: &Controller,
    args: &[&str],
    stdin: Option<&Path>,
    stdout: Option<&Path>,
) -> (i32, String) {
    let mut cmd = command("cli");
    cmd.args(["-s", &c.url, "-auth", &format!("admin:{}", c.token)])
        .args(args);
    cmd.stdin(stdin.map_or(Stdio::null(), |p| Stdio::from(File::open(p).unwrap())));
    cmd.stdout(stdout.map_or(Stdio::null(), |p| Stdio::from(File::create(p).unwrap())));
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_gib_copies_both_ways_with_matching_sha256() {
    let c = Controller::start();
    let _agent = c.connected_agent("bulk", "");
    let dir = scratch();
    let local: PathBuf = dir.path().join("local.bin");
    let remote: PathBuf = dir.path().join("remote.bin");
    let back: PathBuf = dir.path().join("back.bin");
    let expected = generate(&local, GIB);

    let (code, err) = cli_files(
        &c,
        &["copy-to-node", "bulk", remote.to_str().unwrap()],
        Some(&local),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::metadata(&remote).unwrap().len(), GIB);
    assert_eq!(hash_file(&remote), expected, "controller → agent");
    std::fs::remove_file(&local).unwrap();

    let (code, err) = cli_files(
        &c,
        &["copy-from-node", "bulk", remote.to_str().unwrap()],
        None,
        Some(&back),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(hash_file(&back), expected, "agent → controller");
}

#[test]
fn a_reader_that_stops_reading_does_not_grow_memory() {
    let c = Controller::start();
    let agent = c.connected_agent("slow", "");
    let dir = scratch();
    let remote = dir.path().join("big.bin");
    generate(&remote, 256 * 1024 * 1024);
    let baseline = rss_bytes(c.pid()) + rss_bytes(agent.pid);

    // The CLI's stdout is a pipe nobody reads: everything upstream must stop after its
    // windows and queues fill, not buffer the 256 MiB.
    let mut cli = command("cli")
        .args([
            "-s",
            &c.url,
            "-auth",
            &format!("admin:{}", c.token),
            "copy-from-node",
            "slow",
            remote.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_bytes(c.pid()) + rss_bytes(agent.pid));
        assert!(
            cli.try_wait().unwrap().is_none(),
            "the copy cannot finish with nobody reading"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "controller + agent RSS grew by {} KiB while the reader was stopped",
        growth / 1024
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "memory grew by {growth} bytes for a stopped reader"
    );

    // Reading again lets the copy finish.
    let mut stdout = cli.stdout.take().unwrap();
    let mut received = 0u64;
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    assert_eq!(received, 256 * 1024 * 1024);
    let mut code = None;
    wait_until(DEADLINE, "cli exits", || {
        code = cli.try_wait().unwrap().and_then(|s| s.code());
        code.is_some()
    });
    assert_eq!(code, Some(0));
}
