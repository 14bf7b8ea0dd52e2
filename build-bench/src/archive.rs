//! Scenario 5, artifact archiving throughput: a build whose step leaves SIZE bytes of
//! random data in `out/` of its workspace (F files), archived by
//! `<hudson.tasks.ArtifactArchiver><artifacts>out/**</artifacts>`.
//!
//! The step writes the files only when they are missing (the workspace stays between
//! builds), then runs `sync` and reads the clock (`date +%s%N`): that reading is where
//! archiving can start. The archiver writes each artifact under a temporary name and
//! renames it, so the first artifact's creation time (`statx` birth) is when the copying
//! started and the last one's modification time when it ended (file times come from the
//! kernel's coarse clock: a few ms, against seconds here). Baseline in each run, before
//! or after the build in turn: `copy-from-node` of the same files through the same
//! controller and agent, the in-process client writing each to a file on the same disk
//! through the same 1 MiB buffer as the archiver; then the same copies into nothing. The
//! target is judged on the median of the runs' ratios, as the disk's speed drifts between
//! runs. Every archived file is checked against the workspace's by SHA-256, and the build
//! is then deleted (`delete-builds`) so that runs do not pile up in the page cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::LineClock;
use crate::dispatch::{build_number, clock_lines};
use crate::rig::{Rig, node_name};
use crate::stats::{born_and_modified, cpu_secs, mbps, median, ms, now_ns, verdict};

pub const JOB: &str = "archive";
/// The target: archiving at least this share of `copy-from-node`'s rate.
const TARGET_SHARE: f64 = 0.9;
/// The archiver's write buffer (controller/src/builds/publish.rs), used for the baseline too.
const WRITE_BUFFER: usize = 1 << 20;
/// The console line the step prints its workspace on.
const WORKSPACE_LINE: &str = "workspace: ";

pub struct Plan {
    /// Bytes in all, split evenly over `files`.
    pub bytes: u64,
    pub files: u64,
    pub repeat: usize,
}

fn script(plan: &Plan) -> String {
    let each = plan.bytes / plan.files;
    format!(
        "set +x\nmkdir -p out\nfor i in $(seq 1 {files}); do\n  f=out/part-$i.bin\n  \
         [ \"$(stat -c %s \"$f\" 2>/dev/null)\" = {each} ] || head -c {each} /dev/urandom > \"$f\"\n\
         done\necho \"{WORKSPACE_LINE}$PWD\"\nsync\ndate +%s%N",
        files = plan.files
    )
}

