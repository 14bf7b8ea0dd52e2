//! What each fuzz target does with its input, shared by the libFuzzer targets in
//! `fuzz_targets/` (nightly) and by `protocol/tests/fuzz_corpus.rs`, which replays the corpus
//! through the same functions on stable. That test includes this file with `#[path]`, so it
//! depends on `steward_protocol` and `bytes` only.
//!
//! Every function takes the raw fuzzer input, feeds it to the decoders the way the controller
//! or the agent does, and panics only when a property fails: a decoder panicked, or something
//! it decoded does not survive being encoded and decoded again.
//!
//! - [`mux::mux_frame`]: channel frames (`channel::Frame`), and the OPEN headers and DATA
//!   payloads they carry.
//! - [`plaincli::plaincli_ws`], [`plaincli::plaincli_http`]: PlainCLI in both framings.
//! - [`xml::jnlp_xml`], [`xml::node_xml`]: JNLP documents and their encrypted form, node XML
//!   and the hardened XML reader under both.
//! - [`xml::job_xml`]: freestyle job XML and the build parameters it defines.
//! - [`handshake::handshake_headers`]: the `/wsagents/` header values.
//! - [`services::services`]: service requests, responses and exec events.
//! - [`label::label_expr`]: label expressions.
//! - [`seeds`]: valid inputs for each target, written with the encoders.

pub mod handshake;
pub mod label;
pub mod mux;
pub mod plaincli;
pub mod seeds;
pub mod services;
pub mod xml;

/// What a target does with one input; it panics when a property fails.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus directory, with the function each one runs.
pub const TARGETS: &[(&str, Target)] = &[
    ("mux_frame", mux::mux_frame),
    ("plaincli_ws", plaincli::plaincli_ws),
    ("plaincli_http", plaincli::plaincli_http),
    ("jnlp_xml", xml::jnlp_xml),
    ("node_xml", xml::node_xml),
    ("job_xml", xml::job_xml),
    ("handshake_headers", handshake::handshake_headers),
    ("services", services::services),
    ("label_expr", label::label_expr),
];
