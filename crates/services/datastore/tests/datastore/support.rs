//! The shared test helpers (plexus-store's `testing`, feature `test-util`).

pub(crate) use plexus_store::testing::{PATIENCE, Place, event, payload_of, postgres_through};
