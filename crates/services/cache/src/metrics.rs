//! The cache's metrics, defined once here with their Prometheus names.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_cache_hits_total` | counter | `namespace` |
//! | `plexus_cache_misses_total` | counter | `namespace` |
//! | `plexus_cache_loads_total` | counter | `namespace` |
//! | `plexus_cache_load_errors_total` | counter | `namespace` |
//! | `plexus_cache_stampede_loads_avoided_total` | counter | `namespace` |
//! | `plexus_cache_early_refreshes_total` | counter | `namespace` |
//! | `plexus_cache_evictions_total` | counter | |
//! | `plexus_cache_rejected_total` | counter | `reason`: `key_too_large`, `value_too_large`, `batch_too_large` |
//! | `plexus_cache_errors_total` | counter | `kind`: `unavailable`, `backend` |
//! | `plexus_cache_invalidations_received_total` | counter | |
//!
//! A load avoided is a caller that wanted to load a missing key and got the value
//! another caller loaded instead: one that joined a load in flight in this process,
//! or one that waited on another process's loader lease.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use plexus_node::metrics::{KindLabel, ReasonLabel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabel {
    namespace: String,
}

/// What happened to a lookup or a load, counted per namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Outcome {
    /// Found.
    Hit,
    /// Not found.
    Miss,
    /// Loaded by this caller.
    Load,
    /// The loader failed.
    LoadError,
    /// Got the value another caller loaded.
    Avoided,
    /// Reloaded ahead of expiry.
    EarlyRefresh,
}

/// Why an input was refused (`plexus_cache_rejected_total`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A key over `max_key_bytes`.
    KeyTooLarge,
    /// A value over `max_value_bytes`.
    ValueTooLarge,
    /// A `get_many` over `max_batch` keys.
    BatchTooLarge,
}

impl Rejected {
    fn as_str(self) -> &'static str {
        match self {
            Self::KeyTooLarge => "key_too_large",
            Self::ValueTooLarge => "value_too_large",
            Self::BatchTooLarge => "batch_too_large",
        }
    }
}

/// The cache's counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct CacheMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    hits: Family<NamespaceLabel, Counter>,
    misses: Family<NamespaceLabel, Counter>,
    loads: Family<NamespaceLabel, Counter>,
    load_errors: Family<NamespaceLabel, Counter>,
    avoided: Family<NamespaceLabel, Counter>,
    early_refreshes: Family<NamespaceLabel, Counter>,
    evictions: Counter,
    rejected: Family<ReasonLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    invalidations_received: Counter,
    /// Each namespace's six counters, found by name without building a label (a
    /// hit is counted on every read).
    by_namespace: RwLock<HashMap<Box<str>, Arc<[Counter; 6]>, foldhash::fast::RandomState>>,
}

impl CacheMetrics {
    /// New counters, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of `namespace`, created in each family on first use.
    fn counters(&self, namespace: &str) -> Arc<[Counter; 6]> {
        if let Some(found) = self.inner.by_namespace.read().get(namespace) {
            return found.clone();
        }
        let i = &self.inner;
        let label = NamespaceLabel {
            namespace: namespace.to_owned(),
        };
        let families = [
            &i.hits,
            &i.misses,
            &i.loads,
            &i.load_errors,
            &i.avoided,
            &i.early_refreshes,
        ];
        let counters = Arc::new(families.map(|f| f.get_or_create(&label).clone()));
        i.by_namespace
            .write()
            .entry(namespace.into())
            .or_insert(counters)
            .clone()
    }

    /// Counts `n` of `outcome` in `namespace`.
    pub fn count(&self, namespace: &str, outcome: Outcome, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(found) = self.inner.by_namespace.read().get(namespace) {
            found[outcome as usize].inc_by(n);
            return;
        }
        self.counters(namespace)[outcome as usize].inc_by(n);
    }

    /// How many of `outcome` in `namespace` so far.
    pub fn get(&self, namespace: &str, outcome: Outcome) -> u64 {
        self.counters(namespace)[outcome as usize].get()
    }

    /// Counts an entry evicted for room.
    pub fn evicted(&self) {
        self.inner.evictions.inc();
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.get()
    }

    /// Counts a refused input.
    pub fn rejected(&self, why: Rejected) {
        let label = ReasonLabel {
            reason: why.as_str(),
        };
        self.inner.rejected.get_or_create(&label).inc();
    }

    /// Inputs refused for `why` so far.
    pub fn rejections(&self, why: Rejected) -> u64 {
        let label = ReasonLabel {
            reason: why.as_str(),
        };
        self.inner.rejected.get_or_create(&label).get()
    }

    /// Counts a backend error of `kind` (a [`CacheError::kind`](crate::CacheError::kind)).
    pub fn error(&self, kind: &'static str) {
        self.inner.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Backend errors of `kind` so far.
    pub fn errors(&self, kind: &'static str) -> u64 {
        self.inner.errors.get_or_create(&KindLabel { kind }).get()
    }

    /// Counts an invalidation message from another node.
    pub fn invalidation_received(&self) {
        self.inner.invalidations_received.inc();
    }

    /// Invalidation messages received so far.
    pub fn invalidations_received(&self) -> u64 {
        self.inner.invalidations_received.get()
    }

    /// Adds every metric to `registry` under its `plexus_cache_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let by_namespace = [
            ("plexus_cache_hits", "Lookups that found the key", &i.hits),
            (
                "plexus_cache_misses",
                "Lookups that did not find the key",
                &i.misses,
            ),
            (
                "plexus_cache_loads",
                "Missing keys loaded by a loader",
                &i.loads,
            ),
            (
                "plexus_cache_load_errors",
                "Loads whose loader failed",
                &i.load_errors,
            ),
            (
                "plexus_cache_stampede_loads_avoided",
                "Loads not run because another caller was loading the same key",
                &i.avoided,
            ),
            (
                "plexus_cache_early_refreshes",
                "Reloads started ahead of expiry (XFetch)",
                &i.early_refreshes,
            ),
        ];
        for (name, help, family) in by_namespace {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "plexus_cache_evictions",
            "Entries of the in-process tier evicted for room",
            i.evictions.clone(),
        );
        registry.register(
            "plexus_cache_rejected",
            "Inputs refused for being over a bound",
            i.rejected.clone(),
        );
        registry.register(
            "plexus_cache_errors",
            "Backend operations that failed, by kind",
            i.errors.clone(),
        );
        registry.register(
            "plexus_cache_invalidations_received",
            "Invalidation messages from other nodes applied to the local tier",
            i.invalidations_received.clone(),
        );
    }
}
