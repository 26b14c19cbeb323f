//! The family's configuration section, `[store]`: a [`StoreConfig`] (which
//! database, pool bounds, the limits the store holds to), read and checked so that
//! a problem is named by its full path (`store.url`). Without the section the
//! DataStore is SQLite in the node's data directory (`plexus-data/plexus.db`);
//! `[node] datastore = false` switches the family off.

pub use plexus_store::StoreConfig;

/// The section the family reads.
pub const SECTION: &str = "store";
