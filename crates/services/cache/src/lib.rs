//! The Cache family: key-value entries with TTLs in namespaces, embedded in the
//! process (moka) or on Redis/Valkey, offered to the node as the `cache` service.
//!
//! The folder template every built-in family shares:
//!
//! - `config`: the `[cache]` section ([`CacheConfig`]): the backend, the bounds,
//!   the stampede settings, which methods may load, the namespaces.
//! - [`CacheStore`]: what a backend does; [`MemoryStore`] (moka, a byte cap) and
//!   [`RedisStore`] (shared by every node on the same server, optionally with a
//!   local tier kept coherent over pub/sub).
//! - [`Cache`]: the cache every backend is used through: input checks naming the
//!   field, namespaces and TTLs, single-flight loading, the loader lease across
//!   processes, early refresh (XFetch), counters.
//! - [`CacheService`]: the `cache.*` methods (get, set, delete, get_many,
//!   invalidate, stats) with JSON Schemas derived from their params; `cache.get`
//!   with `load: "service.method"` calls that method through the node on a miss.
//! - [`CacheFamily`]: the [`Family`](plexus_node::family::Family) door: `[cache]`
//!   builds the store, the service and its metrics; on Redis it takes the node's one
//!   connection from the [`RedisSlot`](plexus_redis::RedisSlot), which brings the
//!   `redis` health component.
//! - [`CacheMetrics`]: its counters, named `plexus_cache_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), plexus_cache::CacheError> {
//! use plexus_cache::{Cache, CacheConfig};
//! use serde_json::json;
//!
//! let cache = Cache::in_memory(CacheConfig::default());
//! cache.set(None, "greeting", json!("hello"), Some(60_000)).await?;
//! assert_eq!(cache.get(None, "greeting").await?, Some(json!("hello")));
//! let got = cache
//!     .get_or_load(None, "answer", None, || async { Ok(json!(42)) })
//!     .await?;
//! assert_eq!((got.value, got.hit), (Some(json!(42)), false));
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]) and its macro
//!   [`cache_conformance!`].

mod cache;
pub mod config;
mod error;
mod family;
mod flight;
mod memory;
mod metrics;
mod redis;
mod service;
mod store;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use cache::{Cache, Got, NamespaceStats, Stats, refresh_early};
pub use config::{Backend, CacheConfig, NamespaceConfig};
pub use error::CacheError;
pub use family::CacheFamily;
pub use memory::MemoryStore;
pub use metrics::{CacheMetrics, Outcome, Rejected};
pub use redis::RedisStore;
pub use service::CacheService;
pub use store::{CacheStore, Entry, LocalStats};
