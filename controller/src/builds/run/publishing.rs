//! The publishers a build runs after its steps ([`crate::builds::publish`]), in the
//! job's order, and what they make of its result.

use steward_protocol::job_xml::JobConfig;

use super::{Runner, live_channel};
use crate::builds::environment::workspace;
use crate::store::builds::BuildResult;

impl Runner<'_> {
    /// Runs the job's publishers (artifacts, test reports) after its steps, in the job's
    /// order, as Jenkins runs them whatever the steps' result, but not for an aborted
    /// build; the build's result after them.
    pub(super) async fn publish(&mut self, config: &JobConfig, result: BuildResult) -> BuildResult {
        use steward_protocol::job_xml::publishers::Publisher;
        let publishers = match config.publishers() {
            Ok(publishers) => publishers,
            Err(e) => {
                self.line(&format!(
                    "ERROR: the job's publishers cannot be read: {e}\n"
                ))
                .await;
                return BuildResult::Failure;
            }
        };
        if publishers.is_empty()
            || result == BuildResult::Aborted
            || self.build.abort.is_cancelled()
        {
            return result;
        }
        let (Some(work_dir), Some(channel)) = (
            self.work_dir().await,
            live_channel(self.state, &self.build.row.node),
        ) else {
            self.line(&format!(
                "ERROR: {} is not connected: the publishers cannot run\n",
                self.build.row.node
            ))
            .await;
            return BuildResult::Failure;
        };
        let workspace = workspace(&work_dir, &self.build.row.workspace);
        let mut result = result;
        for publisher in &publishers {
            let published = match publisher {
                Publisher::Artifacts(archiver) => {
                    crate::builds::publish::archive(
                        self.state,
                        &channel,
                        &self.build.row,
                        &workspace,
                        archiver,
                        result,
                    )
                    .await
                }
                Publisher::JUnit(archiver) => {
                    crate::builds::publish::record_tests(
                        self.state,
                        &channel,
                        &self.build.row,
                        &workspace,
                        archiver,
                        result,
                    )
                    .await
                }
            };
            for line in &published.lines {
                self.line(line).await;
            }
            if let Some(worse) = published.result
                && worse.ordinal() > result.ordinal()
            {
                result = worse;
            }
        }
        result
    }
}
