//! The CLI endpoints and commands (compat §4–§7).
//!
//! Two transports carry PlainCLIProtocol frames: [`ws`] (`GET /cli/ws`, one frame per
//! binary message) and [`duplex`] (`POST /cli?remoting=false`, a download and an upload
//! request paired by `Session` in [`pairing`], the upload authenticated as the download).
//! Both hand a [`session::Transport`] to [`session::run`], which gathers the arguments,
//! runs the command from [`commands`] with streamed stdin and output ([`io`]), and always
//! ends with `EXIT`.

pub mod commands;
pub mod duplex;
pub mod io;
pub mod pairing;
pub mod session;
pub mod stop;
pub mod ws;

use http::HeaderMap;
use steward_protocol::plaincli::{FEATURE_INTERRUPT, HEADER_STEWARD_CLI, lists_feature};

/// The Steward extensions the controller honours, as its answers list them.
pub const FEATURES: &str = FEATURE_INTERRUPT;

/// Whether the client announced that it sends `INTERRUPT` itself.
fn explicit_interrupts(headers: &HeaderMap) -> bool {
    let values = headers.get_all(HEADER_STEWARD_CLI);
    lists_feature(
        values.iter().filter_map(|v| v.to_str().ok()),
        FEATURE_INTERRUPT,
    )
}
