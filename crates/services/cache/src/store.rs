//! [`CacheStore`]: what a backend of the cache does. The [`Cache`](crate::Cache) in
//! front of it checks input, resolves namespaces and TTLs, counts, and prevents
//! stampedes; a backend only keeps entries under full keys (`namespace:key`).

use std::time::Duration;

use serde_json::Value;

use crate::CacheError;

/// A cached value with what the cache needs to know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Its size as JSON text, in bytes.
    pub size: usize,
    /// How long it has left: its TTL when written, what remains when read.
    pub ttl: Duration,
    /// How long loading it took (zero when it was set, not loaded): early refresh
    /// reloads sooner for values that are slow to load.
    pub delta: Duration,
}

/// The in-process tier's occupancy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalStats {
    /// Entries held.
    pub entries: u64,
    /// Their keys and values, in bytes.
    pub bytes: u64,
}

/// A backend of the cache, keyed by full keys (`namespace:key`).
#[plexus_core::async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// Its name in `cache.stats`: `memory`, `redis` or `redis+local`.
    fn backend(&self) -> &'static str;

    /// The entry under `key`, if it is there and has time left.
    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError>;

    /// The entries under `keys`, in order.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError>;

    /// Writes `entry` under `key` for `entry.ttl`; `json` is its value as JSON text.
    async fn set(&self, key: &str, entry: Entry, json: &[u8]) -> Result<(), CacheError>;

    /// Removes `key`; whether it was there.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Removes every key that starts with `prefix`; how many.
    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64, CacheError>;

    /// Takes the loader lease of `key` for `ttl`: a token when this caller may load
    /// it, `None` while another process holds it. In a single process the cache's
    /// own single-flight is the lease, so the default always grants it.
    async fn lease(&self, key: &str, ttl: Duration) -> Result<Option<String>, CacheError> {
        let _ = (key, ttl);
        Ok(Some(String::new()))
    }

    /// Gives back a lease taken with `token` (a lease since taken by another is left
    /// alone).
    async fn release(&self, key: &str, token: &str) -> Result<(), CacheError> {
        let _ = (key, token);
        Ok(())
    }

    /// The in-process tier's occupancy, when there is one.
    fn local(&self) -> Option<LocalStats>;
}
