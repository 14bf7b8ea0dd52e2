//! `build-bench`: freestyle builds on the real binaries, measured. It starts the `controller`
//! (127.0.0.1:0, a temporary home) and one `agent` per node, then runs three scenarios and
//! prints their figures (it asserts nothing but the builds' correctness):
//!
//! 1. [`dispatch`]: from the `build` request to the step's first command on an idle agent,
//!    against `exec-on-node` and the `cli` binary's own start-up;
//! 2. [`console`]: a build printing 200 MB, into the stored console and to `console -f`,
//!    against the same output written locally;
//! 3. [`flood`]: 1,000 queued one-second builds over 10 agents × 4 executors, against
//!    the ideal 25 s.
//!
//! [`rig`] starts and stops the processes; [`client`] is the in-process CLI client.
//! How to run it and the figures of record: docs/benchmarks.md, "Builds (build-bench)".

mod client;
mod console;
mod dispatch;
mod flood;
mod rig;
mod stats;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "build-bench",
    version,
    about = "Dispatch latency, console throughput and a queue of short builds on the real binaries"
)]
struct Options {
    /// Agents (nodes labelled `pool`), each its own `agent` process.
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Executors per agent.
    #[arg(long, default_value_t = 4)]
    executors: u32,
    /// Scenario 1: builds measured one at a time (and as many `exec-on-node` baselines).
    #[arg(long, default_value_t = 100)]
    dispatch_builds: usize,
    /// Scenario 1: `who-am-i` runs and builds through the `cli` binary.
    #[arg(long, default_value_t = 20)]
    cli_runs: usize,
    /// Scenario 1: pause after each build, ms, so the next finds the agent idle.
    #[arg(long, default_value_t = 100)]
    dispatch_gap_ms: u64,
    /// Scenario 2: MB (10^6 bytes) the build prints.
    #[arg(long, default_value_t = 200)]
    console_mb: u64,
    /// Scenario 3: builds queued.
    #[arg(long, default_value_t = 1000)]
    builds: usize,
    /// Scenario 3: seconds each build sleeps.
    #[arg(long, default_value_t = 1)]
    build_secs: u32,
    /// Runs of scenarios 2 and 3 (scenario 1 has --dispatch-builds).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Small numbers for a smoke run: 2 agents x 2 executors, 10 dispatches, 20 MB, 20 builds.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [Scenario::Dispatch, Scenario::Console, Scenario::Flood])]
    only: Vec<Scenario>,
    /// Keep the temporary directory (home, work dirs, logs) for inspection.
    #[arg(long)]
    keep: bool,
    /// Give up, stopping everything, after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Dispatch,
    Console,
    Flood,
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Scenario::Dispatch => "dispatch",
            Scenario::Console => "console",
            Scenario::Flood => "flood",
        };
        f.write_str(name)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    steward_transport::install_crypto_provider();
    let mut options = Options::parse();
    if options.quick {
        options.agents = 2;
        options.executors = 2;
        options.dispatch_builds = 10;
        options.cli_runs = 3;
        options.console_mb = 20;
        options.builds = 20;
    }
    anyhow::ensure!(options.agents >= 1, "--agents must be at least 1");
    anyhow::ensure!(options.repeat >= 1, "--repeat must be at least 1");
    let limit = Duration::from_secs(options.timeout_secs);
    // Run from a worker thread, as the controller's own tasks do.
    let mut work = tokio::spawn(async move {
        tokio::time::timeout(limit, run(options))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("gave up after {limit:?} (--timeout-secs)")))
    });
    tokio::select! {
        joined = &mut work => joined.context("the benchmark task failed")?,
        _ = tokio::signal::ctrl_c() => {
            // Aborting drops the rig: children are killed, the temporary directory removed.
            work.abort();
            let _ = work.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    println!(
        "build-bench {} at {}; {}; load average {}",
        env!("CARGO_PKG_VERSION"),
        stats::utc_now(),
        stats::machine(),
        stats::loadavg()
    );
    let layout = rig::Layout {
        agents: options.agents,
        executors: options.executors,
        keep: options.keep,
    };
    let rig = rig::Rig::start(&layout).await?;
    println!(
        "controller pid {} at {}; {} agents x {} executors online",
        rig.controller.pid, rig.url, options.agents, options.executors
    );
    let outcome = async {
        if options.only.contains(&Scenario::Dispatch) {
            let plan = dispatch::Plan {
                builds: options.dispatch_builds,
                cli_runs: options.cli_runs,
                gap: Duration::from_millis(options.dispatch_gap_ms),
            };
            dispatch::run(&rig, &plan).await?;
        }
        if options.only.contains(&Scenario::Console) {
            let plan = console::Plan {
                bytes: options.console_mb * 1_000_000,
                repeat: options.repeat,
            };
            console::run(&rig, &plan).await?;
        }
        if options.only.contains(&Scenario::Flood) {
            let plan = flood::Plan {
                builds: options.builds,
                secs: options.build_secs,
                repeat: options.repeat,
            };
            flood::run(&rig, &plan, options.executors).await?;
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    rig.stop().await;
    println!("load average at the end: {}", stats::loadavg());
    outcome
}
