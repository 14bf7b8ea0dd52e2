//! `build-bench`: freestyle builds on the real binaries, measured. It starts the `controller`
//! (127.0.0.1:0, a temporary home) and one `agent` per node, then runs three scenarios and
//! prints their figures (it asserts nothing but the builds' correctness):
//!
//! 1. [`dispatch`]: from the `build` request to the step's first command on an idle agent,
//!    against `exec-on-node` and the `cli` binary's own start-up;
//! 2. [`console`]: a build printing 200 MB, into the stored console and to `console -f`,
//!    against the same output written locally;
//! 3. [`flood`]: 1,000 queued one-second builds over 10 agents × 4 executors, against
//!    the ideal 25 s;
//! 4. [`terminals`] (only with `--only terminals`): 1,000 terminals and their memory and idle
//!    CPU, keystroke echo with 50 clients on one terminal, a 1 GB flood into a recording.
//!
//! And, only when named with `--only`:
//!
//! 5. [`archive`]: a build archiving 1 GiB of artifacts, against `copy-from-node` of the
//!    same files;
//! 6. [`trigger`]: a signed GitHub push delivery until the build's first step, against
//!    `git ls-remote` (what the controller's poll runs);
//! 7. [`junit`]: reading a 50 MB JUnit report (time and peak RSS, in a child process)
//!    against reading the file alone, and once end to end through a build.
//!
//! [`rig`] starts and stops the processes; [`client`] is the in-process CLI client.
//! How to run it and the figures of record: docs/benchmarks.md, "Builds (build-bench)",
//! "Terminals" and "Jobs: artifacts, triggers, test reports".

mod archive;
mod client;
mod console;
mod dispatch;
mod flood;
mod junit;
mod rig;
mod stats;
mod terminals;
mod trigger;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "build-bench",
    version,
    about = "Dispatch latency, console throughput, a queue of short builds, terminals, artifacts, triggers and test reports on the real binaries"
)]
struct Options {
    /// Agents (nodes labelled `pool`), each its own `agent` process [default: 10; quick: 2].
    #[arg(long)]
    agents: Option<usize>,
    /// Executors per agent [default: 4; quick: 2].
    #[arg(long)]
    executors: Option<u32>,
    /// Scenario 1: builds measured one at a time, and as many `exec-on-node` baselines
    /// [default: 100; quick: 10].
    #[arg(long)]
    dispatch_builds: Option<usize>,
    /// Scenario 1: `who-am-i` runs and builds through the `cli` binary [default: 20; quick: 3].
    #[arg(long)]
    cli_runs: Option<usize>,
    /// Scenario 1: pause after each build, ms, so the next finds the agent idle.
    #[arg(long, default_value_t = 100)]
    dispatch_gap_ms: u64,
    /// Scenario 2: MB (10^6 bytes) the build prints [default: 200; quick: 20].
    #[arg(long)]
    console_mb: Option<u64>,
    /// Scenario 3: builds queued [default: 1000; quick: 20].
    #[arg(long)]
    builds: Option<usize>,
    /// Scenario 3: seconds each build sleeps.
    #[arg(long, default_value_t = 1)]
    build_secs: u32,
    /// Scenario 3, for analysis: the builds read the clock before and after sleeping, and
    /// each build's time is split into dispatch, sleep and noticing the end.
    #[arg(long)]
    stamps: bool,
    /// Runs of scenarios 2, 3 and 5 (scenario 1 has --dispatch-builds).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Small numbers for a smoke run of a few seconds (options given explicitly still count).
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [Scenario::Dispatch, Scenario::Console, Scenario::Flood])]
    only: Vec<Scenario>,
    /// Terminals: how many for the memory and idle-CPU figures [default: 1000; quick: 20].
    #[arg(long)]
    terminals: Option<usize>,
    /// Terminals: clients on the echo terminal [default: 50; quick: 5].
    #[arg(long)]
    echo_clients: Option<usize>,
    /// Terminals: keystrokes timed [default: 500; quick: 50].
    #[arg(long)]
    keystrokes: Option<usize>,
    /// Terminals: MB (10^6 bytes) of the flood [default: 1000; quick: 50].
    #[arg(long)]
    flood_mb: Option<u64>,
    /// Terminals: clients on the flooded terminal [default: 10; quick: 3].
    #[arg(long)]
    flood_clients: Option<usize>,
    /// Terminals: seconds the idle CPU is measured over [default: 30; quick: 3].
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Archive: MiB the build's step leaves in its workspace [default: 1024; quick: 64].
    #[arg(long)]
    archive_mib: Option<u64>,
    /// Archive: files the MiB are split into.
    #[arg(long, default_value_t = 4)]
    archive_files: u64,
    /// Trigger: measured rounds (push, delivery, build) [default: 20; quick: 3].
    #[arg(long)]
    trigger_rounds: Option<usize>,
    /// JUnit: test cases in the generated report, about 1 KB each [default: 50000; quick: 2000].
    #[arg(long)]
    junit_cases: Option<usize>,
    /// JUnit: runs of each reading [default: 3; quick: 1].
    #[arg(long)]
    junit_runs: Option<usize>,
    /// Internal: read the report at --junit-file in this process (`read`, `events` or
    /// `parse`) and print the figures; the JUnit scenario runs this binary so.
    #[arg(long, hide = true)]
    junit_child: Option<String>,
    /// Internal: the report `--junit-child` reads.
    #[arg(long, hide = true)]
    junit_file: Option<PathBuf>,
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
    Terminals,
    Archive,
    Trigger,
    Junit,
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Scenario::Dispatch => "dispatch",
            Scenario::Console => "console",
            Scenario::Flood => "flood",
            Scenario::Terminals => "terminals",
            Scenario::Archive => "archive",
            Scenario::Trigger => "trigger",
            Scenario::Junit => "junit",
        };
        f.write_str(name)
    }
}