/// `<`, `>` and `&` escaped for XML text.
pub fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    anyhow::ensure!(
        plan.files >= 1 && plan.bytes.is_multiple_of(plan.files) && plan.bytes > 0,
        "the archive size must be a positive multiple of the number of files"
    );
    let node = node_name(1);
    let xml = format!(
        "<project><assignedNode>{node}</assignedNode>\
         <builders><hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell></builders>\
         <publishers><hudson.tasks.ArtifactArchiver><artifacts>out/**</artifacts></hudson.tasks.ArtifactArchiver></publishers></project>",
        xml_text(&script(plan))
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    println!(
        "\n== 5. Artifact archiving: a build on {node} archiving {} files of {} MiB ({:.1} MB) from its workspace, against `copy-from-node` of the same files; {} run(s) ==",
        plan.files,
        (plan.bytes / plan.files) >> 20,
        plan.bytes as f64 / 1e6,
        plan.repeat
    );
    let agent_pid = rig.agent(&node).context("no agent for the node")?.proc.pid;
    let cpu = || -> anyhow::Result<(f64, f64)> {
        Ok((cpu_secs(rig.controller.pid)?, cpu_secs(agent_pid)?))
    };
    let each = plan.bytes / plan.files;
    let mut sources = Vec::new();
    let mut workspace_sums: Option<Vec<[u8; 32]>> = None;
    let (mut archived, mut copied, mut shares) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=plan.repeat {
        println!("run {run}:");
        // The first build makes the files; after it, the two alternate in order.
        let archive_first = run % 2 == 1;
        let mut pair = [0.0; 2];
        for archive_turn in [archive_first, !archive_first] {
            sync().await?;
            let cpu_before = cpu()?;
            if archive_turn {
                let build = one_build(rig, plan).await?;
                let cpu_after = cpu()?;
                sources = files(&build.workspace.join("out"), plan.files);
                if workspace_sums.is_none() {
                    workspace_sums = Some(sha256_all(sources.clone()).await?);
                }
                let sums = sha256_all(build.artifacts.clone()).await?;
                anyhow::ensure!(
                    Some(&sums) == workspace_sums.as_ref(),
                    "the archived files of #{} are not the workspace's (SHA-256 differs)",
                    build.number
                );
                pair[0] = mbps(plan.bytes, build.secs);
                println!(
                    "  build #{}: step's end -> last artifact written {:.2} s: {:.0} MB/s; sha256 of the {} artifacts = the workspace's",
                    build.number, build.secs, pair[0], plan.files
                );
                println!(
                    "    first artifact created {:+.0} ms from the step's end; copying alone (first created -> last written) {:.0} MB/s; `Completed` {:+.0} ms after the last artifact",
                    build.to_first_ms,
                    mbps(plan.bytes, build.copy_secs),
                    build.completed_after_ms
                );
                println!(
                    "    CPU from `build` to `Completed`: controller {:.2} s, agent {:.2} s",
                    cpu_after.0 - cpu_before.0,
                    cpu_after.1 - cpu_before.1
                );
                // Deleted as a user would, so that runs do not pile up in the page cache.
                rig.client
                    .ok(&["delete-builds", JOB, &build.number.to_string()], b"")
                    .await?;
            } else {
                let secs = copy_from_node(rig, &node, &sources, each).await?;
                let cpu_after = cpu()?;
                pair[1] = mbps(plan.bytes, secs);
                println!(
                    "  baseline: copy-from-node {node} of the {} files into files on the same disk: {secs:.2} s: {:.0} MB/s (CPU controller {:.2} s, agent {:.2} s)",
                    plan.files,
                    pair[1],
                    cpu_after.0 - cpu_before.0,
                    cpu_after.1 - cpu_before.1
                );
            }
        }
        let secs = copy_to_sink(rig, &node, &sources, each).await?;
        println!(
            "  the same copies into nothing (the channel without the disk): {secs:.2} s: {:.0} MB/s",
            mbps(plan.bytes, secs)
        );
        println!(
            "  archiving / copy-from-node: {:.0}%",
            pair[0] / pair[1] * 100.0
        );
        archived.push(pair[0]);
        copied.push(pair[1]);
        shares.push(pair[0] / pair[1]);
    }
    let round = |v: &[f64], by: f64| v.iter().map(|r| (r * by).round()).collect::<Vec<_>>();
    println!(
        "median over {} run(s): archiving {:.0} MB/s {:?}, copy-from-node {:.0} MB/s {:?}; archiving / copy-from-node run by run {:?}%",
        archived.len(),
        median(&archived),
        round(&archived, 1.0),
        median(&copied),
        round(&copied, 1.0),
        round(&shares, 100.0)
    );
    let share = median(&shares);
    println!(
        "target: archiving >= {:.0}% of copy-from-node's MB/s (median of the runs' ratios): {:.0}%, {}",
        TARGET_SHARE * 100.0,
        share * 100.0,
        verdict(share >= TARGET_SHARE)
    );
    Ok(())
}

struct Build {
    number: u64,
    workspace: PathBuf,
    artifacts: Vec<PathBuf>,
    /// Step's end -> last artifact written, s.
    secs: f64,
    /// First artifact created -> last written, s.
    copy_secs: f64,
    to_first_ms: f64,
    completed_after_ms: f64,
}

