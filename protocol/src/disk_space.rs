//! The disk-space monitor's node setting, as Jenkins writes it: a size in Jenkins' notation
//! (`1GiB`, `500MB`, `1.5g`) in the node property
//!
//! ```xml
//! <nodeProperties>
//!   <hudson.node__monitors.DiskSpaceMonitorNodeProperty>
//!     <freeDiskSpaceThreshold>500MiB</freeDiskSpaceThreshold>
//!   </hudson.node__monitors.DiskSpaceMonitorNodeProperty>
//! </nodeProperties>
//! ```
//!
//! Below that much free space in its work dir a node takes no new builds. The property's
//! other children (`freeTempSpaceThreshold`, the warning thresholds) are kept in the node
//! XML and not interpreted.

use crate::node_xml::NodeConfig;
use crate::xml::{Element, XmlError};

/// The element that holds node properties.
pub const NODE_PROPERTIES: &str = "nodeProperties";
/// Jenkins' disk-space node property, with XStream's `_` → `__` escaping of its package.
pub const DISK_SPACE_PROPERTY: &str = "hudson.node__monitors.DiskSpaceMonitorNodeProperty";
/// The property's child that holds the work dir's threshold.
pub const FREE_DISK_SPACE_THRESHOLD: &str = "freeDiskSpaceThreshold";

/// What an unparsable size is told.
const EXPECTED_SIZE: &str = "expected a size such as 1GiB, 500MiB, 1.5GB or 2048 (bytes)";

/// Parses a size as Jenkins' `DiskSpace.parse` does: a decimal number, then optionally
/// `K`, `M`, `G` or `T` (any case; binary multipliers, so `MB` and `MiB` are both 2^20),
/// then optionally `i`, then optionally `B`. Spaces around the number are allowed. A
/// fraction of a byte is dropped. Negative, non-finite and over-`u64` sizes are refused
/// (Jenkins would take a negative threshold as "never").
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{EXPECTED_SIZE}; got {:?}", clip(text));
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_suffix('B').unwrap_or(&upper);
    let binary = rest.strip_suffix('I');
    let rest = binary.unwrap_or(rest);
    let (number, power) = match rest.chars().last() {
        Some('K') => (&rest[..rest.len() - 1], 1),
        Some('M') => (&rest[..rest.len() - 1], 2),
        Some('G') => (&rest[..rest.len() - 1], 3),
        Some('T') => (&rest[..rest.len() - 1], 4),
        // An `i` is only part of a unit (`KiB`).
        _ if binary.is_some() => return Err(bad()),
        _ => (rest, 0),
    };
    let number = number.trim();
    let plain_decimal = number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|c| *c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    if !plain_decimal {
        return Err(bad());
    }
    let value = number.parse::<f64>().map_err(|_| bad())? * 1024f64.powi(power);
    // 2^64, the first f64 past u64::MAX.
    if !value.is_finite() || value >= 18_446_744_073_709_551_616.0 {
        return Err(format!("{:?} is larger than any disk", clip(text)));
    }
    Ok(value as u64)
}

/// The node's own threshold in bytes: `None` when it sets none (no property, or an empty
/// `freeDiskSpaceThreshold`); an error naming the element when the size cannot be parsed.
pub fn node_threshold(config: &NodeConfig) -> Result<Option<u64>, XmlError> {
    let Some(text) = threshold_text(config) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    parse_size(&text)
        .map(Some)
        .map_err(|reason| XmlError::bad_value(FREE_DISK_SPACE_THRESHOLD, &text, reason))
}

/// The text of the first `freeDiskSpaceThreshold` of the first disk-space property.
fn threshold_text(config: &NodeConfig) -> Option<String> {
    config
        .other_elements
        .iter()
        .filter(|e| e.name == NODE_PROPERTIES)
        .flat_map(Element::child_elements)
        .find(|e| e.name == DISK_SPACE_PROPERTY)?
        .child_text(FREE_DISK_SPACE_THRESHOLD)
}

