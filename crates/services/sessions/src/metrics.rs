//! The sessions' metrics, defined once here with their Prometheus names. No label
//! carries an id or a subject.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_sessions_created_total` | counter | |
//! | `plexus_sessions_touched_total` | counter | |
//! | `plexus_sessions_updated_total` | counter | |
//! | `plexus_sessions_revoked_total` | counter | |
//! | `plexus_sessions_expired_total` | counter | |
//! | `plexus_sessions_evicted_total` | counter | |
//! | `plexus_sessions_rejected_total` | counter | `reason`: `cap_reached`, `full` |
//! | `plexus_sessions_errors_total` | counter | `kind`: `unavailable`, `backend` |
//! | `plexus_sessions_events_failed_total` | counter | |
//! | `plexus_sessions_active` | gauge | (memory backend only) |
//!
//! Evicted sessions are those revoked to keep a subject under its cap; revoked
//! counts those revoked by a call. Expired counts the sessions this node's sweeps
//! took: across nodes sharing Redis, each expiry is counted by exactly one.

use std::sync::Arc;

use plexus_node::metrics::{KindLabel, ReasonLabel};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What happened to a session, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Created.
    Created,
    /// Renewed by a touch.
    Touched,
    /// Its data changed.
    Updated,
    /// Revoked by a call.
    Revoked,
    /// Taken by a sweep once expired.
    Expired,
    /// Revoked to keep its subject under the cap.
    Evicted,
    /// Refused at the cap (`on_cap = "refuse"`).
    CapReached,
    /// Refused: the memory backend is full.
    Full,
    /// An event the bus did not take.
    EventFailed,
}

/// The sessions' counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct SessionMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    created: Counter,
    touched: Counter,
    updated: Counter,
    revoked: Counter,
    expired: Counter,
    evicted: Counter,
    rejected: Family<ReasonLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    events_failed: Counter,
    active: Gauge,
}

impl SessionMetrics {
    /// New counters, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn counter(&self, what: Counted) -> Counter {
        let i = &self.inner;
        match what {
            Counted::Created => i.created.clone(),
            Counted::Touched => i.touched.clone(),
            Counted::Updated => i.updated.clone(),
            Counted::Revoked => i.revoked.clone(),
            Counted::Expired => i.expired.clone(),
            Counted::Evicted => i.evicted.clone(),
            Counted::EventFailed => i.events_failed.clone(),
            Counted::CapReached => i
                .rejected
                .get_or_create(&ReasonLabel {
                    reason: "cap_reached",
                })
                .clone(),
            Counted::Full => i
                .rejected
                .get_or_create(&ReasonLabel { reason: "full" })
                .clone(),
        }
    }

    /// Counts `n` of `what`.
    pub fn count(&self, what: Counted, n: u64) {
        if n > 0 {
            self.counter(what).inc_by(n);
        }
    }

    /// How many of `what` so far.
    pub fn get(&self, what: Counted) -> u64 {
        self.counter(what).get()
    }

    /// Counts a backend error of `kind` (a [`SessionError::kind`](crate::SessionError::kind)).
    pub fn error(&self, kind: &'static str) {
        self.inner.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Backend errors of `kind` so far.
    pub fn errors(&self, kind: &'static str) -> u64 {
        self.inner.errors.get_or_create(&KindLabel { kind }).get()
    }

    /// Sets the number of sessions held (when the backend knows it cheaply).
    pub fn set_active(&self, n: u64) {
        self.inner.active.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Adds every metric to `registry` under its `plexus_sessions_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let counters = [
            ("plexus_sessions_created", "Sessions created", &i.created),
            (
                "plexus_sessions_touched",
                "Sessions renewed by a touch",
                &i.touched,
            ),
            (
                "plexus_sessions_updated",
                "Session data updates",
                &i.updated,
            ),
            (
                "plexus_sessions_revoked",
                "Sessions revoked by a call",
                &i.revoked,
            ),
            (
                "plexus_sessions_expired",
                "Expired sessions taken by this node's sweeps and announced",
                &i.expired,
            ),
            (
                "plexus_sessions_evicted",
                "Sessions revoked to keep a subject under max_per_subject",
                &i.evicted,
            ),
            (
                "plexus_sessions_events_failed",
                "session.expired / session.revoked events the bus did not take",
                &i.events_failed,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "plexus_sessions_rejected",
            "Sessions refused at a bound, by reason",
            i.rejected.clone(),
        );
        registry.register(
            "plexus_sessions_errors",
            "Backend operations that failed, by kind",
            i.errors.clone(),
        );
        registry.register(
            "plexus_sessions_active",
            "Sessions held (memory backend; expired ones until swept)",
            i.active.clone(),
        );
    }
}
