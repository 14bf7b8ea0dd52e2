//! Helpers for build tests: freestyle job XML, nodes with any executor count and mode,
//! agents with their own work dirs, gates that hold a build step until the test opens
//! them, and readers for `queue` and `list-builds`.

use std::path::{Path, PathBuf};

use crate::{Agent, Controller, DEADLINE};

/// How long a gated step waits before giving up on its own, so a step left behind by a
/// test that was killed does not poll forever (a panicking test removes the gate's
/// directory, which ends the step at once).
const GATE_GIVE_UP_POLLS: u32 = 2400; // × 0.05 s = 2 minutes

/// A freestyle job, as the XML `create-job` takes.
#[derive(Debug, Clone, Default)]
pub struct Freestyle {
    label: Option<String>,
    concurrent: bool,
    /// `(numToKeep, daysToKeep)` of "Discard old builds", -1 for no limit.
    discarder: Option<(i64, i64)>,
    parameters: Vec<String>,
    steps: Vec<String>,
    /// The `steward.BreakpointProperty` element's content.
    breakpoint: Option<String>,
}

impl Freestyle {
    /// A job with one shell step.
    pub fn shell(script: &str) -> Freestyle {
        Freestyle::default().step(script)
    }

    /// Adds a shell step.
    pub fn step(mut self, script: &str) -> Freestyle {
        self.steps.push(script.to_owned());
        self
    }

    /// Restricts where the job runs (`assignedNode`).
    pub fn label(mut self, expression: &str) -> Freestyle {
        self.label = Some(expression.to_owned());
        self
    }

    /// A breakpoint: `settings` is the content of `<steward.BreakpointProperty>`, e.g.
    /// `<when>onFailure</when><duration>30m</duration>`.
    pub fn breakpoint(mut self, settings: &str) -> Freestyle {
        self.breakpoint = Some(settings.to_owned());
        self
    }

    /// Lets builds of the job run at the same time (`concurrentBuild`).
    pub fn concurrent(mut self) -> Freestyle {
        self.concurrent = true;
        self
    }

    /// "Discard old builds": keep `num_to_keep` builds and those of the last
    /// `days_to_keep` days (-1: no limit).
    pub fn discard_old(mut self, num_to_keep: i64, days_to_keep: i64) -> Freestyle {
        self.discarder = Some((num_to_keep, days_to_keep));
        self
    }

    pub fn string_parameter(mut self, name: &str, default: &str) -> Freestyle {
        self.parameters.push(format!(
            "<hudson.model.StringParameterDefinition><name>{}</name><defaultValue>{}</defaultValue></hudson.model.StringParameterDefinition>",
            escape(name),
            escape(default)
        ));
        self
    }

    pub fn boolean_parameter(mut self, name: &str, default: bool) -> Freestyle {
        self.parameters.push(format!(
            "<hudson.model.BooleanParameterDefinition><name>{}</name><defaultValue>{default}</defaultValue></hudson.model.BooleanParameterDefinition>",
            escape(name)
        ));
        self
    }

    /// A choice parameter; the first choice is the default.
    pub fn choice_parameter(mut self, name: &str, choices: &[&str]) -> Freestyle {
        let strings: String = choices
            .iter()
            .map(|c| format!("<string>{}</string>", escape(c)))
            .collect();
        self.parameters.push(format!(
            "<hudson.model.ChoiceParameterDefinition><name>{}</name><choices class=\"java.util.Arrays$ArrayList\"><a class=\"string-array\">{strings}</a></choices></hudson.model.ChoiceParameterDefinition>",
            escape(name)
        ));
        self
    }

    /// The job's XML with `content` added as its top-level `<section>` (`triggers`,
    /// `publishers`, `buildWrappers`…), for plugin elements this builder does not model.
    pub fn xml_with(&self, section: &str, content: &str) -> String {
        self.xml().replace(
            "</project>",
            &format!("<{section}>{content}</{section}></project>"),
        )
    }

