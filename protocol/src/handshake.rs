//! The inbound-agent WebSocket handshake on `GET /wsagents/` (compat §1), plus Steward's
//! channel-version header.
//!
//! A Java `agent.jar` sends the §1.1 headers; our agent sends the same and adds
//! [`HEADER_CHANNEL_PROTOCOL`] listing the channel versions it speaks. The controller answers
//! with the one it chose. A request without that header is a Java remoting agent.

use std::fmt;

/// Path of the agent endpoint, relative to the root URL (always with the trailing slash).
pub const WSAGENTS_PATH: &str = "wsagents/";
/// Path the agent polls until it answers 200 before each connection attempt.
pub const LOGIN_PATH: &str = "login";

pub const HEADER_NODE_NAME: &str = "Node-Name";
pub const HEADER_SECRET_KEY: &str = "Secret-Key";
pub const HEADER_REMOTING_CAPABILITY: &str = "X-Remoting-Capability";
pub const HEADER_CONNECTION_COOKIE: &str = "Connection-Cookie";
pub const HEADER_REMOTING_MINIMUM_VERSION: &str = "X-Remoting-Minimum-Version";
/// Steward's own header: on the request, the channel versions the agent speaks
/// (`steward-channel/1` or `steward-channel/1,2`); on the 101, the one chosen.
pub const HEADER_CHANNEL_PROTOCOL: &str = "X-Steward-Channel";

/// Name of our channel protocol as it appears in [`HEADER_CHANNEL_PROTOCOL`].
pub const CHANNEL_PROTOCOL_NAME: &str = "steward-channel";
/// Channel versions this build speaks, oldest first.
pub const CHANNEL_VERSIONS: &[u16] = &[1];

/// The capability blob both Jenkins sides send today (compat §1.4); opaque to us.
pub const REMOTING_CAPABILITY: &str =
    "rO0ABXNyABpodWRzb24ucmVtb3RpbmcuQ2FwYWJpbGl0eQAAAAAAAAABAgABSgAEbWFza3hwAAAAAAAAAf4=";
/// Minimum remoting version Jenkins announces today (compat §1.2).
pub const REMOTING_MINIMUM_VERSION: &str = "3176.v207ec082a_8c0";

/// 400 body when one of the three required headers is missing.
pub const MSG_MISSING_HEADERS: &str =
    "This endpoint is only for use from agent.jar in WebSocket mode";
/// 400 body for an unknown node.
pub const MSG_NO_SUCH_AGENT: &str = "no such agent";

/// 400 body for a node whose launcher is not inbound.
pub fn msg_not_inbound(name: &str) -> String {
    format!("{name} is not an inbound agent")
}

/// 400 body for a node that already has a live connection.
pub fn msg_already_connected(name: &str) -> String {
    format!("{name} is already connected to this controller. Rejecting this connection.")
}

/// Length of a connection cookie: 32 random bytes as lowercase hex.
pub const CONNECTION_COOKIE_LEN: usize = 64;

/// Whether a presented cookie has the shape the controller hands out.
pub fn is_well_formed_cookie(cookie: &str) -> bool {
    cookie.len() == CONNECTION_COOKIE_LEN
        && cookie
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value an agent puts in [`HEADER_CHANNEL_PROTOCOL`] for the versions it speaks.
pub fn channel_offer(versions: &[u16]) -> String {
    let list: Vec<String> = versions.iter().map(u16::to_string).collect();
    format!("{CHANNEL_PROTOCOL_NAME}/{}", list.join(","))
}

/// The value a controller answers with once it chose `version`.
pub fn channel_answer(version: u16) -> String {
    format!("{CHANNEL_PROTOCOL_NAME}/{version}")
}

/// Why an offer in [`HEADER_CHANNEL_PROTOCOL`] could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelVersionError {
    #[error(
        "malformed {HEADER_CHANNEL_PROTOCOL} header {0:?}: expected {CHANNEL_PROTOCOL_NAME}/N[,N...]"
    )]
    Malformed(String),
    #[error("channel protocol version mismatch: the agent speaks {}, this controller speaks {}", VersionList(.offered), VersionList(.supported))]
    Mismatch {
        offered: Vec<u16>,
        supported: Vec<u16>,
    },
}

struct VersionList<'a>(&'a [u16]);

impl fmt::Display for VersionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .0
            .iter()
            .map(|v| format!("{CHANNEL_PROTOCOL_NAME}/{v}"))
            .collect();
        f.write_str(&list.join(", "))
    }
}

/// Most versions an offer may list.
pub const MAX_OFFERED_VERSIONS: usize = 16;
/// Longest piece of a malformed header quoted back in an error.
pub const MAX_QUOTED_HEADER: usize = 64;

/// Parses `steward-channel/1,2` into its versions.
pub fn parse_channel_versions(value: &str) -> Result<Vec<u16>, ChannelVersionError> {
    let malformed =
        || ChannelVersionError::Malformed(value.chars().take(MAX_QUOTED_HEADER).collect());
    let rest = value
        .trim()
        .strip_prefix(CHANNEL_PROTOCOL_NAME)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(malformed)?;
    let versions: Vec<u16> = rest
        .split(',')
        .map(|v| v.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .map_err(|_| malformed())?;
    if versions.is_empty() || versions.len() > MAX_OFFERED_VERSIONS {
        return Err(malformed());
    }
    Ok(versions)
}

/// Chooses the newest version both sides speak.
pub fn negotiate_channel_version(
    offer: &str,
    supported: &[u16],
) -> Result<u16, ChannelVersionError> {
    let offered = parse_channel_versions(offer)?;
    offered
        .iter()
        .filter(|v| supported.contains(v))
        .max()
        .copied()
        .ok_or(ChannelVersionError::Mismatch {
            offered,
            supported: supported.to_vec(),
        })
}

/// Reads the chosen version out of the controller's answer.
pub fn parse_channel_answer(value: &str) -> Result<u16, ChannelVersionError> {
    match parse_channel_versions(value)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(ChannelVersionError::Malformed(
            value.chars().take(MAX_QUOTED_HEADER).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_newest_common_version() {
        assert_eq!(
            negotiate_channel_version("steward-channel/1,2,3", &[1, 2]),
            Ok(2)
        );
        assert_eq!(
            negotiate_channel_version(&channel_offer(&[1]), CHANNEL_VERSIONS),
            Ok(1)
        );
    }

    #[test]
    fn mismatch_names_both_sides() {
        let err = negotiate_channel_version("steward-channel/7", &[1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel protocol version mismatch: the agent speaks steward-channel/7, this controller speaks steward-channel/1"
        );
    }

    #[test]
    fn malformed_offers_are_refused() {
        for bad in [
            "",
            "steward-channel",
            "other/1",
            "steward-channel/x",
            "steward-channel/99999",
        ] {
            assert!(
                matches!(
                    parse_channel_versions(bad),
                    Err(ChannelVersionError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cookie_shape() {
        assert!(is_well_formed_cookie(&"ab".repeat(32)));
        assert!(!is_well_formed_cookie(&"AB".repeat(32)));
        assert!(!is_well_formed_cookie("abc"));
    }
}
