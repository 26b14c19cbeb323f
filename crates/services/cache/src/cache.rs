//! [`Cache`]: the cache every backend is used through. It checks input (namespace,
//! key, value and TTL bounds, each refusal naming its field), resolves a namespace's
//! TTLs, counts what happens, and keeps loads from stampeding:
//!
//! - **Single-flight in process**: concurrent misses of one key run one load; the
//!   others await it (each counted as a load avoided).
//! - **A loader lease across processes**: the load first takes the key's lease in
//!   the backend (`SET NX PX` on Redis); a process that finds it taken waits for the
//!   value to appear instead of loading, up to `lease_ms`, then loads itself.
//! - **Early refresh (XFetch)**: a hit on an entry that was loaded reloads it in the
//!   background, before it expires, with a probability that grows as expiry nears
//!   and with how long the load took: refresh when `delta · beta · −ln(u) ≥ time
//!   left`, `u` uniform in (0, 1]. One refresh runs at a time per key (the same
//!   single-flight), and across processes the lease keeps it to one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::ServiceError;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::{CacheConfig, DEFAULT_NAMESPACE, Ttls};
use crate::flight::Flights;
use crate::metrics::{CacheMetrics, Outcome, Rejected};
use crate::store::{CacheStore, Entry};
use crate::{CacheError, MemoryStore};

/// A cache over one backend. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    config: CacheConfig,
    metrics: CacheMetrics,
    flights: Flights<Result<Value, CacheError>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    /// The value, if it was there or was loaded.
    pub value: Option<Value>,
    /// Whether it was found without loading.
    pub hit: bool,
}

/// One namespace's counters, as `cache.stats` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NamespaceStats {
    /// Lookups that found the key.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Loads run.
    pub loads: u64,
    /// Loads whose loader failed.
    pub load_errors: u64,
    /// Callers that got a value another caller was loading instead of loading it.
    pub stampede_loads_avoided: u64,
    /// Reloads started ahead of expiry.
    pub early_refreshes: u64,
}

/// What `cache.stats` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Stats {
    /// `memory`, `redis` or `redis+local`.
    pub backend: String,
    /// Counters by namespace.
    pub namespaces: BTreeMap<String, NamespaceStats>,
    /// Entries of the in-process tier evicted for room.
    pub evictions: u64,
    /// Invalidation messages from other nodes applied to the local tier.
    pub invalidations_received: u64,
    /// Entries in the in-process tier (none on plain Redis).
    pub local_entries: Option<u64>,
    /// Bytes of the in-process tier.
    pub local_bytes: Option<u64>,
}

/// Whether a hit with `left` to live, on an entry that took `delta` to load, should
/// be refreshed now (XFetch), for `u` drawn uniformly from [0, 1).
pub fn refresh_early(left: Duration, delta: Duration, beta: f64, u: f64) -> bool {
    // -ln(1 - u) is exponentially distributed; held under 28 (u at most 1 - 1e-12)
    // so a far-off expiry is never refreshed.
    let draw = -(1.0 - u).clamp(1e-12, 1.0).ln();
    delta.as_secs_f64() * beta * draw >= left.as_secs_f64()
}

