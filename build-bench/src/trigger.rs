//! Scenario 6, trigger latency: from a signed GitHub `push` delivery to the build's first
//! step.
//!
//! A bare repository (`origin.git`, branch `main`) and a work clone live in the scratch
//! directory; job `trigger` checks out `file://…/origin.git` (`*/main`) on `build-01`,
//! has a `GitHubPushTrigger` and one shell step, `date +%s%N`. Each round pushes a new
//! commit, then at t0 posts a push event naming the repository to `/github-webhook/`,
//! signed with the controller's secret (`--github-webhook-secret-file`, given by `main`).
//! The controller answers at once and polls in the background (`git ls-remote`), queues a
//! build for the new head, the build checks it out on the agent, then runs the step: t1 is
//! the step's clock reading in the stored console. The build's start is when its console
//! appears, looked for every [`START_POLL`] (its `statx` birth time would do, but it comes
//! from the kernel's coarse clock, up to a tick, 4–10 ms, behind). Baselines each round, after the build: `git ls-remote` of the same
//! URL (the command the poll runs), and the git commands the agent's checkout runs for a
//! fetch, in a clone of the benchmark's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::archive::xml_text;
use crate::dispatch::clock_lines;
use crate::rig::{Rig, node_name};
use crate::stats::{Summary, ms, now_ns, verdict};

pub const JOB: &str = "trigger";
/// The target: the median delivery -> step, less the median `git ls-remote`.
const TARGET_P50_MS: f64 = 50.0;
/// Rounds before the measured ones: the first clones, the rest warm the caches.
const WARM_UP: usize = 2;
/// How often the build's console is looked for until it appears (the build's start).
const START_POLL: Duration = Duration::from_millis(1);
/// How often the build's console is read while waiting for its end.
const CONSOLE_POLL: Duration = Duration::from_millis(5);
/// How long one round's build may take; it is a local checkout and a `date`.
const BUILD_DEADLINE: Duration = Duration::from_secs(60);
/// What the job's Git remote fetches, as the Git plugin's default refspec.
const REFSPEC: &str = "+refs/heads/*:refs/remotes/origin/*";

pub struct Plan {
    pub rounds: usize,
    /// The secret the controller was started with.
    pub secret: String,
}

/// A file holding a fresh webhook secret, for `--github-webhook-secret-file`, and the secret.
pub fn secret_file() -> anyhow::Result<(tempfile::NamedTempFile, String)> {
    let secret = format!("build-bench-{}-{}", std::process::id(), now_ns());
    let file = tempfile::Builder::new()
        .prefix("steward-build-bench-webhook-")
        .tempfile()
        .context("creating the webhook secret file")?;
    std::fs::write(file.path(), &secret)?;
    Ok((file, secret))
}

/// One round's times, ms.
struct Sample {
    /// t0 -> the step's `date`.
    to_step: f64,
    /// t0 -> the webhook's answer.
    answered: f64,
    /// t0 -> the console seen (the build started).
    to_start: f64,
    /// What the controller's poll took, from its log (`Done. Took N ms`).
    poll: Option<f64>,
    ls_remote: f64,
    checkout: f64,
}

