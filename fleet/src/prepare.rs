//! A controller home with the fleet's nodes already in it, written with the controller's
//! own store code before the controller starts: creating 10,000 nodes one `create-node` at a
//! time would take longer than the measurements.

use std::path::Path;

use anyhow::Context;
use steward_controller::home::Home;
use steward_controller::store::{Store, nodes};
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::secret::SecretKey;

/// The name of simulated agent `i` (0-based): `fleet-00001`, …
pub fn node_name(i: usize) -> String {
    format!("fleet-{:05}", i + 1)
}

/// Prepares `root` as a home with `count` inbound nodes; returns the node-secret key.
pub async fn home_with_nodes(root: &Path, count: usize) -> anyhow::Result<SecretKey> {
    let home = Home::prepare(root)?;
    let key = home.load_or_create_hmac_key()?;
    let store = Store::open(&home.database()).context("opening the home's database")?;
    store
        .call(move |conn| {
            let tx = conn.transaction()?;
            for i in 0..count {
                let name = node_name(i);
                nodes::insert(&tx, &name, &NodeConfig::inbound(name.clone()).to_xml())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .context("creating the nodes")?;
    Ok(key)
}
