//! The disk-space monitor's rule, as Jenkins' `DiskSpaceMonitor` applies it: a node whose
//! work dir has less free space than its threshold takes no new builds, and takes them
//! again once a sample shows the space back. Nothing is stored: the state follows from the
//! latest sample (`monitors`) and the node's configuration, whenever a node's status is
//! computed (`nodes::status`).
//!
//! The threshold is the node's own (`freeDiskSpaceThreshold` in its
//! `DiskSpaceMonitorNodeProperty`, see `steward_protocol::disk_space`), else
//! [`default_threshold`].

use std::time::SystemTime;

use steward_protocol::disk_space::node_threshold;
use steward_protocol::node_xml::NodeConfig;

use crate::units::format_bytes;

/// Jenkins' default threshold: a build needs room for its checkout, outputs and log, and
/// below 1 GiB the next one is likely to fill the disk.
pub const DEFAULT_THRESHOLD: u64 = 1 << 30;
/// On a file system under 100 GiB the default is 1% of it instead (the divisor): a small
/// disk (a 10 GiB VM image, a tmpfs) would otherwise be offline with most of it free.
pub const SMALL_DISK_DIVISOR: u64 = 100;

/// The free space of an agent's work dir, as one sample saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSample {
    /// The work dir, as the agent names it.
    pub path: String,
    /// Bytes free for unprivileged users.
    pub free_bytes: u64,
    /// The file system's size; `None` from an agent older than `InfoV2`.
    pub total_bytes: Option<u64>,
    pub sampled_at: SystemTime,
}

/// A node below its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowSpace {
    pub path: String,
    pub free_bytes: u64,
    pub threshold_bytes: u64,
}

impl LowSpace {
    /// The node's offline reason.
    pub fn reason(&self) -> String {
        format!(
            "Disk space is too low. Only {} free in {} (threshold {})",
            format_bytes(self.free_bytes),
            self.path,
            format_bytes(self.threshold_bytes)
        )
    }
}

/// The default threshold for a file system of `total_bytes`: [`DEFAULT_THRESHOLD`], or 1%
/// of a smaller disk; [`DEFAULT_THRESHOLD`] when the size is unknown (an older agent).
pub fn default_threshold(total_bytes: Option<u64>) -> u64 {
    match total_bytes {
        Some(total) => DEFAULT_THRESHOLD.min(total / SMALL_DISK_DIVISOR),
        None => DEFAULT_THRESHOLD,
    }
}

/// The threshold in effect for `config` on a disk like `sample`'s. A stored threshold that
/// does not parse (create-node and update-node refuse one) counts as unset, as in Jenkins.
pub fn threshold(config: &NodeConfig, sample: &DiskSample) -> u64 {
    node_threshold(config)
        .ok()
        .flatten()
        .unwrap_or_else(|| default_threshold(sample.total_bytes))
}

/// Whether `sample` is below `config`'s threshold.
pub fn low(config: &NodeConfig, sample: &DiskSample) -> Option<LowSpace> {
    let threshold_bytes = threshold(config, sample);
    (sample.free_bytes < threshold_bytes).then(|| LowSpace {
        path: sample.path.clone(),
        free_bytes: sample.free_bytes,
        threshold_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn sample(free_bytes: u64, total_bytes: Option<u64>) -> DiskSample {
        DiskSample {
            path: "/w".into(),
            free_bytes,
            total_bytes,
            sampled_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_default_is_1_gib_or_1_percent_of_a_small_disk() {
        assert_eq!(default_threshold(Some(500 * GIB)), GIB);
        assert_eq!(default_threshold(Some(100 * GIB)), GIB);
        assert_eq!(default_threshold(Some(50 * GIB)), GIB / 2);
        assert_eq!(default_threshold(Some(20 * MIB)), 209_715);
        assert_eq!(default_threshold(Some(0)), 0);
        assert_eq!(default_threshold(None), GIB);
    }

    #[test]
    fn below_the_threshold_is_low_and_says_so() {
        let node = NodeConfig::inbound("n");
        assert_eq!(low(&node, &sample(GIB, Some(500 * GIB))), None);
        let low_space = low(&node, &sample(GIB - 1, Some(500 * GIB))).expect("low");
        assert_eq!(low_space.threshold_bytes, GIB);
        let small = low(&node, &sample(16 << 10, Some(20 * MIB))).expect("low");
        assert_eq!(
            small.reason(),
            "Disk space is too low. Only 16.0 KiB free in /w (threshold 204.8 KiB)"
        );
        // An older agent does not say how big its disk is: 1 GiB, as Jenkins.
        assert!(low(&node, &sample(500 * MIB, None)).is_some());
    }

    #[test]
    fn the_nodes_own_threshold_wins_and_a_bad_one_counts_as_unset() {
        let with = |threshold: &str| {
            NodeConfig::from_xml(&format!(
                "<slave><name>n</name><nodeProperties>\
                 <hudson.node__monitors.DiskSpaceMonitorNodeProperty>\
                 <freeDiskSpaceThreshold>{threshold}</freeDiskSpaceThreshold>\
                 </hudson.node__monitors.DiskSpaceMonitorNodeProperty></nodeProperties></slave>"
            ))
            .unwrap()
        };
        let disk = sample(600 * MIB, Some(500 * GIB));
        assert_eq!(threshold(&with("500MiB"), &disk), 500 * MIB);
        assert!(low(&with("500MiB"), &disk).is_none());
        assert!(low(&with("700MB"), &disk).is_some());
        assert_eq!(threshold(&with("lots"), &disk), GIB);
    }

    #[test]
    fn sizes_read_in_binary_units() {}
}
