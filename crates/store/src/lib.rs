//! The Plexus store: SQLite and PostgreSQL behind one trait, the DataStore document
//! model on top, durability, and query observability.
//!
//! - [`Store::connect`] opens the database a [`StoreConfig`]'s URL names
//!   (`sqlite://<path>` by default, `postgres://…` at scale), runs the migrations and
//!   keeps a pool whose bounds come from the configuration.
//! - [`DataStore`]: collections of JSON documents with ids and versions; put (insert,
//!   replace, upsert, with an optional expected version), get, delete, merge patch,
//!   query ([`Filter`], sort, projection, stable keyset cursors), count, secondary
//!   indexes declared per collection ([`CollectionSpec`]) and all-or-nothing
//!   transactions over several [`Op`]s; [`DataStore::fenced`] runs writes under a
//!   lock's fencing token ([`Fence`]) and refuses a stale holder's. SQLite and PostgreSQL return the same
//!   results: one conformance suite (`conformance`, feature `test-util`) runs
//!   unchanged on both, and on any other [`Backend`].
//! - [`Connection`]: the store's breaker on its database. A connection reset, or
//!   refused or not made within `connect_timeout_ms` (the pool retries a refusal
//!   until then), is [`StoreError::Unavailable`], never a pool timeout; then calls
//!   fail fast, one probe at a time reconnects, and a listener
//!   ([`Store::connection`]) hears the connection go and come back.
//! - [`StoreMetrics`]: statement latency by kind and collection, a bounded slow-query
//!   log, pool gauges and acquire latency, error counts by kind, transaction counts
//!   and durations, all under `plexus_store_*`.
//! - Durability ([`Outbox`], [`AuditLog`], [`StoreHistory`], [`Store::ping`]): durable
//!   events committed with their data change and relayed to the bus at least once,
//!   replay from an offset or a time, the audit trail (read as `audit.query`),
//!   configuration history that survives a restart, and the store's health check
//!   and reconnect heal action.
//!
//! The store knows nothing of services: the `datastore.*` and `audit.*` methods, the
//! database as a health component and the `[store]` section of a node are the
//! DataStore family's (crate `plexus-datastore`).
//!
//! SQL is assembled only by [`SqlBuilder`]: every value is a bound `$N` parameter,
//! and the few names rendered into SQL (collection and index names, field paths) pass
//! a strict grammar first.
//!
//! ```no_run
//! # async fn demo() -> Result<(), plexus_store::StoreError> {
//! use plexus_store::{CollectionSpec, DataStore, Filter, IndexSpec, PutMode, Query, StoreConfig};
//! use serde_json::json;
//!
//! let store = DataStore::connect(&StoreConfig::sqlite_in("data")).await?;
//! store
//!     .create_collection("cases", CollectionSpec::default().with_index(IndexSpec::new("by_status", &["status"])))
//!     .await?;
//! store.put("cases", "c1", &json!({"status": "open", "score": 4}), PutMode::Insert, None).await?;
//! let open = Filter::from_json(&json!({"field": "status", "eq": "open"}))?;
//! let page = store.query("cases", &Query::filter(open).limit(50)).await?;
//! assert_eq!(page.docs.len(), 1);
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the backend conformance suite, module `conformance`, and the
//!   `store_conformance!` macro that runs it as `#[tokio::test]`s on any backend;
//!   module `testing` (test databases on both engines, `on_both!`).

mod backend;
mod config;
#[cfg(feature = "test-util")]
pub mod conformance;
mod datastore;
mod document;
mod durable;
mod error;
mod fence;
mod filter;
mod link;
mod metrics;
pub mod postgres;
mod query;
mod sql;
pub mod sqlite;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;

pub use backend::{
    Backend, Budget, CmpOp, Dialect, DocRow, Param, PoolState, Scalar, Session, Statement,
};
pub use config::{BackendKind, StoreConfig};
pub use datastore::{
    DataStore, MAX_COLLECTION_NAME, MAX_INDEX_FIELDS, MAX_INDEX_NAME, PATCH_ATTEMPTS,
};
pub use document::{
    CollectionSpec, Document, IndexSpec, MAX_ID_LEN, Op, OpResult, PutMode, Stored, merge_patch,
};
pub use durable::{
    Appended, AuditConfig, AuditEntry, AuditError, AuditLog, AuditOutcome, AuditPage, AuditQuery,
    AuditRecord, Auditor, DEFAULT_SCOPE, Delivery, DeliveryState, Outbox, OutboxConfig,
    OutboxError, REDACTED, RelayConfig, RelayHandle, RelaySink, RelayStats, ReplayFrom, ReplayPage,
    Replayed, StoreHistory,
};
pub use error::StoreError;
pub use fence::{Fence, MAX_FENCE_LOCK};
pub use filter::{Condition, Filter, MAX_FILTER_DEPTH};
pub use link::{Connection, FIRST_PROBE_DELAY, MAX_PROBE_DELAY};
pub use metrics::{MAX_SLOW_SQL_LEN, SlowQuery, StatementKind, StoreMetrics};
/// The size of a document as the store counts it (re-exported from plexus-core).
pub use plexus_core::json_len;
#[doc(hidden)]
pub use query::QueryPlan;
pub use query::{MAX_PROJECTION, MAX_SORT_KEYS, Page, Query, Sort};
pub use sql::{FieldPath, MAX_PATH_SEGMENTS, MAX_SEGMENT_LEN, SqlBuilder, check_identifier};
pub use store::{Store, StoreSession};
