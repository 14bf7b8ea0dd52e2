//! What the controller's answers say in their headers, read the same way by both
//! transports: whether an answer comes from a Jenkins-compatible controller at all, or from
//! a proxy answering for one it cannot reach; the reason of a refusal; the Steward
//! extensions the controller honours.

use http::HeaderMap;
use steward_protocol::plaincli::{FEATURE_INTERRUPT, HEADER_STEWARD_CLI, lists_feature};

/// Present on every answer of a Jenkins-compatible controller.
pub const HEADER_X_JENKINS: &str = "X-Jenkins";
/// Older Jenkins versions' name for [`HEADER_X_JENKINS`]; the real client accepts either.
pub const HEADER_X_HUDSON: &str = "X-Hudson";
/// Header in which the controller explains a refused CLI connection.
pub const HEADER_CLI_ERROR: &str = "X-CLI-Error";

/// Whether the answer carries a Jenkins-compatible controller's version header.
pub fn from_jenkins(headers: &HeaderMap) -> bool {
    headers.contains_key(HEADER_X_JENKINS) || headers.contains_key(HEADER_X_HUDSON)
}

/// Whether an answer with `status` and `headers` came from a proxy that could not get one
/// from the controller: a gateway error without the header every answer of a
/// Jenkins-compatible controller carries.
pub fn is_proxy_failure(status: u16, headers: &HeaderMap) -> bool {
    matches!(status, 502..=504) && !from_jenkins(headers)
}

/// The controller's reason for a refusal (`X-CLI-Error`), if it gave one.
pub fn cli_error(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_CLI_ERROR)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|m| !m.is_empty())
}

/// Whether the controller honours `INTERRUPT` (it lists the extension in `X-Steward-CLI`).
pub fn honours_interrupt(headers: &HeaderMap) -> bool {
    let values = headers.get_all(HEADER_STEWARD_CLI);
    lists_feature(
        values.iter().filter_map(|v| v.to_str().ok()),
        FEATURE_INTERRUPT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_proxys_gateway_error_is_told_from_the_controllers_own() {
        let mut headers = HeaderMap::new();
        assert!(is_proxy_failure(504, &headers));
        assert!(!is_proxy_failure(500, &headers));
        // The controller's own 503 is its answer, not a proxy's.
        headers.insert(HEADER_X_JENKINS, HeaderValue::from_static("2.479"));
        assert!(!is_proxy_failure(503, &headers));
    }

    #[test]
    fn refusal_reasons_and_extensions() {
        let mut headers = HeaderMap::new();
        assert_eq!(cli_error(&headers), None);
        headers.insert(HEADER_CLI_ERROR, HeaderValue::from_static("  "));
        assert_eq!(cli_error(&headers), None);
        headers.insert(HEADER_CLI_ERROR, HeaderValue::from_static(" Bad origin "));
        assert_eq!(cli_error(&headers).as_deref(), Some("Bad origin"));
        assert!(!honours_interrupt(&headers));
        headers.append(HEADER_STEWARD_CLI, HeaderValue::from_static("interrupt"));
        assert!(honours_interrupt(&headers));
    }
}
