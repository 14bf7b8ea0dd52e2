//! Who is calling, and what they may do.
//!
//! Requests authenticate with `Authorization: Basic base64(user:apitoken)` (or
//! `user:password`) or `Authorization: Bearer apitoken`. No header means anonymous; a
//! header that does not check out is an error, never a silent fall back to anonymous.
//! What a caller may do is what the permissions granted to them (and to `authenticated`,
//! or to `anonymous`) give: [`permissions`].

pub mod accounts;
pub mod permissions;

use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use steward_protocol::job_xml::authorization::JobMatrix;

use crate::store::users::{self, UserRecord};
use crate::store::{Store, StoreError};

pub use permissions::{Permission, PermissionSet};

/// An authenticated caller, with what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials: what is granted to `anonymous`.
    Anonymous(PermissionSet),
    User(UserRecord),
}

/// Why a caller may not do something: the message Jenkins prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccessDenied(pub String);

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous(_) => "anonymous",
            Identity::User(u) => &u.name,
        }
    }

    /// Authorities as `who-am-i` lists them.
    pub fn authorities(&self) -> Vec<&'static str> {
        match self {
            Identity::Anonymous(_) => vec!["anonymous"],
            Identity::User(_) => vec!["authenticated"],
        }
    }

    /// Whether the caller's grants give `permission` (matrix-based security: the user's
    /// own and `authenticated`'s, or `anonymous`'s, with what they imply).
    pub fn has(&self, permission: Permission) -> bool {
        match self {
            Identity::Anonymous(set) => set.contains(permission),
            Identity::User(u) => u.permissions.contains(permission),
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), AccessDenied> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(self.denied(permission))
        }
    }

    fn denied(&self, permission: Permission) -> AccessDenied {
        AccessDenied(format!(
            "{} is missing the {} permission",
            self.name(),
            permission.display_name()
        ))
    }

    /// What the caller may do on a job with `matrix` (its `AuthorizationMatrixProperty`):
    /// the job's grants to the caller (and to `authenticated`, or to `anonymous`), with the
    /// global ones unless the job does not inherit them. Overall/Administer always counts,
    /// as in matrix-auth.
    pub fn on_job(&self, matrix: Option<&JobMatrix>) -> PermissionSet {
        let global = match self {
            Identity::Anonymous(set) => *set,
            Identity::User(u) => u.permissions,
        };
        let Some(matrix) = matrix else {
            return global;
        };
        let granted = matrix
            .grants
            .iter()
            .filter(|g| match self {
                Identity::Anonymous(_) => g.names_anonymous(),
                Identity::User(u) => g.names_user(&u.name) || g.names_authenticated(),
            })
            .filter_map(|g| Permission::parse_id(&g.permission))
            .collect::<PermissionSet>();
        if matrix.inherits || global.contains(Permission::OverallAdminister) {
            granted.union(global)
        } else {
            granted
        }
    }

    /// [`Identity::require`] on a job with `matrix`.
    pub fn require_on(
        &self,
        matrix: Option<&JobMatrix>,
        permission: Permission,
    ) -> Result<(), AccessDenied> {
        if self.on_job(matrix).contains(permission) {
            Ok(())
        } else {
            Err(self.denied(permission))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid authorization header: {0}")]
    Malformed(&'static str),
    #[error("Bad credentials")]
    BadCredentials,
    /// Credentials that worked when a CLI session opened and no longer do.
    #[error(
        "Bad credentials: the API token or password this session opened with is no longer valid (revoked or changed)"
    )]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest token accepted; real tokens are 34 characters.
const MAX_TOKEN_LEN: usize = 256;

/// Password checks at once: argon2id is slow on purpose, so guesses cannot take every core.
const PASSWORD_CHECKS_AT_ONCE: usize = 2;
static PASSWORD_CHECKS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(PASSWORD_CHECKS_AT_ONCE));

/// How often a token's last use is written, in seconds.
const TOUCH_EVERY_SECONDS: i64 = 60;
/// Most tokens whose last write this process remembers; past it the memory starts over
/// (a few extra writes, never a missed one).
const MAX_TOUCHES_REMEMBERED: usize = 10_000;
static TOUCHED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<i64, i64>>> =
    std::sync::LazyLock::new(Default::default);

/// Whether token `id`'s use at `now` is to be written (not written in the last minute).
fn touch_due(id: i64, now: i64) -> bool {
    let mut touched = TOUCHED.lock().unwrap_or_else(|e| e.into_inner());
    if touched.len() >= MAX_TOUCHES_REMEMBERED {
        touched.clear();
    }
    match touched.get(&id) {
        Some(last) if now - last < TOUCH_EVERY_SECONDS => false,
        _ => {
            touched.insert(id, now);
            true
        }
    }
}

/// Authenticates a request from its `Authorization` header: `Basic user:token`,
/// `Basic user:password` (a password works wherever a token does, as in Jenkins), or
/// `Bearer token`. No header is anonymous, with `anonymous`'s grants.
pub async fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Identity, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        let permissions = store
            .read(|c| users::permissions_of(c, &[users::ANONYMOUS]))
            .await?;
        return Ok(Identity::Anonymous(permissions));
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
    let by_token = {
        let user = user.clone();
        store
            .read(move |c| users::find_by_token(c, user.as_deref(), &hash))
            .await?
    };
    if let Some((record, token_id)) = by_token {
        // When it was last used, for `list-api-tokens`: written at most once a minute per
        // token, in a task of its own, so authenticating never waits for the store's writer
        // and a busy script does not queue a write per request.
        let now = crate::store::now_unix();
        if !touch_due(token_id, now) {
            return Ok(Identity::User(record));
        }
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = store
                .call(move |c| users::touch_token(c, token_id, now))
                .await
            {
                tracing::debug!(error = ?e.to_string(), "cannot record a token's use");
            }
        });
        return Ok(Identity::User(record));
    }
    let Some(user) = user else {
        return Err(AuthError::BadCredentials);
    };
    let name = user.clone();
    let Some(stored) = store.read(move |c| users::password_hash(c, &name)).await? else {
        return Err(AuthError::BadCredentials);
    };
    let Ok(_check) = PASSWORD_CHECKS.acquire().await else {
        return Err(AuthError::BadCredentials);
    };
    let matches = tokio::task::spawn_blocking(move || users::verify_password(&token, &stored))
        .await
        .unwrap_or(false);
    if !matches {
        return Err(AuthError::BadCredentials);
    }
    let name = user.clone();
    store
        .read(move |c| users::get(c, &name))
        .await?
        .map(Identity::User)
        .ok_or(AuthError::BadCredentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Identity {
        Identity::User(UserRecord {
            name: "admin".into(),
            full_name: "admin".into(),
            permissions: PermissionSet::all(),
        })
    }

    #[test]
    fn a_tokens_use_is_written_once_a_minute() {
        let id = -42; // no real token has a negative id
        assert!(touch_due(id, 1_000));
        assert!(!touch_due(id, 1_030));
        assert!(touch_due(id, 1_060));
    }

    #[test]
    fn anonymous_is_denied_with_jenkins_message() {
        assert_eq!(
            Identity::Anonymous(PermissionSet::EMPTY)
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
        assert_eq!(
            authenticate(&store, &h).await.unwrap(),
            Identity::Anonymous(PermissionSet::EMPTY)
        );
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
