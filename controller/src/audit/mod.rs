//! The audit log: who changed what, and who used which privilege, when and from where.
//!
//! The services record as they act, each in the one function every surface calls (a job
//! created by `create-job` or by `POST /createItem` is recorded by `jobs::create`); the
//! surfaces hand them an [`Actor`]: the authenticated user and the client's address.
//! Sessions are recorded where they start and end (SSH in `http::ssh` and at the agent's
//! login call, terminals in `http::terminals`, breakpoints in `breakpoints`, agents in
//! `agents::session`).
//!
//! - [`entry`]: [`Actor`], [`Action`] and the entry with its size bounds.
//! - [`writer`]: [`AuditLog`], the handle services record through: a bounded queue that
//!   never makes a caller wait, and one task that writes what is queued in one store
//!   transaction at a time and prunes by age and count (`store::audit`).
//! - [`query`]: `-since` and `-user` as a filter, and an entry as a line or as JSON, for
//!   `audit-log` and `GET /audit-log/api/json`.
//!
//! No secret enters it: entries name things (a credential's id, a token's uuid, a key's
//! fingerprint, a parameter's name), never their values.

pub mod entry;
pub mod query;
pub mod writer;

pub use entry::{Action, Actor};
pub use writer::{AuditLog, Retention};

#[cfg(test)]
mod tests;
