//! The family's configuration section, `[store]`: a [`StoreConfig`] (which
//! database, pool bounds, the limits the store holds to), read and checked so that
//! a problem is named by its full path (`store.url`). Without the section the
//! DataStore is SQLite in the node's data directory (`plexus-data/plexus.db`);
//! `[node] datastore = false` switches the family off.

use plexus_node::family::{FamilyError, NodeSection, checked, typed};
pub use plexus_store::StoreConfig;
use serde_json::Value;

/// The section the family reads.
pub const SECTION: &str = "store";

/// The store configuration in force: `[store]`, or SQLite in the data directory.
pub fn settings(section: Option<&Value>, node: &NodeSection) -> Result<StoreConfig, FamilyError> {
    match section {
        Some(value) => typed(value, SECTION),
        None => Ok(defaults(node)),
    }
}

/// The section's defaults: SQLite (`plexus.db`) in `node.data_dir`.
pub fn defaults(node: &NodeSection) -> StoreConfig {
    StoreConfig::sqlite_in(&node.data_dir)
}

/// Reads and checks the section, naming the first problem under `store.`.
pub fn check(section: Option<&Value>, node: &NodeSection) -> Result<StoreConfig, FamilyError> {
    let settings = settings(section, node)?;
    checked(&settings, SECTION)?;
    Ok(settings)
}