    pub fn xml(&self) -> String {
        let mut properties = String::new();
        if let Some((num, days)) = self.discarder {
            properties.push_str(&format!(
                "<jenkins.model.BuildDiscarderProperty><strategy class=\"hudson.tasks.LogRotator\"><daysToKeep>{days}</daysToKeep><numToKeep>{num}</numToKeep><artifactDaysToKeep>-1</artifactDaysToKeep><artifactNumToKeep>-1</artifactNumToKeep></strategy></jenkins.model.BuildDiscarderProperty>"
            ));
        }
        if !self.parameters.is_empty() {
            properties.push_str(&format!(
                "<hudson.model.ParametersDefinitionProperty><parameterDefinitions>{}</parameterDefinitions></hudson.model.ParametersDefinitionProperty>",
                self.parameters.concat()
            ));
        }
        if let Some(settings) = &self.breakpoint {
            properties.push_str(&format!(
                "<steward.BreakpointProperty>{settings}</steward.BreakpointProperty>"
            ));
        }
        let properties = format!("<properties>{properties}</properties>");
        let label = self
            .label
            .as_deref()
            .map(|l| format!("<assignedNode>{}</assignedNode>", escape(l)))
            .unwrap_or_default();
        let steps: String = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "<hudson.tasks.Shell><command>{}</command></hudson.tasks.Shell>",
                    escape(s)
                )
            })
            .collect();
        format!(
            "<project>{properties}{label}<disabled>false</disabled><concurrentBuild>{}</concurrentBuild><builders>{steps}</builders></project>",
            self.concurrent
        )
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Files in a temporary directory through which a test and its builds' steps meet: a step
/// marks that it got somewhere, or waits until the test opens a gate.
pub struct Gate {
    dir: tempfile::TempDir,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            dir: tempfile::tempdir().expect("gate directory"),
        }
    }

    /// The directory the marks are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Shell lines that wait until [`Gate::open`]`(name)`, without tracing each poll. `name`
    /// may use shell variables (`started-$N`).
    pub fn wait_script(&self, name: &str) -> String {
        let dir = self.dir.path().display();
        format!(
            "set +x\ni=0\nwhile [ ! -e \"{dir}/{name}\" ]; do\n  [ -d \"{dir}\" ] || exit 97\n  \
             i=$((i+1)); [ $i -lt {GATE_GIVE_UP_POLLS} ] || exit 98\n  sleep 0.05\ndone\nset -x\n"
        )
    }

    /// A shell line that creates the mark `name` (which may use shell variables).
    pub fn mark_script(&self, name: &str) -> String {
        format!("touch \"{}/{name}\"\n", self.dir.path().display())
    }

    /// Lets the steps waiting on `name` go on.
    pub fn open(&self, name: &str) {
        std::fs::write(self.path(name), b"").expect("opening the gate");
    }

    pub fn is_marked(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// The marks whose names start with `prefix`, sorted.
    pub fn marks(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("reading the gate directory")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }
}

/// One line of `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLine {
    pub id: u64,
    pub job: String,
    pub params: String,
    pub reason: String,
}

/// One line of `list-builds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLine {
    pub number: u64,
    /// A result, or `RUNNING`.
    pub result: String,
    pub node: String,
    pub cause: String,
    pub params: String,
    /// `T tests, F failed, S skipped`, or `-` without a test report.
    pub tests: String,
    /// The display name set on it, or `-`.
    pub display_name: String,
    /// Its description, or `-`.
    pub description: String,
}

impl Controller {
    /// Creates an inbound WebSocket node with `executors` executors and `mode` (`NORMAL` or
    /// `EXCLUSIVE`).
    pub fn create_node_with(&self, name: &str, labels: &str, executors: u32, mode: &str) {
        let xml = format!(
            "<slave><name>{name}</name><remoteFS></remoteFS><numExecutors>{executors}</numExecutors><mode>{mode}</mode>\
             <launcher class=\"hudson.slaves.JNLPLauncher\"><webSocket>true</webSocket></launcher><label>{labels}</label></slave>"
        );
        let out = self.cli_with_stdin(&["create-node"], &xml);
        assert_eq!(out.code, 0, "create-node {name} failed: {out:?}");
    }

    /// Creates node `name` (one executor) and starts its agent in a temporary work dir,
    /// online when this returns: the setting most build tests start from. Keep the
    /// directory as long as the agent.
    pub fn node_with_agent(&self, name: &str) -> (Agent, tempfile::TempDir) {
        let work = tempfile::tempdir().expect("a work dir");
        self.create_node_with(name, "", 1, "NORMAL");
        let agent = self.start_agent_in(name, work.path());
        (agent, work)
    }

