//! The CLI endpoints and commands (compat §4–§7).
//!
//! Two transports carry PlainCLIProtocol frames: [`ws`] (`GET /cli/ws`, one frame per
//! binary message) and [`duplex`] (`POST /cli?remoting=false`, a download and an upload
//! request paired by `Session`). Both hand a [`session::Transport`] to [`session::run`],
//! which gathers the arguments, runs the command from [`commands`] with streamed stdin and
//! output ([`io`]), and always ends with `EXIT`.

pub mod commands;
pub mod duplex;
pub mod io;
pub mod session;
pub mod ws;
