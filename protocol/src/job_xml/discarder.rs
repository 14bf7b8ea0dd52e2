//! "Discard old builds": the job's build discarder, as Jenkins writes it.
//!
//! ```xml
//! <properties>
//!   <jenkins.model.BuildDiscarderProperty>
//!     <strategy class="hudson.tasks.LogRotator">
//!       <daysToKeep>30</daysToKeep>
//!       <numToKeep>10</numToKeep>
//!       <artifactDaysToKeep>-1</artifactDaysToKeep>
//!       <artifactNumToKeep>-1</artifactNumToKeep>
//!     </strategy>
//!   </jenkins.model.BuildDiscarderProperty>
//! </properties>
//! ```
//!
//! Jobs written before Jenkins 1.503 hold the same `LogRotator` as a top-level
//! `<logRotator class="hudson.tasks.LogRotator">`; it is read too. `-1` (or an empty
//! element, or none) means "no limit". The artifact limits are kept but mean nothing here:
//! Steward keeps no artifacts yet. Strategies of other classes are kept and not applied.
//! The element stays in the document as it was written; this is only a reading of it.

use crate::xml::{Element, XmlError};

/// The property holding the build discarder.
pub const DISCARDER_PROPERTY: &str = "jenkins.model.BuildDiscarderProperty";
/// The one discarding strategy Jenkins ships.
pub const LOG_ROTATOR: &str = "hudson.tasks.LogRotator";
/// The pre-1.503 top-level element.
pub const LEGACY_LOG_ROTATOR: &str = "logRotator";

/// Which ended builds a job keeps; the rest are deleted when a build ends.
///
/// As in Jenkins, a build is never discarded while it runs, nor when it is the job's last
/// successful or last stable build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildDiscarder {
    /// Builds started more than this many days ago are discarded.
    pub days_to_keep: Option<u32>,
    /// Only this many of the newest builds (running ones included) are kept.
    pub num_to_keep: Option<u32>,
}

impl BuildDiscarder {
    /// Whether it discards anything at all.
    pub fn limits_anything(&self) -> bool {
        self.days_to_keep.is_some() || self.num_to_keep.is_some()
    }
}

/// Reads a `LogRotator`, either the `<strategy>` of the property or the legacy element;
/// `Ok(None)` when the strategy is of another class.
pub(super) fn read_log_rotator(element: &Element) -> Result<Option<BuildDiscarder>, XmlError> {
    let class = element.attribute("class").unwrap_or(LOG_ROTATOR);
    if class != LOG_ROTATOR {
        return Ok(None);
    }
    Ok(Some(BuildDiscarder {
        days_to_keep: limit(element, "daysToKeep")?,
        num_to_keep: limit(element, "numToKeep")?,
    }))
}

/// Reads the property: its `<strategy>`, if any.
pub(super) fn read_property(property: &Element) -> Result<Option<BuildDiscarder>, XmlError> {
    let Some(strategy) = property.only_child("strategy")? else {
        return Ok(None);
    };
    read_log_rotator(strategy)
}

/// One limit: absent, empty or `-1` is none.
fn limit(parent: &Element, name: &str) -> Result<Option<u32>, XmlError> {
    let Some(element) = parent.only_child(name)? else {
        return Ok(None);
    };
    let text = element.text();
    let value = text.trim();
    if value.is_empty() || value == "-1" {
        return Ok(None);
    }
    value.parse::<u32>().map(Some).map_err(|_| {
        XmlError::bad_value(
            name,
            value,
            "expected a whole number of 0 or more, or -1 for no limit",
        )
    })
}
