//! The credentials the client presents (compat §4): `-auth USER:TOKEN` becomes HTTP Basic,
//! `-bearer TOKEN` a bearer token. Both WebSocket and full-duplex HTTP send the same
//! `Authorization` header, built here once.
//!
//! The token never reaches a `Debug` line: [`Credentials`] prints `***` in its place.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Name of the request header carrying [`Credentials::header_value`].
pub const AUTHORIZATION: &str = "Authorization";

/// Who the client says it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `-auth USER:TOKEN`, or `JENKINS_USER_ID` + `JENKINS_API_TOKEN`.
    Basic { user: String, token: String },
    /// `-bearer TOKEN`.
    Bearer(String),
}

impl Credentials {
    /// Splits `USER:TOKEN` at the first colon (a token may contain colons, a user id not).
    pub fn basic_from_pair(pair: &str) -> Option<Self> {
        let (user, token) = pair.split_once(':')?;
        Some(Credentials::Basic {
            user: user.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The value of the `Authorization` header.
    pub fn header_value(&self) -> String {
        match self {
            Credentials::Basic { user, token } => {
                format!("Basic {}", STANDARD.encode(format!("{user}:{token}")))
            }
            Credentials::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_is_base64_of_the_pair() {
        let creds = Credentials::basic_from_pair("alice:tok:en").unwrap();
        // base64("alice:tok:en")
        assert_eq!(creds.header_value(), "Basic YWxpY2U6dG9rOmVu");
        assert_eq!(
            creds,
            Credentials::Basic {
                user: "alice".into(),
                token: "tok:en".into()
            }
        );
        assert_eq!(Credentials::basic_from_pair("no-colon"), None);
    }

    #[test]
    fn bearer_header_and_debug_hide_the_token() {
        let bearer = Credentials::Bearer("s3cret".into());
        assert_eq!(bearer.header_value(), "Bearer s3cret");
        assert_eq!(format!("{bearer:?}"), "Bearer(***)");
        let basic = Credentials::basic_from_pair("bob:s3cret").unwrap();
        assert_eq!(format!("{basic:?}"), "Basic(bob:***)");
    }
}
