//! Where a build runs and with what: its workspace on the agent, the environment its steps
//! get (compat §7.4), which SSH sessions into the build get as well, and the node as the
//! console's "Building remotely on" line names it.

use crate::state::AppState;
use crate::store::builds::BuildRow;

/// `WORK_DIR/workspace/NAME`, NAME being the build's `BuildRow::workspace`.
pub fn workspace(work_dir: &str, name: &str) -> String {
    format!("{work_dir}/workspace/{name}")
}

/// The variables a build's steps, and sessions into the build, get: Jenkins' set, the Git
/// plugin's once the build has checked out, then the build's parameters.
pub async fn variables(state: &AppState, row: &BuildRow, work_dir: &str) -> Vec<(String, String)> {
    let root = state.config.root_url.as_str();
    let job_url = super::job_url(&state.config.root_url, &row.job);
    let labels = node_labels(state, &row.node).await;
    let mut env = vec![
        ("BUILD_NUMBER".to_owned(), row.number.to_string()),
        ("BUILD_ID".to_owned(), row.number.to_string()),
        ("BUILD_DISPLAY_NAME".to_owned(), format!("#{}", row.number)),
        (
            "BUILD_TAG".to_owned(),
            format!("jenkins-{}-{}", row.job.replace('/', "-"), row.number),
        ),
        ("BUILD_URL".to_owned(), format!("{job_url}{}/", row.number)),
        ("JOB_NAME".to_owned(), row.job.clone()),
        ("JOB_BASE_NAME".to_owned(), row.job.clone()),
        ("JOB_URL".to_owned(), job_url),
        ("WORKSPACE".to_owned(), workspace(work_dir, &row.workspace)),
        ("NODE_NAME".to_owned(), row.node.clone()),
        ("NODE_LABELS".to_owned(), labels),
        ("EXECUTOR_NUMBER".to_owned(), row.executor.to_string()),
        ("JENKINS_URL".to_owned(), root.to_owned()),
        // The `breakpoint` command's proof that it runs in this build (docs/debugging.md).
        (
            "STEWARD_BUILD_KEY".to_owned(),
            state.secret_key.build_key(row.id),
        ),
    ];
    super::checkout::variables(state, row, &mut env).await;
    env.extend(row.params.iter().cloned());
    env
}

/// `NODE (labels)` as Jenkins' "Building remotely on" line shows it.
pub async fn describe_node(state: &AppState, node: &str) -> String {
    let labels = configured_labels(state, node).await;
    if labels.is_empty() {
        node.to_owned()
    } else {
        format!("{node} ({labels})")
    }
}

async fn configured_labels(state: &AppState, node: &str) -> String {
    crate::nodes::list(state)
        .await
        .ok()
        .and_then(|list| {
            list.iter()
                .find(|r| r.config.name == node)
                .map(|r| r.config.label_list().join(" "))
        })
        .unwrap_or_default()
}

/// `NODE_LABELS`: the node's labels and its name.
async fn node_labels(state: &AppState, node: &str) -> String {
    let labels = configured_labels(state, node).await;
    if labels.is_empty() {
        node.to_owned()
    } else {
        format!("{labels} {node}")
    }
}
