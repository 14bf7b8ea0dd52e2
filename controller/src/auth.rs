//! Who is calling, and what they may do.
//!
//! Requests authenticate with `Authorization: Basic base64(user:apitoken)` or
//! `Authorization: Bearer apitoken`. No header means anonymous; a header that does not
//! check out is an error, never a silent fall back to anonymous.

use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::store::users::{self, UserRecord};
use crate::store::{Store, StoreError};

/// Permissions, named as Jenkins names them in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    OverallRead,
    OverallAdminister,
    AgentCreate,
    AgentConfigure,
    AgentDelete,
    AgentConnect,
    AgentDisconnect,
    AgentExtendedRead,
    /// Run processes and read or write files on an agent (our own; admins only).
    AgentExec,
    JobCreate,
    JobConfigure,
    JobDelete,
    JobRead,
    /// Read a job's configuration XML.
    JobExtendedRead,
    JobBuild,
    JobCancel,
    /// Open an SSH session into a running build's workspace, and hold, extend or resume its
    /// breakpoint (our own; admins only).
    JobDebug,
    /// Delete a build's record and console.
    RunDelete,
    /// Change a build's record (keep it forever).
    RunUpdate,
    /// Attach to a terminal, read-write or read-only (our own; admins only).
    TerminalAttach,
    /// Create, change, start, stop and delete terminals, and read their recordings (our
    /// own; admins only).
    TerminalConfigure,
    /// List credentials and read them without their secrets.
    CredentialsView,
    CredentialsCreate,
    CredentialsUpdate,
    CredentialsDelete,
}

impl Permission {
    pub fn display_name(self) -> &'static str {
        match self {
            Permission::OverallRead => "Overall/Read",
            Permission::OverallAdminister => "Overall/Administer",
            Permission::AgentCreate => "Agent/Create",
            Permission::AgentConfigure => "Agent/Configure",
            Permission::AgentDelete => "Agent/Delete",
            Permission::AgentConnect => "Agent/Connect",
            Permission::AgentDisconnect => "Agent/Disconnect",
            Permission::AgentExtendedRead => "Agent/ExtendedRead",
            Permission::AgentExec => "Agent/Exec",
            Permission::JobCreate => "Job/Create",
            Permission::JobConfigure => "Job/Configure",
            Permission::JobDelete => "Job/Delete",
            Permission::JobRead => "Job/Read",
            Permission::JobExtendedRead => "Job/ExtendedRead",
            Permission::JobBuild => "Job/Build",
            Permission::JobCancel => "Job/Cancel",
            Permission::JobDebug => "Job/Debug",
            Permission::RunDelete => "Run/Delete",
            Permission::RunUpdate => "Run/Update",
            Permission::TerminalAttach => "Terminal/Attach",
            Permission::TerminalConfigure => "Terminal/Configure",
            Permission::CredentialsView => "Credentials/View",
            Permission::CredentialsCreate => "Credentials/Create",
            Permission::CredentialsUpdate => "Credentials/Update",
            Permission::CredentialsDelete => "Credentials/Delete",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User(UserRecord),
}

/// Why a caller may not do something: the message Jenkins prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccessDenied(pub String);

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::User(u) => &u.name,
        }
    }

    /// Authorities as `who-am-i` lists them.
    pub fn authorities(&self) -> Vec<&'static str> {
        match self {
            Identity::Anonymous => vec!["anonymous"],
            Identity::User(_) => vec!["authenticated"],
        }
    }

    /// Security is on: anonymous has no permission, administrators have all, other users
    /// may read the controller and its jobs (not job configurations, which may hold
    /// secrets).
    pub fn has(&self, permission: Permission) -> bool {
        match self {
            Identity::Anonymous => false,
            Identity::User(u) if u.is_admin => true,
            Identity::User(_) => {
                matches!(permission, Permission::OverallRead | Permission::JobRead)
            }
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), AccessDenied> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(AccessDenied(format!(
                "{} is missing the {} permission",
                self.name(),
                permission.display_name()
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid authorization header: {0}")]
    Malformed(&'static str),
    #[error("Bad credentials")]
    BadCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest token accepted; real tokens are 34 characters.
const MAX_TOKEN_LEN: usize = 256;

/// Authenticates a request from its `Authorization` header.
pub async fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Identity, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(Identity::Anonymous);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed(
        "expected 'Basic' or 'Bearer' and a value",
    ))?;
    let (user, token) = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AuthError::Malformed("Basic value is not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| AuthError::Malformed("Basic value is not UTF-8"))?;
        let (user, token) = decoded
            .split_once(':')
            .ok_or(AuthError::Malformed("Basic value has no ':'"))?;
        (Some(user.to_owned()), token.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (None, rest.trim().to_owned())
    } else {
        return Err(AuthError::Malformed("expected 'Basic' or 'Bearer'"));
    };
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::BadCredentials);
    }
    let hash = users::token_hash(&token);
    // The read-only connection: nothing another request does in the store delays this.
    let found = store
        .read(move |c| users::find_by_token(c, user.as_deref(), &hash))
        .await?;
    found.map(Identity::User).ok_or(AuthError::BadCredentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Identity {
        Identity::User(UserRecord {
            name: "admin".into(),
            full_name: "admin".into(),
            is_admin: true,
        })
    }

    #[test]
    fn anonymous_is_denied_with_jenkins_message() {
        assert_eq!(
            Identity::Anonymous
                .require(Permission::OverallRead)
                .unwrap_err()
                .to_string(),
            "anonymous is missing the Overall/Read permission"
        );
        assert!(admin().require(Permission::AgentDelete).is_ok());
    }

    #[tokio::test]
    async fn headers_authenticate_or_fail_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let token = store
            .call(|c| users::ensure_admin(c, |_| Ok(())))
            .await
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(authenticate(&store, &h).await.unwrap(), Identity::Anonymous);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{token}"));
        h.insert(AUTHORIZATION, format!("Basic {basic}").parse().unwrap());
        assert_eq!(authenticate(&store, &h).await.unwrap().name(), "admin");
        h.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        assert_eq!(authenticate(&store, &h).await.unwrap().name(), "admin");
        h.insert(AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(matches!(
            authenticate(&store, &h).await,
            Err(AuthError::BadCredentials)
        ));
        let wrong_user = base64::engine::general_purpose::STANDARD.encode(format!("bob:{token}"));
        h.insert(
            AUTHORIZATION,
            format!("Basic {wrong_user}").parse().unwrap(),
        );
        assert!(matches!(
            authenticate(&store, &h).await,
            Err(AuthError::BadCredentials)
        ));
        h.insert(AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(matches!(
            authenticate(&store, &h).await,
            Err(AuthError::Malformed(_))
        ));
    }
}