impl Options {
    /// The numbers to run with: those given, else `--quick`'s or the full run's.
    fn settings(self) -> anyhow::Result<Settings> {
        let quick = self.quick;
        let pick = |given: Option<usize>, full: usize, small: usize| {
            given.unwrap_or(if quick { small } else { full })
        };
        let settings = Settings {
            agents: pick(self.agents, 10, 2),
            executors: self.executors.unwrap_or(if quick { 2 } else { 4 }),
            dispatch_builds: pick(self.dispatch_builds, 100, 10),
            cli_runs: pick(self.cli_runs, 20, 3),
            dispatch_gap: Duration::from_millis(self.dispatch_gap_ms),
            console_bytes: self.console_mb.unwrap_or(if quick { 20 } else { 200 }) * 1_000_000,
            builds: pick(self.builds, 1000, 20),
            build_secs: self.build_secs,
            stamps: self.stamps,
            repeat: self.repeat,
            terminals: terminals::Plan {
                terminals: pick(self.terminals, 1000, 20),
                echo_clients: pick(self.echo_clients, 50, 5),
                keystrokes: pick(self.keystrokes, 500, 50),
                flood_bytes: self.flood_mb.unwrap_or(if quick { 50 } else { 1000 }) * 1_000_000,
                flood_clients: pick(self.flood_clients, 10, 3),
                idle_window: Duration::from_secs(self.idle_secs.unwrap_or(if quick {
                    3
                } else {
                    30
                })),
            },
            archive: archive::Plan {
                bytes: self.archive_mib.unwrap_or(if quick { 64 } else { 1024 }) << 20,
                files: self.archive_files,
                repeat: self.repeat,
            },
            trigger_rounds: pick(self.trigger_rounds, 20, 3),
            junit: junit::Plan {
                cases: pick(self.junit_cases, 50_000, 2_000),
                runs: pick(self.junit_runs, 3, 1),
            },
            only: self.only,
            keep: self.keep,
        };
        anyhow::ensure!(settings.agents >= 1, "--agents must be at least 1");
        anyhow::ensure!(settings.executors >= 1, "--executors must be at least 1");
        anyhow::ensure!(settings.repeat >= 1, "--repeat must be at least 1");
        anyhow::ensure!(settings.junit.runs >= 1, "--junit-runs must be at least 1");
        anyhow::ensure!(
            settings.junit.cases >= 1,
            "--junit-cases must be at least 1"
        );
        Ok(settings)
    }
}

