//! The DataStore family: collections of JSON documents on SQLite or PostgreSQL,
//! offered to the node as the `datastore` service, with every mutating call of the
//! node kept in an audit trail read as the `audit` service.
//!
//! The engines, the document model, the query and filter builder and durability
//! (outbox, audit log, configuration history, relay) are `plexus-store`'s; this
//! crate is what turns them into a family of the node, in the folder template every
//! built-in family shares:
//!
//! - `config`: the `[store]` section ([`StoreConfig`]), read and checked naming a
//!   problem by its full path (`store.url`); without it, SQLite in `node.data_dir`.
//! - [`DataStoreFamily`]: the [`Family`](plexus_node::family::Family) door. Its
//!   section opens the database and brings the two services, the audit observer,
//!   the `database` health component, the store's metrics (`plexus_store_*`) and the
//!   configuration history kept in the database.
//! - [`DataStoreService`]: the `datastore.*` methods (put, get, delete, patch,
//!   query, count, create_collection, transaction, slow_queries), their JSON
//!   Schemas derived from the param types; [`service_error`] maps a
//!   [`StoreError`](plexus_store::StoreError) to the service error every front end
//!   words the same way.
//! - [`AuditObserver`] and [`AuditService`]: the audit trail written for every
//!   mutating call and read back by `audit.query`.
//! - [`database_component`]: the database as a health component whose heal action
//!   reconnects.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use plexus_datastore::DataStoreFamily;
//! use plexus_node::family::{Family, NodeSection};
//!
//! let section = serde_json::json!({"url": "sqlite://data/plexus.db"});
//! let parts = DataStoreFamily::new().open(Some(&section), &NodeSection::default()).await?;
//! assert_eq!(parts.services.len(), 2); // datastore, audit
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! None: both engines are always built, as `plexus-store` builds them; the choice
//! between them is the URL in `[store]`.

mod audit;
pub mod config;
mod durable;
mod family;
mod health;
mod service;

pub use audit::{AuditObserver, AuditService};
pub use config::StoreConfig;
pub use durable::{OutboxLog, outbox_error};
pub use family::DataStoreFamily;
pub use health::{COMPONENT, database_component};
pub use service::{DataStoreService, service_error};
