//! `handshake_headers`: the header values of a `/wsagents/` request and of its 101 answer.
//!
//! Input: the values of `Node-Name`, `Secret-Key`, `Connection-Cookie`, `X-Steward-Channel`
//! (the agent's offer) and `X-Steward-Channel` (the controller's answer), separated by `\n`
//! (which no header value can hold). A value that is not UTF-8 counts as absent, as in the
//! controller.

use steward_protocol::handshake::{
    CHANNEL_VERSIONS, ChannelVersionError, MAX_OFFERED_VERSIONS, channel_answer, channel_offer,
    is_well_formed_cookie, negotiate_channel_version, parse_channel_answer, parse_channel_versions,
};
use steward_protocol::node_xml::validate_node_name;
use steward_protocol::secret::{NodeSecret, SecretKey};

/// Longest error message a refusal may carry back to the agent and into the log.
const MAX_REFUSAL_LEN: usize = 1024;

pub fn handshake_headers(data: &[u8]) {
    let mut values = data
        .split(|&b| b == b'\n')
        .map(|v| std::str::from_utf8(v).ok());
    let mut next = || values.next().flatten();
    let (name, secret, cookie, offer, answer) = (next(), next(), next(), next(), next());

    if let Some(name) = name {
        let _ = validate_node_name(name);
        let expected = SecretKey::from_bytes([7; 32]).node_secret(name);
        if let Some(secret) = secret {
            assert_eq!(expected.matches(secret), expected.expose() == secret);
        }
    }
    if let Some(secret) = secret
        && let Some(key) = NodeSecret::new(secret).jnlp_key()
    {
        assert_eq!(hex(&key), secret[..32].to_ascii_lowercase());
    }
    if let Some(cookie) = cookie {
        let _ = is_well_formed_cookie(cookie);
    }
    if let Some(offer) = offer {
        check_offer(offer);
    }
    if let Some(answer) = answer {
        match parse_channel_answer(answer) {
            Ok(v) => assert_eq!(parse_channel_answer(&channel_answer(v)), Ok(v)),
            Err(e) => assert_short(&e),
        }
    }
}

fn check_offer(offer: &str) {
    let parsed = parse_channel_versions(offer);
    if let Ok(versions) = &parsed {
        assert!((1..=MAX_OFFERED_VERSIONS).contains(&versions.len()));
        assert_eq!(
            parse_channel_versions(&channel_offer(versions)).as_ref(),
            Ok(versions)
        );
    }
    for supported in [CHANNEL_VERSIONS, &[1, 2, 7, u16::MAX]] {
        match negotiate_channel_version(offer, supported) {
            Ok(v) => {
                let offered = parsed.as_ref().expect("negotiated from a malformed offer");
                let best = offered.iter().filter(|o| supported.contains(o)).max();
                assert_eq!(best, Some(&v), "not the newest common version");
            }
            Err(e) => {
                match (&e, &parsed) {
                    (ChannelVersionError::Malformed(_), Err(_)) => {}
                    (ChannelVersionError::Mismatch { offered, .. }, Ok(versions)) => {
                        assert_eq!(offered, versions);
                        assert!(!offered.iter().any(|o| supported.contains(o)));
                    }
                    _ => panic!("{e:?} for an offer that parses as {parsed:?}"),
                }
                assert_short(&e);
            }
        }
    }
}

/// The refusal body quotes at most a bounded piece of what the agent sent.
fn assert_short(e: &ChannelVersionError) {
    let message = e.to_string();
    assert!(
        message.len() <= MAX_REFUSAL_LEN,
        "{} bytes: {message}",
        message.len()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