impl Cache {
    /// A cache over `store`, held to `config`, counting in `metrics`.
    pub fn new(store: Arc<dyn CacheStore>, config: CacheConfig, metrics: CacheMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                metrics,
                flights: Flights::new(),
            }),
        }
    }

    /// A cache in this process (moka), held to `config`.
    pub fn in_memory(config: CacheConfig) -> Self {
        let metrics = CacheMetrics::new();
        let store = MemoryStore::new(config.max_bytes, metrics.clone());
        Self::new(Arc::new(store), config, metrics)
    }

    /// The configuration it holds to.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Its counters.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    fn count(&self, namespace: &str, outcome: Outcome) {
        self.inner.metrics.count(namespace, outcome, 1);
    }

    /// Counts a backend failure and passes the result on.
    fn track<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        if let Err(e) = &result
            && matches!(e, CacheError::Backend(_))
        {
            self.inner.metrics.error(e.kind());
        }
        result
    }

    /// The namespace's name and TTLs (`default` when none is named).
    fn namespace<'a>(&'a self, namespace: Option<&'a str>) -> Result<(&'a str, Ttls), CacheError> {
        let name = namespace.unwrap_or(DEFAULT_NAMESPACE);
        match self.inner.config.ttls(name) {
            Some(ttls) => Ok((name, ttls)),
            None => Err(CacheError::invalid(
                "/namespace",
                format!(
                    "no such namespace `{name}` (known: {})",
                    self.inner.config.namespace_names().join(", ")
                ),
            )),
        }
    }

    /// `namespace:key`, the key checked and named as `field`.
    fn full_key(&self, namespace: &str, key: &str, field: &str) -> Result<String, CacheError> {
        let max = self.inner.config.max_key_bytes;
        if key.is_empty() {
            return Err(CacheError::invalid(field, "must not be empty"));
        }
        if key.len() > max {
            self.inner.metrics.rejected(Rejected::KeyTooLarge);
            return Err(CacheError::invalid(
                field,
                format!(
                    "is {} bytes; at most {max} (cache.max_key_bytes)",
                    key.len()
                ),
            ));
        }
        // Pushed rather than formatted: this runs on every read.
        let mut full = String::with_capacity(namespace.len() + 1 + key.len());
        full.push_str(namespace);
        full.push(':');
        full.push_str(key);
        Ok(full)
    }

    /// The TTL a write asked for (`ttl_ms`), or the namespace's.
    fn ttl(
        &self,
        namespace: &str,
        ttls: Ttls,
        ttl_ms: Option<u64>,
    ) -> Result<Duration, CacheError> {
        let Some(ms) = ttl_ms else {
            return Ok(ttls.default);
        };
        let ttl = Duration::from_millis(ms);
        if ms == 0 {
            Err(CacheError::invalid("/ttl_ms", "must be at least 1"))
        } else if ttl > ttls.max {
            Err(CacheError::invalid(
                "/ttl_ms",
                format!(
                    "is {ms}; at most {} in namespace `{namespace}`",
                    ttls.max.as_millis()
                ),
            ))
        } else {
            Ok(ttl)
        }
    }

    /// The value as JSON text, within `max_value_bytes`.
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CacheError> {
        let json = serde_json::to_vec(value)
            .map_err(|e| CacheError::invalid("/value", format!("is not JSON: {e}")))?;
        let max = self.inner.config.max_value_bytes;
        if json.len() > max {
            self.inner.metrics.rejected(Rejected::ValueTooLarge);
            return Err(CacheError::invalid(
                "/value",
                format!(
                    "is {} bytes as JSON; at most {max} (cache.max_value_bytes)",
                    json.len()
                ),
            ));
        }
        Ok(json)
    }

    /// The value under `key`, if any.
    pub async fn get(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Value>, CacheError> {
        let (ns, _) = self.namespace(namespace)?;
        let full = self.full_key(ns, key, "/key")?;
        let found = self.track(self.inner.store.get(&full).await)?;
        self.count(
            ns,
            if found.is_some() {
                Outcome::Hit
            } else {
                Outcome::Miss
            },
        );
        Ok(found.map(|e| e.value))
    }

    /// The value under `key`, loaded with `load` (and cached for `ttl_ms`, or the
    /// namespace's TTL) when it is missing: once for all concurrent callers in this
    /// process, and once per lease across processes. A hit may start a background
    /// refresh ahead of expiry (see the module docs).
    ///
    /// When the load succeeds but the value cannot be stored (Redis lost meanwhile,
    /// or the value is over `max_value_bytes`), the value is still returned.
    pub async fn get_or_load<F, Fut>(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_ms: Option<u64>,
        load: F,
    ) -> Result<Got, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, ServiceError>> + Send + 'static,
    {
        let (ns, ttls) = self.namespace(namespace)?;
        let full = self.full_key(ns, key, "/key")?;
        let ttl = self.ttl(ns, ttls, ttl_ms)?;
        if let Some(entry) = self.track(self.inner.store.get(&full).await)? {
            self.count(ns, Outcome::Hit);
            if self.due_for_refresh(&entry) && !self.inner.flights.in_flight(&full) {
                let load = self
                    .clone()
                    .load(ns.to_owned(), full.clone(), ttl, load, true);
                let (flight, new) = self.inner.flights.join(&full, || load);
                if new {
                    self.count(ns, Outcome::EarlyRefresh);
                    tokio::spawn(flight);
                }
            }
            return Ok(Got {
                value: Some(entry.value),
                hit: true,
            });
        }
        self.count(ns, Outcome::Miss);
        let this = self.clone();
        let (flight, new) = self.inner.flights.join(&full, || {
            this.load(ns.to_owned(), full.clone(), ttl, load, false)
        });
        if !new {
            self.count(ns, Outcome::Avoided);
        }
        Ok(Got {
            value: Some(flight.await?),
            hit: false,
        })
    }

    fn due_for_refresh(&self, entry: &Entry) -> bool {
        let beta = self.inner.config.early_refresh_beta;
        beta > 0.0
            && !entry.delta.is_zero()
            && refresh_early(entry.ttl, entry.delta, beta, rand::random::<f64>())
    }

    /// One load of `full`: take the lease (or wait for another process's value),
    /// run the loader, store what it gave, give the lease back. A `refresh` replaces
    /// a value still there; a load for a miss first looks whether one landed.
    async fn load<F, Fut>(
        self,
        ns: String,
        full: String,
        ttl: Duration,
        load: F,
        refresh: bool,
    ) -> Result<Value, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, ServiceError>> + Send + 'static,
    {
        let store = self.inner.store.clone();
        let lease = Duration::from_millis(self.inner.config.lease_ms);
        let poll = Duration::from_millis(self.inner.config.lease_poll_ms);
        let give_up = Instant::now() + lease;
        let token = loop {
            match self.track(store.lease(&full, lease).await)? {
                Some(token) => {
                    if !refresh && let Some(entry) = self.track(store.get(&full).await)? {
                        let _ = self.track(store.release(&full, &token).await);
                        self.count(&ns, Outcome::Avoided);
                        return Ok(entry.value);
                    }
                    break Some(token);
                }
                None => {
                    // Another process loads it: its value, when it lands, is ours.
                    if let Some(entry) = self.track(store.get(&full).await)? {
                        if !refresh {
                            self.count(&ns, Outcome::Avoided);
                        }
                        return Ok(entry.value);
                    }
                    if Instant::now() >= give_up {
                        // Its lease lapsed with no value: that loader is gone.
                        break None;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        };
        let started = Instant::now();
        let loaded = load().await;
        let delta = started.elapsed();
        let result = match loaded {
            Ok(value) => {
                self.count(&ns, Outcome::Load);
                if let Ok(json) = self.encode(&value) {
                    let entry = Entry {
                        value: value.clone(),
                        size: json.len(),
                        ttl,
                        delta,
                    };
                    if let Err(error) = self.track(store.set(&full, entry, &json).await) {
                        tracing::warn!(key = %full, %error, "a loaded value could not be cached");
                    }
                }
                Ok(value)
            }
            Err(e) => {
                self.count(&ns, Outcome::LoadError);
                Err(CacheError::Load(e))
            }
        };
        if let Some(token) = token {
            let _ = self.track(store.release(&full, &token).await);
        }
        result
    }

    /// Writes `value` under `key` for `ttl_ms` (or the namespace's TTL); the TTL set.
    pub async fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<Duration, CacheError> {
        let (ns, ttls) = self.namespace(namespace)?;
        let full = self.full_key(ns, key, "/key")?;
        let ttl = self.ttl(ns, ttls, ttl_ms)?;
        let json = self.encode(&value)?;
        let entry = Entry {
            value,
            size: json.len(),
            ttl,
            delta: Duration::ZERO,
        };
        self.track(self.inner.store.set(&full, entry, &json).await)?;
        Ok(ttl)
    }

    /// Removes `key`; whether it was there.
    pub async fn delete(&self, namespace: Option<&str>, key: &str) -> Result<bool, CacheError> {
        let (ns, _) = self.namespace(namespace)?;
        let full = self.full_key(ns, key, "/key")?;
        self.track(self.inner.store.delete(&full).await)
    }

    /// The values under `keys`, in order (`None` for a missing one).
    pub async fn get_many(
        &self,
        namespace: Option<&str>,
        keys: &[String],
    ) -> Result<Vec<Option<Value>>, CacheError> {
        let (ns, _) = self.namespace(namespace)?;
        let max = self.inner.config.max_batch;
        if keys.len() > max {
            self.inner.metrics.rejected(Rejected::BatchTooLarge);
            return Err(CacheError::invalid(
                "/keys",
                format!("has {} keys; at most {max} (cache.max_batch)", keys.len()),
            ));
        }
        let full = keys
            .iter()
            .enumerate()
            .map(|(i, key)| self.full_key(ns, key, &format!("/keys/{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let found = self.track(self.inner.store.get_many(&full).await)?;
        let hits = found.iter().filter(|e| e.is_some()).count() as u64;
        self.inner.metrics.count(ns, Outcome::Hit, hits);
        self.inner
            .metrics
            .count(ns, Outcome::Miss, found.len() as u64 - hits);
        Ok(found.into_iter().map(|e| e.map(|e| e.value)).collect())
    }

    /// Removes every key of the namespace that starts with `prefix` (all of them for
    /// an empty prefix); how many.
    pub async fn invalidate_prefix(
        &self,
        namespace: Option<&str>,
        prefix: &str,
    ) -> Result<u64, CacheError> {
        let (ns, _) = self.namespace(namespace)?;
        if prefix.len() > self.inner.config.max_key_bytes {
            self.inner.metrics.rejected(Rejected::KeyTooLarge);
            return Err(CacheError::invalid(
                "/prefix",
                format!(
                    "is {} bytes; at most {} (cache.max_key_bytes)",
                    prefix.len(),
                    self.inner.config.max_key_bytes
                ),
            ));
        }
        self.track(
            self.inner
                .store
                .invalidate_prefix(&format!("{ns}:{prefix}"))
                .await,
        )
    }

    /// The counters by namespace and the in-process tier's occupancy.
    pub fn stats(&self) -> Stats {
        let m = &self.inner.metrics;
        let namespaces = self
            .inner
            .config
            .namespace_names()
            .into_iter()
            .map(|ns| {
                let stats = NamespaceStats {
                    hits: m.get(ns, Outcome::Hit),
                    misses: m.get(ns, Outcome::Miss),
                    loads: m.get(ns, Outcome::Load),
                    load_errors: m.get(ns, Outcome::LoadError),
                    stampede_loads_avoided: m.get(ns, Outcome::Avoided),
                    early_refreshes: m.get(ns, Outcome::EarlyRefresh),
                };
                (ns.to_owned(), stats)
            })
            .collect();
        let local = self.inner.store.local();
        Stats {
            backend: self.backend().to_owned(),
            namespaces,
            evictions: m.evictions(),
            invalidations_received: m.invalidations_received(),
            local_entries: local.map(|l| l.entries),
            local_bytes: local.map(|l| l.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfetch_refreshes_more_often_as_expiry_nears_and_never_far_from_it() {
        let delta = Duration::from_millis(100);
        let draws: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let share = |left_ms: u64| {
            let left = Duration::from_millis(left_ms);
            draws
                .iter()
                .filter(|&&u| refresh_early(left, delta, 1.0, u))
                .count()
        };
        // P(refresh) = exp(-left / (delta * beta)).
        assert_eq!(share(0), 1000);
        assert!((880..=920).contains(&share(10)), "{}", share(10));
        assert!((350..=390).contains(&share(100)), "{}", share(100));
        assert!(share(10) > share(100) && share(100) > share(500));
        // Past 28 * delta * beta, never, whatever the draw.
        assert!(!refresh_early(
            Duration::from_millis(2_800),
            delta,
            1.0,
            1.0 - 1e-15
        ));
        assert!(!refresh_early(
            Duration::from_secs(60),
            delta,
            1.0,
            0.999_999
        ));
        // No load time, no early refresh.
        assert!(!refresh_early(
            Duration::from_millis(1),
            Duration::ZERO,
            1.0,
            0.99
        ));
    }
}