pub async fn run(rig: &Rig, plan: &Plan) -> anyhow::Result<()> {
    let dir = rig.scratch.join("git");
    let repo = Repo::create(&dir).await?;
    let node = node_name(1);
    let xml = format!(
        "<project><assignedNode>{node}</assignedNode>\
         <scm class=\"hudson.plugins.git.GitSCM\"><configVersion>2</configVersion>\
         <userRemoteConfigs><hudson.plugins.git.UserRemoteConfig><url>{}</url></hudson.plugins.git.UserRemoteConfig></userRemoteConfigs>\
         <branches><hudson.plugins.git.BranchSpec><name>*/main</name></hudson.plugins.git.BranchSpec></branches></scm>\
         <triggers><com.cloudbees.jenkins.GitHubPushTrigger><spec/></com.cloudbees.jenkins.GitHubPushTrigger></triggers>\
         <builders><hudson.tasks.Shell><command>date +%s%N</command></hudson.tasks.Shell></builders></project>",
        xml_text(&repo.url)
    );
    rig.client.ok(&["create-job", JOB], xml.as_bytes()).await?;
    println!(
        "\n== 6. Trigger latency: a signed GitHub push delivery to /github-webhook/ until the step's `date +%s%N` runs on idle agent {node}, after the checkout of {}; {} rounds after {WARM_UP} warm-up ==",
        repo.url, plan.rounds
    );
    let mut samples = Vec::new();
    for round in 1..=WARM_UP + plan.rounds {
        let sample = one_round(rig, plan, &repo, round as u64).await?;
        if round > WARM_UP {
            samples.push(sample);
        }
    }
    let column =
        |f: &dyn Fn(&Sample) -> f64| Summary::new(&samples.iter().map(f).collect::<Vec<_>>());
    let to_step = column(&|s| s.to_step);
    let ls_remote = column(&|s| s.ls_remote);
    let checkout = column(&|s| s.checkout);
    println!("times in ms from t0 (just before the delivery is sent):");
    println!(
        "  delivery -> the step's `date`:                     {}",
        to_step.line()
    );
    println!(
        "    delivery -> the webhook's answer:                {}",
        column(&|s| s.answered).line()
    );
    println!(
        "    delivery -> the build started (console seen):     {}",
        column(&|s| s.to_start).line()
    );
    println!(
        "    build started -> the step's `date` (checkout):   {}",
        column(&|s| s.to_step - s.to_start).line()
    );
    if samples.iter().all(|s| s.poll.is_some()) {
        println!(
            "    the controller's poll, from its log (ls-remote, store, queue): {}",
            column(&|s| s.poll.unwrap_or(f64::NAN)).line()
        );
    }
    println!("  baselines, run here after each build:");
    println!(
        "    git ls-remote -- URL (what the poll runs):       {}",
        ls_remote.line()
    );
    println!(
        "    the checkout's git commands in a clone (fetch, checkout, log): {}",
        checkout.line()
    );
    println!(
        "  delivery -> step, less that round's ls-remote:     {}",
        column(&|s| s.to_step - s.ls_remote).line()
    );
    println!(
        "  delivery -> step, less ls-remote and the checkout's git commands: {}",
        column(&|s| s.to_step - s.ls_remote - s.checkout).line()
    );
    let limit = TARGET_P50_MS + ls_remote.pct(0.5);
    println!(
        "target: p50 <= {TARGET_P50_MS} ms + ls-remote's p50 ({:.1} ms) = {limit:.1} ms: p50 {:.1} ms, {}",
        ls_remote.pct(0.5),
        to_step.pct(0.5),
        verdict(to_step.pct(0.5) <= limit)
    );
    Ok(())
}

async fn one_round(rig: &Rig, plan: &Plan, repo: &Repo, round: u64) -> anyhow::Result<Sample> {
    let previous = repo.head().await?;
    let commit = repo.commit(round).await?;
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "before": previous,
        "after": commit,
        "repository": {"clone_url": repo.url, "name": "origin"},
        "pusher": {"name": "build-bench"},
    })
    .to_string();
    let signature = {
        let mut mac = Hmac::<Sha256>::new_from_slice(plan.secret.as_bytes())
            .context("an HMAC key of any length")?;
        mac.update(body.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    };
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("X-GitHub-Event", "push".to_owned()),
        ("X-GitHub-Delivery", format!("build-bench-{round}")),
        ("X-Hub-Signature-256", signature),
    ];
    let console = rig.console_path(JOB, round);
    let watching = tokio::spawn(watch(console.clone()));
    let t0 = now_ns();
    let (status, answer) = http(rig, "POST", "github-webhook/", &headers, body.as_bytes()).await?;
    let answered = now_ns();
    anyhow::ensure!(
        status == 200 && answer.contains(&format!("Scheduled polling of {JOB}")),
        "the webhook answered {status}: {answer}"
    );
    let (born, text) = watching.await??;
    anyhow::ensure!(
        text.contains("Finished: SUCCESS")
            && text.contains(&format!("Checking out Revision {commit}"))
            && text.contains("GitHub push by build-bench"),
        "build #{round} did not check out {commit} and succeed:\n{text}"
    );
    let t1 = clock_lines(&text)
        .next()
        .with_context(|| format!("no clock reading in the console of #{round}:\n{text}"))?;
    let poll = polling_took(rig).await.ok();

    let t = now_ns();
    git(&repo.dir, &["ls-remote", "--", &repo.url]).await?;
    let ls_remote = ms(t, now_ns());
    let t = now_ns();
    repo.checkout_commands(&previous, &commit).await?;
    let checkout = ms(t, now_ns());
    Ok(Sample {
        to_step: ms(t0, t1),
        answered: ms(t0, answered),
        to_start: ms(t0, born),
        poll,
        ls_remote,
        checkout,
    })
}

