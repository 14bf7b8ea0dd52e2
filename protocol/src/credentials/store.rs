//! The `STORE` and `DOMAIN` arguments of the credentials commands, and the messages the
//! commands fail with.
//!
//! A store id is `Provider::Resolver::ContextPath`. Steward has one store, Jenkins' system
//! store, `system::system::jenkins`: the provider and the resolver may each be given by any
//! of the names Jenkins accepts for them (the short name, the class's simple name, the full
//! class name), and the context path is `jenkins`. It has one domain, the global one, given
//! as `_`, `(global)` or an empty or blank argument. Refusals carry the plugin's own texts.

use crate::shown::shown;

/// The system store's id, as Jenkins' documentation writes it.
pub const SYSTEM_STORE: &str = "system::system::jenkins";
/// The global domain's name in URLs and commands.
pub const GLOBAL_DOMAIN: &str = "_";

/// The names Jenkins resolves to the system credentials provider.
const SYSTEM_PROVIDER_NAMES: [&str; 3] = [
    "system",
    "SystemCredentialsProvider",
    "com.cloudbees.plugins.credentials.SystemCredentialsProvider$ProviderImpl",
];
/// The names Jenkins resolves to the resolver of the Jenkins instance itself.
const SYSTEM_RESOLVER_NAMES: [&str; 3] = [
    "system",
    "SystemContextResolver",
    "com.cloudbees.plugins.credentials.CredentialsSelectHelper$SystemContextResolver",
];
/// The names of Jenkins' item and user resolvers: known, but the system provider has no
/// store in their contexts.
const OTHER_RESOLVER_NAMES: [&str; 6] = [
    "item",
    "ItemContextResolver",
    "com.cloudbees.plugins.credentials.CredentialsSelectHelper$ItemContextResolver",
    "user",
    "UserContextResolver",
    "com.cloudbees.plugins.credentials.CredentialsSelectHelper$UserContextResolver",
];
/// The context path of the Jenkins instance.
const SYSTEM_CONTEXT: &str = "jenkins";

/// Jenkins' system credentials store, the one store Steward has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemStore;

/// The global domain, the one domain Steward has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalDomain;

/// Why a store id was refused, in the plugin's words; each quotes the whole id (escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("Malformed store identifier, expecting Provider::Resolver::ContextPath got {0}")]
    Malformed(String),
    #[error("The specified provider {0} cannot be uniquely identified.")]
    NoSuchProvider(String),
    #[error("The specified resolver {0} cannot be uniquely identified.")]
    NoSuchResolver(String),
    #[error("The specified context path {0} is not resolving to an object.")]
    NoSuchContext(String),
    #[error("The specified provider does not have a credentials store in the specified context.")]
    NoStore(String),
}

impl StoreError {
    /// A line to print after the error: what Steward has instead.
    pub fn hint(&self) -> String {
        format!(
            "Steward has one credentials store, {SYSTEM_STORE}, with the global domain ({GLOBAL_DOMAIN})."
        )
    }
}

/// How a credentials command fails after its arguments parsed: the plugin's message, which
/// the command prints on stderr, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandFailure {
    /// The domain argument names no domain of the store.
    #[error("No such domain")]
    NoSuchDomain,
    /// No credential of the domain has the id.
    #[error("No such credential")]
    NoSuchCredential,
    /// `create-credentials-by-xml` of an id the domain has, or an update that changed
    /// nothing.
    #[error("No change")]
    NoChange,
    /// `delete-credentials` could not remove it.
    #[error("Not deleted")]
    NotDeleted,
}

impl CommandFailure {
    pub fn exit_code(self) -> i32 {
        match self {
            CommandFailure::NoSuchDomain => 2,
            CommandFailure::NoSuchCredential => 3,
            CommandFailure::NoChange | CommandFailure::NotDeleted => 1,
        }
    }
}