async fn one_build(rig: &Rig, plan: &Plan) -> anyhow::Result<Build> {
    let lines = LineClock::default();
    let out = rig.client.run_lines(&["build", JOB, "-s"], &lines).await?;
    let (_, started) = lines
        .find(&format!("Started {JOB} #"))
        .context("no `Started` line")?;
    let number = build_number(&started)?;
    let console_path = rig.console_path(JOB, number);
    let console = std::fs::read_to_string(&console_path)
        .with_context(|| format!("reading {}", console_path.display()))?;
    if out.code != 0 {
        bail!(
            "build {JOB} -s exited {}: {}\n{console}",
            out.code,
            out.stderr.trim()
        );
    }
    let (completed, _) = lines.find("Completed ").context("no `Completed` line")?;
    let step_end = clock_lines(&console)
        .last()
        .context("no clock reading in the console")?;
    let workspace = console
        .lines()
        .find_map(|l| l.strip_prefix(WORKSPACE_LINE))
        .context("the step did not print its workspace")?;
    let dir = console_path
        .parent()
        .context("console path")?
        .join("archive/out");
    let artifacts = files(&dir, plan.files);
    let (mut first_born, mut last_written) = (i128::MAX, i128::MIN);
    for path in &artifacts {
        let size = std::fs::metadata(path)
            .with_context(|| format!("artifact {} missing", path.display()))?
            .len();
        anyhow::ensure!(
            size == plan.bytes / plan.files,
            "{} holds {size} bytes",
            path.display()
        );
        let (born, modified) = born_and_modified(path)?;
        first_born = first_born.min(born);
        last_written = last_written.max(modified);
    }
    Ok(Build {
        number,
        workspace: PathBuf::from(workspace),
        artifacts,
        secs: ms(step_end, last_written) / 1000.0,
        copy_secs: ms(first_born, last_written) / 1000.0,
        to_first_ms: ms(step_end, first_born),
        completed_after_ms: ms(last_written, completed),
    })
}

/// `DIR/part-1.bin` … `DIR/part-N.bin`.
fn files(dir: &Path, n: u64) -> Vec<PathBuf> {
    (1..=n).map(|i| dir.join(format!("part-{i}.bin"))).collect()
}

/// `copy-from-node NODE FILE` of each file, one after the other, into files in the scratch
/// directory; the seconds from the first request to the last file flushed.
async fn copy_from_node(
    rig: &Rig,
    node: &str,
    sources: &[PathBuf],
    each: u64,
) -> anyhow::Result<f64> {
    let mut targets = Vec::new();
    let t0 = now_ns();
    for (i, source) in sources.iter().enumerate() {
        let target = rig.scratch.join(format!("copy-{i}.bin"));
        let file = tokio::fs::File::create(&target).await?;
        let out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let source = source.to_str().context("a workspace path is not UTF-8")?;
        let (output, mut out) = rig
            .client
            .run_into(&["copy-from-node", node, source], out)
            .await?;
        out.flush().await?;
        anyhow::ensure!(
            output.code == 0,
            "copy-from-node {node} {source} exited {}: {}",
            output.code,
            output.stderr.trim()
        );
        targets.push(target);
    }
    let secs = ms(t0, now_ns()) / 1000.0;
    for target in targets {
        let size = std::fs::metadata(&target)?.len();
        anyhow::ensure!(size == each, "copy-from-node gave {size} bytes, not {each}");
        std::fs::remove_file(&target)?;
    }
    Ok(secs)
}

/// `copy-from-node NODE FILE` of each file into nothing; the seconds for all.
async fn copy_to_sink(
    rig: &Rig,
    node: &str,
    sources: &[PathBuf],
    each: u64,
) -> anyhow::Result<f64> {
    let t0 = now_ns();
    for source in sources {
        let source = source.to_str().context("a workspace path is not UTF-8")?;
        let (output, counted) = rig
            .client
            .run_into(&["copy-from-node", node, source], Counter::default())
            .await?;
        anyhow::ensure!(
            output.code == 0 && counted.0 == each,
            "copy-from-node {node} {source} exited {} after {} bytes: {}",
            output.code,
            counted.0,
            output.stderr.trim()
        );
    }
    Ok(ms(t0, now_ns()) / 1000.0)
}

/// A sink that counts what it is given.
#[derive(Default)]
struct Counter(u64);

impl tokio::io::AsyncWrite for Counter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0 += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Flushes every file system, so one measurement's dirty pages are not written during the
/// next.
async fn sync() -> anyhow::Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await?;
    Ok(())
}

async fn sha256_all(paths: Vec<PathBuf>) -> anyhow::Result<Vec<[u8; 32]>> {
    tokio::task::spawn_blocking(move || {
        paths
            .iter()
            .map(|p| {
                let mut file =
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                let mut hasher = Sha256::new();
                std::io::copy(&mut file, &mut hasher)?;
                Ok(hasher.finalize().into())
            })
            .collect()
    })
    .await?
}
