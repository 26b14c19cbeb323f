//! [`MemoryStore`]: entries in this process, on moka, with a byte cap.
//!
//! Entries are weighed by key and JSON size; past `max_bytes` moka evicts the least
//! useful ones (counted in `plexus_cache_evictions_total`). Expiry is read on Tokio's
//! clock, so a test under paused time sees an entry expire when its clock says so;
//! moka also drops expired entries on its own clock to reclaim their room.
//! The same store is the local tier of the two-tier Redis backend, where a copy may
//! be kept for less time than the entry has left ([`MemoryStore::put`]).

use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;
use tokio::time::Instant;

use crate::CacheError;
use crate::metrics::CacheMetrics;
use crate::store::{CacheStore, Entry, LocalStats};

/// What the store holds for each key.
#[derive(Debug)]
struct Held {
    entry: Entry,
    /// When the entry itself expires.
    expires: Instant,
    /// When this copy stops being served (at or before `expires`).
    until: Instant,
    /// How long moka keeps it, on its own clock.
    keep: Duration,
}

/// Fixed cost of an entry beyond its key and value, in bytes.
const OVERHEAD: usize = 64;

struct Keep;

impl moka::Expiry<String, Arc<Held>> for Keep {
    fn expire_after_create(
        &self,
        _key: &String,
        held: &Arc<Held>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(held.keep)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        held: &Arc<Held>,
        _at: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(held.keep)
    }
}

/// Entries in this process.
#[derive(Clone)]
pub struct MemoryStore {
    entries: Moka<String, Arc<Held>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` of keys and values, counting evictions
    /// in `metrics`.
    pub fn new(max_bytes: u64, metrics: CacheMetrics) -> Self {
        let entries = Moka::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, held: &Arc<Held>| {
                u32::try_from(key.len() + held.entry.size + OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(Keep)
            .eviction_listener(move |_key, _held, cause| {
                if cause == RemovalCause::Size {
                    metrics.evicted();
                }
            })
            .build();
        Self { entries }
    }

    /// Keeps `entry` under `key`, serving it for at most `keep` (its own TTL when
    /// shorter).
    pub fn put(&self, key: &str, entry: Entry, keep: Duration) {
        let now = Instant::now();
        let keep = keep.min(entry.ttl);
        let held = Held {
            expires: now + entry.ttl,
            until: now + keep,
            keep,
            entry,
        };
        self.entries.insert(key.to_owned(), Arc::new(held));
    }

    /// The entry under `key` while it is served, with the time it has left.
    pub fn read(&self, key: &str) -> Option<Entry> {
        let held = self.entries.get(key)?;
        let now = Instant::now();
        if now >= held.until {
            self.entries.invalidate(key);
            return None;
        }
        let mut entry = held.entry.clone();
        entry.ttl = held.expires.saturating_duration_since(now);
        Some(entry)
    }

    /// Removes `key`; whether a served copy was there.
    pub fn remove(&self, key: &str) -> bool {
        self.entries
            .remove(key)
            .is_some_and(|held| Instant::now() < held.until)
    }

    /// Removes every key starting with `prefix`; how many were served.
    pub fn remove_prefix(&self, prefix: &str) -> u64 {
        let now = Instant::now();
        let mut removed = 0;
        for (key, held) in self.entries.iter() {
            if key.starts_with(prefix) {
                self.entries.invalidate(key.as_str());
                if now < held.until {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// How many entries and bytes it holds (after moka's pending upkeep).
    pub fn occupancy(&self) -> LocalStats {
        self.entries.run_pending_tasks();
        LocalStats {
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }
}

#[plexus_core::async_trait]
impl CacheStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.read(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError> {
        Ok(keys.iter().map(|k| self.read(k)).collect())
    }

    async fn set(&self, key: &str, entry: Entry, _json: &[u8]) -> Result<(), CacheError> {
        let keep = entry.ttl;
        self.put(key, entry, keep);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.remove(key))
    }

    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        Ok(self.remove_prefix(prefix))
    }

    fn local(&self) -> Option<LocalStats> {
        Some(self.occupancy())
    }
}