/// At most the first 40 characters of what the user wrote, for an error message.
fn clip(text: &str) -> String {
    const MAX_QUOTED: usize = 40;
    text.chars().take(MAX_QUOTED).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    const TIB: u64 = 1024 * GIB;

    #[test]
    fn sizes_parse_as_jenkins_parses_them() {
        for (text, bytes) in [
            ("1GiB", GIB),
            ("1GB", GIB),
            ("1g", GIB),
            ("1G", GIB),
            ("500MB", 500 * MIB),
            ("500MiB", 500 * MIB),
            ("500mib", 500 * MIB),
            ("1.5GB", GIB + GIB / 2),
            ("0.5m", MIB / 2),
            ("200KiB", 200 * KIB),
            ("2T", 2 * TIB),
            ("2048", 2048),
            ("2048B", 2048),
            (" 500 MB ", 500 * MIB),
            ("0", 0),
            ("1.7", 1),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_expected_form() {
        for text in [
            "", "GB", "lots", "1.2.3G", "-1GB", "1 2GB", "1e3", "NaN", "1X", "1iB", "1KM", "1,5G",
            "i", "B",
        ] {
            let error = parse_size(text).unwrap_err();
            assert!(error.starts_with(EXPECTED_SIZE), "{text}: {error}");
        }
        assert_eq!(
            parse_size("99999999T"),
            Err("\"99999999T\" is larger than any disk".into())
        );
    }

    fn node_with(properties: &str) -> NodeConfig {
        NodeConfig::from_xml(&format!(
            "<slave><name>n</name><nodeProperties>{properties}</nodeProperties></slave>"
        ))
        .unwrap()
    }

    #[test]
    fn the_node_property_sets_the_threshold() {
        let node = node_with(
            "<hudson.slaves.EnvironmentVariablesNodeProperty/>\
             <hudson.node__monitors.DiskSpaceMonitorNodeProperty>\
             <freeDiskSpaceThreshold>500MiB</freeDiskSpaceThreshold>\
             <freeTempSpaceThreshold>1GiB</freeTempSpaceThreshold>\
             <freeDiskSpaceWarningThreshold>2GiB</freeDiskSpaceWarningThreshold>\
             </hudson.node__monitors.DiskSpaceMonitorNodeProperty>",
        );
        assert_eq!(node_threshold(&node), Ok(Some(500 * MIB)));
        // Kept and written back as it came.
        let again = NodeConfig::from_xml(&node.to_xml()).unwrap();
        assert_eq!(node_threshold(&again), Ok(Some(500 * MIB)));
        assert!(again.to_xml().contains("<freeTempSpaceThreshold>1GiB"));
    }

    #[test]
    fn no_property_or_an_empty_threshold_leaves_the_default() {
        assert_eq!(node_threshold(&NodeConfig::inbound("n")), Ok(None));
        assert_eq!(node_threshold(&node_with("")), Ok(None));
        let empty = node_with(
            "<hudson.node__monitors.DiskSpaceMonitorNodeProperty>\
             <freeDiskSpaceThreshold> </freeDiskSpaceThreshold>\
             </hudson.node__monitors.DiskSpaceMonitorNodeProperty>",
        );
        assert_eq!(node_threshold(&empty), Ok(None));
    }

    #[test]
    fn an_unparsable_threshold_names_the_element() {
        let node = node_with(
            "<hudson.node__monitors.DiskSpaceMonitorNodeProperty>\
             <freeDiskSpaceThreshold>lots</freeDiskSpaceThreshold>\
             </hudson.node__monitors.DiskSpaceMonitorNodeProperty>",
        );
        assert_eq!(
            node_threshold(&node).unwrap_err().to_string(),
            format!(
                "invalid value \"lots\" in <freeDiskSpaceThreshold>: {EXPECTED_SIZE}; got \"lots\""
            )
        );
    }
}
