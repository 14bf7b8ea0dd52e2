//! The same-origin rule against cross-site requests: a browser that holds credentials for
//! the controller (Basic ones it was given, later a session) sends them along with any
//! site's forms and WebSockets, so a request that changes something, or opens a WebSocket,
//! is refused when it says it comes from another origin.
//!
//! Browsers say where a request comes from: `Origin` on every cross-site POST and every
//! WebSocket (`null` from sandboxed frames, `file:` pages and some redirects), `Referer` on
//! older same-site forms. A request that carries neither comes from a program (curl,
//! python-jenkins, websocat, our agent and cli), which a page cannot drive: it passes.
//!
//! WebSocket routes a browser can reach with credentials it holds call [`websocket`]
//! before their upgrade: `/wsecho` does, and so must the SSH and terminal routes to come.
//! `/cli/ws` keeps Jenkins' stricter rule (an `Origin` is required), in `cli::ws`.
//! `/wsagents/` needs neither: it authenticates with the node secret in headers a page
//! cannot set, never with credentials a browser holds.

use axum::response::{IntoResponse, Response};
use http::header::{ORIGIN, REFERER};
use http::{HeaderMap, StatusCode};

use crate::config::Config;

/// The reason a refused request gets, on one line.
pub const MSG_CROSS_ORIGIN: &str = "Cross-origin request refused: it comes from another site than this controller (check your reverse proxy's Host and --url)";

/// Why a request was refused, for the log; the client gets [`MSG_CROSS_ORIGIN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossOrigin {
    /// What the request said it came from (`Origin`, or `Referer`'s origin), or `null`.
    pub claimed: String,
    /// What it should have been; `None` when the request named no host.
    pub expected: Option<String>,
}

/// Checks the same-origin rule on a request's headers.
pub fn check(config: &Config, headers: &HeaderMap) -> Result<(), CrossOrigin> {
    let claimed = match claimed_origin(headers) {
        Some(claimed) => claimed,
        None => return Ok(()),
    };
    let expected = config.origin_for(headers);
    if expected.as_deref() == Some(claimed.as_str()) {
        Ok(())
    } else {
        Err(CrossOrigin { claimed, expected })
    }
}

/// The same-origin rule for the WebSocket route `route`, before its upgrade; a refusal is
/// logged, and answers 403 with [`MSG_CROSS_ORIGIN`] as a response. Browsers always send
/// `Origin` on a WebSocket; programs (websocat, our clients) send none, or the
/// controller's own, and pass.
pub fn websocket(config: &Config, headers: &HeaderMap, route: &str) -> Result<(), CrossOrigin> {
    check(config, headers).inspect_err(|refused| {
        tracing::warn!(
            route,
            origin = ?refused.claimed,
            expected = ?refused.expected.as_deref().unwrap_or("(no Host)"),
            "refused a cross-origin WebSocket"
        );
    })
}

impl IntoResponse for CrossOrigin {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, format!("{MSG_CROSS_ORIGIN}\n")).into_response()
    }
}

/// Where the request says it comes from: `Origin`, else the origin of `Referer`; a header
/// that is there but unreadable or opaque counts as `null`, which matches nothing.
fn claimed_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(ORIGIN) {
        return Some(
            origin
                .to_str()
                .ok()
                .map(|o| o.trim().to_owned())
                .unwrap_or_else(|| "null".to_owned()),
        );
    }
    let referer = headers.get(REFERER)?;
    let origin = referer
        .to_str()
        .ok()
        .and_then(|r| url::Url::parse(r).ok())
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_else(|| "null".to_owned());
    Some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config() -> Config {
        let mut config = Config::new("/nonexistent".into(), "127.0.0.1:8080".parse().unwrap());
        config.root_url = url::Url::parse("https://ci.example.com/jenkins/").unwrap();
        config.root_url_given = true;
        config
    }

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn our_origin_and_programs_pass_others_are_refused() {
        let c = config();
        assert_eq!(check(&c, &headers(&[])), Ok(()));
        assert_eq!(
            check(&c, &headers(&[(ORIGIN, "https://ci.example.com")])),
            Ok(())
        );
        assert_eq!(
            check(
                &c,
                &headers(&[(REFERER, "https://ci.example.com/jenkins/job/a/")])
            ),
            Ok(())
        );
        for (name, value, claimed) in [
            (ORIGIN, "http://evil.example", "http://evil.example"),
            (ORIGIN, "null", "null"),
            (ORIGIN, "http://ci.example.com", "http://ci.example.com"),
            (REFERER, "http://evil.example/form", "http://evil.example"),
            (REFERER, "not a url", "null"),
        ] {
            let refused = check(&c, &headers(&[(name.clone(), value)])).unwrap_err();
            assert_eq!(refused.claimed, claimed, "{name}: {value}");
            assert_eq!(refused.expected.as_deref(), Some("https://ci.example.com"));
        }
        // Origin wins over a Referer that would pass.
        assert!(
            check(
                &c,
                &headers(&[
                    (ORIGIN, "null"),
                    (REFERER, "https://ci.example.com/jenkins/")
                ])
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_cross_origin_websocket_gets_a_one_line_403() {
        let c = config();
        assert!(websocket(&c, &headers(&[]), "/wsecho").is_ok());
        let refused = websocket(&c, &headers(&[(ORIGIN, "null")]), "/wsecho").unwrap_err();
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(body, format!("{MSG_CROSS_ORIGIN}\n").as_bytes());
    }
}
