//! Inbound agents: the `/wsagents/` handshake, the live-connection registry, and the
//! session each accepted connection runs.
//!
//! Path of a connection: [`handshake::wsagents`] validates the request in Jenkins' order
//! (headers, node, secret, launcher, duplicate, upgrade), registers it in
//! [`registry::AgentRegistry`] and answers 101; [`session::run`] then exchanges hellos and
//! keeps the socket alive until it ends, which takes the node offline. When both sides offer
//! `mux`, [`mux::run`] carries the multiplexed channel and publishes its handle in the
//! registry for commands that run work on the agent, while [`monitors`] samples the node's
//! round trip, clock offset and free disk for `list-nodes` and `node-info`; [`disk_space`]
//! says when that free disk is too low for the node to take builds.

pub mod calls;
pub mod disk_space;
pub mod handshake;
pub mod monitors;
pub mod mux;
pub mod registry;
pub mod session;
