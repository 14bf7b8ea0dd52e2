//! `channel-bench`: measures the Steward channel between this process, which runs the
//! controller library, and a real `agent` process over loopback; next to it, a plain
//! WebSocket between the same kinds of processes is the ceiling. It prints figures and
//! asserts nothing (targets are printed as PASS/FAIL lines to read, not test failures).
//!
//! - [`rig`]: the controller in this process, one node, the `agent` binary connected to it.
//! - [`plain`]: the baseline server here and its peer, this binary's hidden `plain-peer`.
//! - [`bulk`], [`latency`], [`fairness`], [`rss`]: the measurements; [`run`] orders them.
//! - [`report`]: readable lines (and JSON with `--json`).
//!
//! Build both binaries in release first:
//! `cargo build --release --bins -p steward-bench -p steward-agent`.

mod bulk;
mod fairness;
mod latency;
mod plain;
mod report;
mod rig;
mod rss;
mod run;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "channel-bench",
    about = "Benchmarks the Steward channel against a plain WebSocket over loopback"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Options {
    /// Size of the bulk transfers in MiB; the RSS comparison uses a quarter of it, each of
    /// the 16 concurrent transfers an eighth.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Small sizes and few samples: a smoke run of a few seconds.
    #[arg(long)]
    quick: bool,
    /// Print the figures as JSON on stdout; the readable report goes to stderr.
    #[arg(long)]
    json: bool,
    /// Runs of each bulk transfer; the report gives the median and the range.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Where to create the agent's work directory (default: the system temp directory).
    /// Writes end with an fsync, so this decides which disk the write figure includes.
    #[arg(long)]
    work_parent: Option<PathBuf>,
    /// Experiment: set TCP_NODELAY on the controller's sockets (the controller does not),
    /// to see what small calls gain. Off for the reference figures.
    #[arg(long)]
    controller_nodelay: bool,
    /// Give up (cleaning up) after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    #[command(subcommand)]
    command: Option<Hidden>,
}

#[derive(Subcommand)]
enum Hidden {
    /// The baseline's other process: connects to URL and answers the parent's commands.
    #[command(hide = true)]
    PlainPeer { url: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // In this process (controller side and plain peer) as in the agent, so both sides of
    // both links run with the same allocator settings.
    steward_channel::allocator::keep_freed_memory();
    let options = Options::parse();
    // Everything runs in a spawned task, on the runtime's workers, as the controller's
    // connections and commands do: driving the channel from `main`'s own thread would make
    // every frame a wake-up across threads, which neither side of the real thing pays.
    let mut work = tokio::spawn(bench(options));
    tokio::select! {
        joined = &mut work => joined.context("the benchmark task failed")?,
        _ = tokio::signal::ctrl_c() => {
            // Aborting drops the run and its rig: children are killed and temporary
            // directories removed.
            work.abort();
            let _ = work.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    }
}

async fn bench(options: Options) -> anyhow::Result<()> {
    if let Some(Hidden::PlainPeer { url }) = options.command {
        return plain::peer(&url).await;
    }
    let plan = run::Plan::new(options.size_mib, options.quick, options.repeat)?;
    let settings = run::Settings {
        plan,
        work_parent: options.work_parent,
        controller_nodelay: options.controller_nodelay,
        agent_bin: sibling("agent")?,
        self_exe: std::env::current_exe().context("finding this executable")?,
    };
    let mut report = report::Report::new(options.json);
    let limit = Duration::from_secs(options.timeout_secs);
    // Dropping the run on timeout drops the rig: children are killed and temporary
    // directories removed.
    let outcome = tokio::time::timeout(limit, run::run(&settings, &mut report))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("gave up after {limit:?} (--timeout-secs)")));
    report.finish();
    outcome
}

/// A binary next to this one (`target/release/agent` beside `target/release/channel-bench`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --bins -p steward-bench -p steward-agent`",
        path.display()
    );
    Ok(path)
}
