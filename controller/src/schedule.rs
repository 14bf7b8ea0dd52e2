//! Which waiting build goes to which executor: the scheduler's decision, as a pure function
//! of the queue and the nodes, so every rule is tested without sockets or timers. The
//! scheduler task (`builds::scheduler`) calls [`assign`] whenever something changes: a
//! build is queued, an executor is freed, a node comes online, goes offline or is
//! reconfigured.
//!
//! The rules, as Jenkins applies them:
//! - a node takes work only while it is online (connected and not temporarily offline) and
//!   has a free executor (`numExecutors`, numbered from 0 as `EXECUTOR_NUMBER`);
//! - a job's label expression must match the node (the node's labels and its name);
//! - an EXCLUSIVE node takes only jobs that have a label expression matching it;
//! - a job that is not `concurrentBuild` waits while a build of it runs;
//! - items are served in queue order, and each takes the matching node with the lowest
//!   name that has a free executor, its lowest free executor first.
//!
//! An item that cannot start gets the reason `queue` shows, in Jenkins' words, and Jenkins'
//! classification of it (what the REST API's `blocked`, `buildable` and `stuck` say).

use std::collections::{BTreeMap, BTreeSet};

use steward_protocol::label::LabelExpr;
use steward_protocol::node_xml::{NodeConfig, NodeMode};

/// A node as the scheduler sees it.
pub struct NodeView<'a> {
    pub config: &'a NodeConfig,
    /// Connected and not temporarily offline.
    pub online: bool,
    /// Held by a Java agent.jar, which cannot run builds (so not online): named in the wait
    /// reason of the items it would otherwise take.
    pub java_agent: bool,
    /// Executor numbers in use.
    pub busy: BTreeSet<u32>,
}

/// A queued build waiting for an executor.
pub struct Waiting<'a> {
    pub job: &'a str,
    /// The job's parsed label expression; `None` runs anywhere but on EXCLUSIVE nodes.
    pub label: Option<&'a LabelExpr>,
    pub concurrent: bool,
    /// The number of a running build of the same job, if any.
    pub running_build: Option<u64>,
}

/// What to do with one waiting item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start {
        node: String,
        executor: u32,
    },
    /// Waits for an executor of an online node that can take it (Jenkins' buildable item).
    Wait(String),
    /// Waits although no online node can take it (buildable, and what Jenkins calls stuck).
    Stuck(String),
    /// Waits for another build of its job (Jenkins' blocked item).
    Blocked(String),
}

/// Decides, in queue order, which items start where; the rest get their reason.
pub fn assign(waiting: &[Waiting<'_>], nodes: &[NodeView<'_>]) -> Vec<Decision> {
    let mut busy: BTreeMap<&str, BTreeSet<u32>> = nodes
        .iter()
        .map(|n| (n.config.name.as_str(), n.busy.clone()))
        .collect();
    let mut started_jobs: BTreeSet<&str> = BTreeSet::new();
    let mut sorted: Vec<&NodeView<'_>> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    waiting
        .iter()
        .map(|item| {
            if !item.concurrent {
                if let Some(number) = item.running_build {
                    return Decision::Blocked(format!("Build #{number} is already in progress"));
                }
                if started_jobs.contains(item.job) {
                    return Decision::Blocked(format!(
                        "A build of {} is already starting",
                        item.job
                    ));
                }
            }
            let eligible: Vec<&&NodeView<'_>> = sorted
                .iter()
                .filter(|n| takes(n.config, item.label))
                .collect();
            for node in &eligible {
                if !node.online {
                    continue;
                }
                let in_use = busy.entry(node.config.name.as_str()).or_default();
                if let Some(executor) = (0..node.config.num_executors).find(|e| !in_use.contains(e))
                {
                    in_use.insert(executor);
                    started_jobs.insert(item.job);
                    return Decision::Start {
                        node: node.config.name.clone(),
                        executor,
                    };
                }
            }
            let why = reason(item.label, &eligible);
            if eligible.iter().any(|n| n.online) {
                Decision::Wait(why)
            } else {
                Decision::Stuck(why)
            }
        })
        .collect()
}

/// Whether `node` may ever run an item with this label, online or not.
fn takes(node: &NodeConfig, label: Option<&LabelExpr>) -> bool {
    if node.num_executors == 0 {
        return false;
    }
    match label {
        Some(expr) => expr.matches_node(node),
        None => node.mode == NodeMode::Normal,
    }
}

/// Most nodes a wait reason names; the rest are counted.
const MAX_NAMED_NODES: usize = 3;