    /// Waits until job `job` has exactly `count` builds, all ended.
    pub fn wait_finished_builds(&self, job: &str, count: usize) {
        crate::wait_until(
            DEADLINE,
            &format!("{count} finished builds of {job}"),
            || {
                let all = self.list_builds(job);
                all.len() == count && all.iter().all(|b| b.result != "RUNNING")
            },
        );
    }

    /// Starts the agent of an existing node with `work_dir` as its `-workDir`, and waits
    /// until it is connected and online.
    pub fn start_agent_in(&self, node: &str, work_dir: &Path) -> Agent {
        let agent = self.agent(node, &["-workDir", work_dir.to_str().expect("UTF-8 path")]);
        self.wait_online(node, true, DEADLINE);
        agent.output.wait_for("Connected", DEADLINE);
        agent
    }

    pub fn create_job(&self, name: &str, job: &Freestyle) {
        let out = self.cli_with_stdin(&["create-job", name], &job.xml());
        assert_eq!(out.code, 0, "create-job {name} failed: {out:?}");
    }

    /// Build `number`'s result as `list-builds` shows it (`RUNNING` while it runs).
    pub fn result_of(&self, job: &str, number: u64) -> String {
        self.list_builds(job)
            .into_iter()
            .find(|b| b.number == number)
            .map(|b| b.result)
            .unwrap_or_else(|| panic!("no build {job}#{number}"))
    }

    /// Waits until build `number` has ended; its result.
    pub fn wait_result(&self, job: &str, number: u64) -> String {
        let mut result = String::new();
        crate::wait_until(DEADLINE, &format!("{job}#{number} ends"), || {
            result = self.result_of(job, number);
            result != "RUNNING"
        });
        result
    }

    /// The queue, as `queue` prints it.
    pub fn queue(&self) -> Vec<QueueLine> {
        let out = self.cli(&["queue"]);
        assert_eq!(out.code, 0, "queue failed: {out:?}");
        out.stdout
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 5, "queue line {line:?}");
                QueueLine {
                    id: fields[0].parse().expect("queue id"),
                    job: fields[1].to_owned(),
                    params: fields[2].to_owned(),
                    reason: fields[4].to_owned(),
                }
            })
            .collect()
    }

    /// Waits until `job` has an item in the queue whose reason passes `check`; that item.
    pub fn wait_queued_matching(&self, job: &str, check: impl Fn(&str) -> bool) -> QueueLine {
        let mut found = None;
        let what = format!("an item of {job} waiting for the reason wanted");
        crate::wait_until(DEADLINE, &what, || {
            found = self
                .queue()
                .into_iter()
                .find(|q| q.job == job && check(&q.reason));
            found.is_some()
        });
        found.unwrap()
    }

    /// Waits until `job` has an item in the queue waiting for `reason`; that item.
    pub fn wait_queued(&self, job: &str, reason: &str) -> QueueLine {
        self.wait_queued_matching(job, |r| r == reason)
    }

    /// A job's builds, newest first, as `list-builds` prints them.
    pub fn list_builds(&self, job: &str) -> Vec<BuildLine> {
        let out = self.cli(&["list-builds", job]);
        assert_eq!(out.code, 0, "list-builds {job} failed: {out:?}");
        out.stdout
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 10, "list-builds line {line:?}");
                BuildLine {
                    number: fields[0]
                        .strip_prefix('#')
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("build number in {line:?}")),
                    result: fields[1].to_owned(),
                    node: fields[4].to_owned(),
                    cause: fields[5].to_owned(),
                    params: fields[6].to_owned(),
                    tests: fields[7].to_owned(),
                    display_name: fields[8].to_owned(),
                    description: fields[9].to_owned(),
                }
            })
            .collect()
    }

    /// The console of build `number` of `job`, which must be readable.
    pub fn console(&self, job: &str, number: u64) -> String {
        let out = self.cli(&["console", job, &number.to_string()]);
        assert_eq!(out.code, 0, "console {job} {number} failed: {out:?}");
        out.stdout
    }
}