/// The options with the defaults (or `--quick`'s) filled in.
struct Settings {
    agents: usize,
    executors: u32,
    dispatch_builds: usize,
    cli_runs: usize,
    dispatch_gap: Duration,
    console_bytes: u64,
    builds: usize,
    build_secs: u32,
    stamps: bool,
    repeat: usize,
    terminals: terminals::Plan,
    archive: archive::Plan,
    trigger_rounds: usize,
    junit: junit::Plan,
    only: Vec<Scenario>,
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if let Some(mode) = &options.junit_child {
        // A child of the JUnit scenario: no runtime, so its peak RSS is the reading's.
        let path = options
            .junit_file
            .as_deref()
            .context("--junit-child needs --junit-file")?;
        return junit::child(mode, path);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(start(options))
}

async fn start(options: Options) -> anyhow::Result<()> {
    steward_transport::install_crypto_provider();
    let limit = Duration::from_secs(options.timeout_secs);
    let settings = options.settings()?;
    // Run from a worker thread, as the controller's own tasks do.
    let mut work = tokio::spawn(async move {
        tokio::time::timeout(limit, run(settings))
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

async fn run(options: Settings) -> anyhow::Result<()> {
    println!(
        "build-bench {} at {}; {}; load average {}",
        env!("CARGO_PKG_VERSION"),
        stats::utc_now(),
        stats::machine(),
        stats::loadavg()
    );
    // The trigger scenario's webhook secret, in a file the controller reads at its start.
    let webhook = if options.only.contains(&Scenario::Trigger) {
        Some(trigger::secret_file()?)
    } else {
        None
    };
    let mut controller_args = Vec::new();
    if let Some((file, _)) = &webhook {
        controller_args.push("--github-webhook-secret-file".into());
        controller_args.push(file.path().into());
    }
    let layout = rig::Layout {
        agents: options.agents,
        executors: options.executors,
        keep: options.keep,
        controller_args,
    };
    let rig = rig::Rig::start(&layout).await?;
    let agent_pids: Vec<String> = rig.agents.iter().map(|a| a.proc.pid.to_string()).collect();
    println!(
        "controller pid {} at {}; {} agents x {} executors online (agent pids {})",
        rig.controller.pid,
        rig.url,
        options.agents,
        options.executors,
        agent_pids.join(" ")
    );
    let outcome = async {
        if options.only.contains(&Scenario::Dispatch) {
            let plan = dispatch::Plan {
                builds: options.dispatch_builds,
                cli_runs: options.cli_runs,
                gap: options.dispatch_gap,
            };
            dispatch::run(&rig, &plan).await?;
        }
        if options.only.contains(&Scenario::Console) {
            let plan = console::Plan {
                bytes: options.console_bytes,
                repeat: options.repeat,
            };
            console::run(&rig, &plan).await?;
        }
        if options.only.contains(&Scenario::Flood) {
            let plan = flood::Plan {
                builds: options.builds,
                secs: options.build_secs,
                stamps: options.stamps,
                repeat: options.repeat,
            };
            flood::run(&rig, &plan, options.executors).await?;
        }
        if options.only.contains(&Scenario::Terminals) {
            terminals::run(&rig, &options.terminals).await?;
        }
        if options.only.contains(&Scenario::Archive) {
            archive::run(&rig, &options.archive).await?;
        }
        if let Some((_, secret)) = &webhook {
            let plan = trigger::Plan {
                rounds: options.trigger_rounds,
                secret: secret.clone(),
            };
            trigger::run(&rig, &plan).await?;
        }
        if options.only.contains(&Scenario::Junit) {
            junit::run(&rig, &options.junit).await?;
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    rig.stop().await;
    println!("load average at the end: {}", stats::loadavg());
    outcome
}