fn reason(label: Option<&LabelExpr>, eligible: &[&&NodeView<'_>]) -> String {
    let any_online = eligible.iter().any(|n| n.online);
    let mut why = base_reason(label, eligible, any_online);
    let java: Vec<&str> = eligible
        .iter()
        .filter(|n| n.java_agent)
        .map(|n| n.config.name.as_str())
        .collect();
    if !any_online && !java.is_empty() {
        let mut names = java
            .iter()
            .take(MAX_NAMED_NODES)
            .map(|n| format!("‘{n}’"))
            .collect::<Vec<_>>()
            .join(", ");
        if java.len() > MAX_NAMED_NODES {
            names.push_str(&format!(" and {} more", java.len() - MAX_NAMED_NODES));
        }
        let (whose, what) = if java.len() == 1 {
            ("agent of", "is a Java agent.jar")
        } else {
            ("agents of", "are Java agent.jars")
        };
        why.push_str(&format!(
            "; the {whose} {names} {what}, which cannot run builds"
        ));
    }
    why
}

fn base_reason(label: Option<&LabelExpr>, eligible: &[&&NodeView<'_>], any_online: bool) -> String {
    match label {
        None if eligible.is_empty() => "Waiting for next available executor (no node takes \
                                        jobs without a label)"
            .to_owned(),
        None if !any_online => "All nodes are offline".to_owned(),
        None => "Waiting for next available executor".to_owned(),
        Some(expr) if eligible.is_empty() => {
            format!("There are no nodes with the label ‘{expr}’")
        }
        Some(expr) if !any_online => format!("All nodes of label ‘{expr}’ are offline"),
        Some(expr) => format!("Waiting for next available executor on ‘{expr}’"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_protocol::label;

    fn node(name: &str, labels: &str, executors: u32, mode: NodeMode) -> NodeConfig {
        let mut config = NodeConfig::inbound(name);
        config.labels = labels.into();
        config.num_executors = executors;
        config.mode = mode;
        config
    }

    fn view(config: &NodeConfig, online: bool) -> NodeView<'_> {
        NodeView {
            config,
            online,
            java_agent: false,
            busy: BTreeSet::new(),
        }
    }

    fn java(config: &NodeConfig) -> NodeView<'_> {
        NodeView {
            java_agent: true,
            ..view(config, false)
        }
    }

    fn parse(text: &str) -> LabelExpr {
        label::parse(text).unwrap().unwrap()
    }

    fn item<'a>(job: &'a str, label: Option<&'a LabelExpr>) -> Waiting<'a> {
        Waiting {
            job,
            label,
            concurrent: true,
            running_build: None,
        }
    }

    fn start(node: &str, executor: u32) -> Decision {
        Decision::Start {
            node: node.into(),
            executor,
        }
    }

    #[test]
    fn labels_route_builds_to_matching_nodes() {
        let linux = node("l1", "linux x86_64", 1, NodeMode::Normal);
        let mac = node("m1", "macos", 1, NodeMode::Normal);
        let nodes = [view(&linux, true), view(&mac, true)];
        let (want_mac, want_linux) = (parse("macos"), parse("linux && !arm"));
        let decisions = assign(
            &[item("a", Some(&want_mac)), item("b", Some(&want_linux))],
            &nodes,
        );
        assert_eq!(decisions, [start("m1", 0), start("l1", 0)]);
    }

    #[test]
    fn a_node_name_is_one_of_its_labels() {
        let linux = node("l1", "linux", 1, NodeMode::Normal);
        let by_name = parse("l1");
        assert_eq!(
            assign(&[item("a", Some(&by_name))], &[view(&linux, true)]),
            [start("l1", 0)]
        );
    }

    #[test]
    fn executors_limit_concurrency_and_are_numbered_from_zero() {
        let two = node("n", "", 2, NodeMode::Normal);
        let mut busy = view(&two, true);
        busy.busy.insert(0);
        let decisions = assign(
            &[item("a", None), item("b", None), item("c", None)],
            &[busy],
        );
        assert_eq!(
            decisions,
            [
                start("n", 1),
                Decision::Wait("Waiting for next available executor".into()),
                Decision::Wait("Waiting for next available executor".into()),
            ]
        );
    }

    #[test]
    fn offline_and_temporarily_offline_nodes_take_nothing() {
        let linux = node("l1", "linux", 4, NodeMode::Normal);
        let expr = parse("linux");
        assert_eq!(
            assign(&[item("a", Some(&expr))], &[view(&linux, false)]),
            [Decision::Stuck(
                "All nodes of label ‘linux’ are offline".into()
            )]
        );
        assert_eq!(
            assign(&[item("a", None)], &[view(&linux, false)]),
            [Decision::Stuck("All nodes are offline".into())]
        );
    }

    #[test]
    fn nodes_held_by_java_agents_are_named_in_the_reason() {
        let held = node("java-1", "linux", 1, NodeMode::Normal);
        let down = node("l2", "linux", 1, NodeMode::Normal);
        let expr = parse("linux");
        assert_eq!(
            assign(
                &[item("a", Some(&expr))],
                &[java(&held), view(&down, false)]
            ),
            [Decision::Stuck(
                "All nodes of label ‘linux’ are offline; the agent of ‘java-1’ is a Java \
                 agent.jar, which cannot run builds"
                    .into()
            )]
        );
        let many: Vec<NodeConfig> = (1..=5)
            .map(|i| node(&format!("j{i}"), "", 1, NodeMode::Normal))
            .collect();
        let views: Vec<NodeView<'_>> = many.iter().map(java).collect();
        assert_eq!(
            assign(&[item("a", None)], &views),
            [Decision::Stuck(
                "All nodes are offline; the agents of ‘j1’, ‘j2’, ‘j3’ and 2 more are Java \
                 agent.jars, which cannot run builds"
                    .into()
            )]
        );
        // With a node online, the item waits for it and the Java agent is not the story.
        let up = node("l3", "linux", 1, NodeMode::Normal);
        let mut busy = view(&up, true);
        busy.busy.insert(0);
        assert_eq!(
            assign(&[item("a", Some(&expr))], &[java(&held), busy]),
            [Decision::Wait(
                "Waiting for next available executor on ‘linux’".into()
            )]
        );
    }

    #[test]
    fn a_label_no_node_has_says_so() {
        let linux = node("l1", "linux", 1, NodeMode::Normal);
        let expr = parse("windows || (mac && arm)");
        assert_eq!(
            assign(&[item("a", Some(&expr))], &[view(&linux, true)]),
            [Decision::Stuck(
                "There are no nodes with the label ‘windows || mac && arm’".into()
            )]
        );
    }

    #[test]
    fn exclusive_nodes_take_only_jobs_whose_label_matches_them() {
        let reserved = node("big", "gpu", 1, NodeMode::Exclusive);
        let nodes = [view(&reserved, true)];
        let gpu = parse("gpu");
        assert_eq!(
            assign(&[item("a", None)], &nodes),
            [Decision::Stuck(
                "Waiting for next available executor (no node takes jobs without a label)".into()
            )]
        );
        assert_eq!(assign(&[item("b", Some(&gpu))], &nodes), [start("big", 0)]);
        let not_arm = parse("!arm");
        assert_eq!(
            assign(&[item("c", Some(&not_arm))], &nodes),
            [start("big", 0)],
            "Jenkins lets any matching expression use an EXCLUSIVE node"
        );
    }

    #[test]
    fn a_job_that_is_not_concurrent_waits_for_its_previous_build() {
        let n = node("n", "", 4, NodeMode::Normal);
        let nodes = [view(&n, true)];
        let running = Waiting {
            job: "a",
            label: None,
            concurrent: false,
            running_build: Some(7),
        };
        assert_eq!(
            assign(&[running], &nodes),
            [Decision::Blocked("Build #7 is already in progress".into())]
        );
        // Two queued builds of one job: only the first starts in one pass.
        let first = Waiting {
            job: "a",
            label: None,
            concurrent: false,
            running_build: None,
        };
        let second = Waiting { ..first };
        let concurrent = Waiting {
            job: "b",
            label: None,
            concurrent: true,
            running_build: Some(3),
        };
        let decisions = assign(&[first, second, concurrent], &nodes);
        assert_eq!(decisions[0], start("n", 0));
        assert_eq!(
            decisions[1],
            Decision::Blocked("A build of a is already starting".into())
        );
        assert_eq!(decisions[2], start("n", 1), "concurrent jobs do not wait");
    }

    #[test]
    fn nodes_without_executors_take_nothing_and_order_is_by_name() {
        let none = node("a-zero", "linux", 0, NodeMode::Normal);
        let b = node("b", "linux", 1, NodeMode::Normal);
        let c = node("c", "linux", 1, NodeMode::Normal);
        let nodes = [view(&c, true), view(&none, true), view(&b, true)];
        let expr = parse("linux");
        assert_eq!(
            assign(&[item("x", Some(&expr)), item("y", Some(&expr))], &nodes),
            [start("b", 0), start("c", 0)]
        );
    }
}
