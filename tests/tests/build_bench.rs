//! The build benchmark end to end at small numbers (`--quick`): builds dispatched one at a
//! time, a console of 20 MB followed by `console -f`, and 20 queued builds over two agents
//! all end as they should. Its figures are benchmarks (docs/benchmarks.md), not tests: only
//! the checks it makes are asserted here.

use std::process::Stdio;

use steward_tests::command;

#[test]
fn build_bench_quick_run_checks_out() {
    let output = command("build-bench")
        .args(["--quick", "--timeout-secs", "600"])
        .args(["--only", "dispatch,console,flood,archive,trigger,junit"])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("running build-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "2 agents x 2 executors online",
        "build -s, in-process client, request -> step's `date`:",
        "target: p50 <= 20 ms",
        "payload 200000 lines of 100 bytes in one piece: verified",
        "bytes (the stored console, byte for byte)",
        "20 builds listed, 20 SUCCESS, 0 other; queue empty",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
}
