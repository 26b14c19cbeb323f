//! The locks' metrics, defined once here with their Prometheus names.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_locks_grants_total` | counter | |
//! | `plexus_locks_waits_total` | counter | |
//! | `plexus_locks_wait_seconds` | histogram | |
//! | `plexus_locks_busy_total` | counter | |
//! | `plexus_locks_extensions_total` | counter | |
//! | `plexus_locks_releases_total` | counter | |
//! | `plexus_locks_refusals_total` | counter | `op`: `extend`, `release` |
//! | `plexus_locks_lost_total` | counter | |
//! | `plexus_locks_errors_total` | counter | `kind`: `invalid`, `too_many`, `unavailable`, `backend` |
//!
//! A wait is an acquire that found the lock held and waited for it (`wait_ms` > 0);
//! its time is observed whether it ended in a grant or not. Busy is an acquire
//! refused because the lock stayed held. A refusal is an extend or release whose
//! token no longer held the lock (its lease expired, or it was released). Lost is
//! a [`Guard`](crate::Guard) whose watchdog could not keep its lease.

use std::sync::Arc;
use std::time::Duration;

use plexus_node::metrics::KindLabel;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

/// An operation whose token can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOp {
    /// `extend`.
    Extend,
    /// `release`.
    Release,
}

impl TokenOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Extend => "extend",
            Self::Release => "release",
        }
    }
}

/// The locks' counters. Cheap to clone; clones share them.
#[derive(Clone, Debug)]
pub struct LockMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    grants: Counter,
    waits: Counter,
    wait_seconds: Histogram,
    busy: Counter,
    extensions: Counter,
    releases: Counter,
    refusals: Family<OpLabel, Counter>,
    lost: Counter,
    errors: Family<KindLabel, Counter>,
}

impl Default for LockMetrics {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                grants: Counter::default(),
                waits: Counter::default(),
                // 1 ms to about 65 s.
                wait_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
                busy: Counter::default(),
                extensions: Counter::default(),
                releases: Counter::default(),
                refusals: Family::default(),
                lost: Counter::default(),
                errors: Family::default(),
            }),
        }
    }
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Locks granted.
    pub grants: u64,
    /// Acquires that waited for a held lock.
    pub waits: u64,
    /// Acquires refused because the lock stayed held.
    pub busy: u64,
    /// Leases extended.
    pub extensions: u64,
    /// Locks released.
    pub releases: u64,
    /// Extends refused: the token no longer held the lock.
    pub extend_refusals: u64,
    /// Releases refused: the token no longer held the lock.
    pub release_refusals: u64,
    /// Guards that lost their lock.
    pub lost: u64,
}

impl LockMetrics {
    /// New counters, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn granted(&self) {
        self.inner.grants.inc();
    }

    pub(crate) fn waited(&self, time: Duration) {
        self.inner.waits.inc();
        self.inner.wait_seconds.observe(time.as_secs_f64());
    }

    pub(crate) fn busy(&self) {
        self.inner.busy.inc();
    }

    pub(crate) fn extended(&self) {
        self.inner.extensions.inc();
    }

    pub(crate) fn released(&self) {
        self.inner.releases.inc();
    }

    pub(crate) fn refused(&self, op: TokenOp) {
        let label = OpLabel { op: op.as_str() };
        self.inner.refusals.get_or_create(&label).inc();
    }

    pub(crate) fn lost(&self) {
        self.inner.lost.inc();
    }

    pub(crate) fn error(&self, kind: &'static str) {
        self.inner.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Errors of `kind` (a [`LockError::kind`](crate::LockError::kind)) so far.
    pub fn errors(&self, kind: &'static str) -> u64 {
        self.inner.errors.get_or_create(&KindLabel { kind }).get()
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let i = &self.inner;
        let refused = |op: TokenOp| i.refusals.get_or_create(&OpLabel { op: op.as_str() }).get();
        Counts {
            grants: i.grants.get(),
            waits: i.waits.get(),
            busy: i.busy.get(),
            extensions: i.extensions.get(),
            releases: i.releases.get(),
            extend_refusals: refused(TokenOp::Extend),
            release_refusals: refused(TokenOp::Release),
            lost: i.lost.get(),
        }
    }

    /// Adds every metric to `registry` under its `plexus_locks_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let counters = [
            ("plexus_locks_grants", "Locks granted", &i.grants),
            (
                "plexus_locks_waits",
                "Acquires that waited for a held lock",
                &i.waits,
            ),
            (
                "plexus_locks_busy",
                "Acquires refused because the lock stayed held",
                &i.busy,
            ),
            ("plexus_locks_extensions", "Leases extended", &i.extensions),
            ("plexus_locks_releases", "Locks released", &i.releases),
            (
                "plexus_locks_lost",
                "Guards whose watchdog could not keep the lease",
                &i.lost,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "plexus_locks_wait_seconds",
            "Time acquires spent waiting for a held lock",
            i.wait_seconds.clone(),
        );
        registry.register(
            "plexus_locks_refusals",
            "Extends and releases refused because the token no longer held the lock",
            i.refusals.clone(),
        );
        registry.register(
            "plexus_locks_errors",
            "Lock operations that failed, by kind",
            i.errors.clone(),
        );
    }
}