/// Parses a store id as Jenkins' `CredentialsSelectHelper.resolveForCLI` does, checking the
/// same things in the same order.
pub fn parse_store(id: &str) -> Result<SystemStore, StoreError> {
    let quoted = || shown(id).into_owned();
    // Two `::` separators, the provider and the context path not empty (the resolver may be,
    // and is then unknown).
    let Some((provider, rest)) = id.split_once("::") else {
        return Err(StoreError::Malformed(quoted()));
    };
    let Some((resolver, context)) = rest.split_once("::") else {
        return Err(StoreError::Malformed(quoted()));
    };
    if provider.is_empty() || context.is_empty() {
        return Err(StoreError::Malformed(quoted()));
    }
    if !SYSTEM_PROVIDER_NAMES.contains(&provider) {
        return Err(StoreError::NoSuchProvider(quoted()));
    }
    if OTHER_RESOLVER_NAMES.contains(&resolver) {
        // Jenkins would first look the item or user up; either way there is no store.
        return Err(StoreError::NoStore(quoted()));
    }
    if !SYSTEM_RESOLVER_NAMES.contains(&resolver) {
        return Err(StoreError::NoSuchResolver(quoted()));
    }
    if context != SYSTEM_CONTEXT {
        return Err(StoreError::NoSuchContext(quoted()));
    }
    Ok(SystemStore)
}

/// Parses a domain argument: `_`, `(global)`, empty or blank is the global domain; any other
/// name is a domain Steward does not have.
pub fn parse_domain(name: &str) -> Result<GlobalDomain, CommandFailure> {
    if name == GLOBAL_DOMAIN || name == "(global)" || name.trim().is_empty() {
        Ok(GlobalDomain)
    } else {
        Err(CommandFailure::NoSuchDomain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_system_store_parses() {
        for provider in SYSTEM_PROVIDER_NAMES {
            for resolver in SYSTEM_RESOLVER_NAMES {
                let id = format!("{provider}::{resolver}::jenkins");
                assert_eq!(parse_store(&id), Ok(SystemStore), "{id}");
            }
        }
    }

    #[test]
    fn refusals_use_the_plugin_texts() {
        let err = |id: &str| parse_store(id).unwrap_err().to_string();
        assert_eq!(
            err("system"),
            "Malformed store identifier, expecting Provider::Resolver::ContextPath got system"
        );
        for malformed in [
            "system::system",
            "::system::jenkins",
            "system::system::",
            "a::b",
        ] {
            assert!(
                matches!(parse_store(malformed), Err(StoreError::Malformed(_))),
                "{malformed}"
            );
        }
        assert_eq!(
            err("folder::item::a/b"),
            "The specified provider folder::item::a/b cannot be uniquely identified."
        );
        assert_eq!(
            err("system::::jenkins"),
            "The specified resolver system::::jenkins cannot be uniquely identified."
        );
        assert_eq!(
            err("system::system::hudson"),
            "The specified context path system::system::hudson is not resolving to an object."
        );
        assert_eq!(
            err("system::system::jenkins::x"),
            "The specified context path system::system::jenkins::x is not resolving to an object."
        );
        assert_eq!(
            err("system::item::my-job"),
            "The specified provider does not have a credentials store in the specified context."
        );
        assert!(err("system::x\u{1b}[2J::jenkins").contains("x\\u{1b}[2J"));
    }

    #[test]
    fn the_global_domain_has_four_spellings() {
        for name in ["_", "(global)", "", "  "] {
            assert_eq!(parse_domain(name), Ok(GlobalDomain), "{name:?}");
        }
        assert_eq!(parse_domain("smokes"), Err(CommandFailure::NoSuchDomain));
        assert_eq!(CommandFailure::NoSuchDomain.to_string(), "No such domain");
        assert_eq!(CommandFailure::NoSuchDomain.exit_code(), 2);
        assert_eq!(
            CommandFailure::NoSuchCredential.to_string(),
            "No such credential"
        );
        assert_eq!(CommandFailure::NoSuchCredential.exit_code(), 3);
        assert_eq!(CommandFailure::NoChange.exit_code(), 1);
    }
}