/// Waits for the console at `path` to appear, then to hold its `Finished:` line; when it
/// was first seen, and its text.
async fn watch(path: PathBuf) -> anyhow::Result<(i128, String)> {
    let deadline = tokio::time::Instant::now() + BUILD_DEADLINE;
    let (mut appeared, mut seen) = (None, None);
    loop {
        if let Ok(meta) = std::fs::metadata(&path)
            && seen != Some(meta.len())
        {
            appeared.get_or_insert_with(now_ns);
            seen = Some(meta.len());
            let text = std::fs::read_to_string(&path)?;
            if let Some(at) = appeared
                && text.contains("\nFinished: ")
            {
                return Ok((at, text));
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no finished build at {} within {BUILD_DEADLINE:?}",
                path.display()
            );
        }
        let pause = if appeared.is_some() {
            CONSOLE_POLL
        } else {
            START_POLL
        };
        tokio::time::sleep(pause).await;
    }
}

/// `Done. Took N ms` from the job's polling log.
async fn polling_took(rig: &Rig) -> anyhow::Result<f64> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", rig.token));
    let (status, log) = http(
        rig,
        "GET",
        &format!("job/{JOB}/scmPollLog/pollingLog"),
        &[("Authorization", format!("Basic {auth}"))],
        b"",
    )
    .await?;
    anyhow::ensure!(status == 200, "pollingLog answered {status}");
    log.lines()
        .find_map(|l| l.strip_prefix("Done. Took ")?.strip_suffix(" ms"))
        .and_then(|n| n.trim().parse().ok())
        .context("no `Done. Took N ms` in the polling log")
}

/// One HTTP/1.1 request to the controller on a new connection; the status and the body.
async fn http(
    rig: &Rig,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let root = url::Url::parse(&rig.url)?;
    let target = root.join(path)?;
    let host = root.host_str().context("no host in the controller's URL")?;
    let port = root.port_or_known_default().context("no port")?;
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        target.path(),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// The bare repository, the work clone commits are made in, and a clone the checkout
/// baseline fetches into.
struct Repo {
    dir: PathBuf,
    url: String,
}

impl Repo {
    async fn create(dir: &Path) -> anyhow::Result<Repo> {
        std::fs::create_dir_all(dir)?;
        git(dir, &["init", "-q", "--bare", "-b", "main", "origin.git"]).await?;
        git(dir, &["init", "-q", "-b", "main", "work"]).await?;
        git(dir, &["init", "-q", "clone"]).await?;
        let repo = Repo {
            url: format!("file://{}", dir.join("origin.git").display()),
            dir: dir.to_owned(),
        };
        git(&repo.work(), &["remote", "add", "origin", &repo.url]).await?;
        repo.commit(0).await?;
        Ok(repo)
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    async fn head(&self) -> anyhow::Result<String> {
        git(&self.work(), &["rev-parse", "HEAD"]).await
    }

    /// Commits a change in the work clone and pushes it; the new commit.
    async fn commit(&self, round: u64) -> anyhow::Result<String> {
        let work = self.work();
        std::fs::write(work.join("round"), format!("{round}\n"))?;
        git(&work, &["add", "round"]).await?;
        git(&work, &["commit", "-q", "-m", &format!("Round {round}")]).await?;
        git(&work, &["push", "-q", "origin", "HEAD:main"]).await?;
        self.head().await
    }

    /// The git commands the agent's checkout runs for a build after the first
    /// (agent-jar-equivalent/src/git), in the baseline's clone.
    async fn checkout_commands(&self, previous: &str, commit: &str) -> anyhow::Result<()> {
        let clone = self.dir.join("clone");
        let range = format!("{previous}..{commit}");
        let steps: [&[&str]; 9] = [
            &["--version"],
            &["config", "remote.origin.url", &self.url],
            &["config", "--replace-all", "remote.origin.fetch", REFSPEC],
            &[
                "fetch",
                "--tags",
                "--force",
                "--progress",
                "--",
                &self.url,
                REFSPEC,
            ],
            &[
                "for-each-ref",
                "--sort=-committerdate",
                "--format=%(objectname) %(*objectname) %(refname)",
                "refs/remotes",
                "refs/tags",
            ],
            &["checkout", "-q", "-f", commit],
            &["log", "-1", "--format=%s", commit],
            &["rev-list", "--no-walk", previous],
            &[
                "log",
                "--max-count=1000",
                "--no-renames",
                "--name-status",
                "--format=%x1e%H%x1f%an%x1f%ae%x1f%at%x1f%B%x1f",
                &range,
            ],
        ];
        for args in steps {
            git(&clone, args).await?;
        }
        Ok(())
    }
}

/// Runs git in `dir` with a fixed identity; its standard output, trimmed.
async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Build Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Build Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
