//! [`JobMetrics`]: the queue's counters, named `plexus_jobs_*`, registered in the
//! node's registry by the family.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Default)]
struct Inner {
    enqueued: Counter,
    duplicates: Counter,
    refused: Counter,
    started: Counter,
    completed: Counter,
    failed: Counter,
    dead: Counter,
    stalled: Counter,
    lost: Counter,
    unavailable: Counter,
    running: Gauge,
}

/// The counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct JobMetrics {
    inner: Arc<Inner>,
}

/// A snapshot, for tests and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Jobs added.
    pub enqueued: u64,
    /// Enqueues answered with an existing job (unique key).
    pub duplicates: u64,
    /// Enqueues refused (bad input).
    pub refused: u64,
    /// Attempts started.
    pub started: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Attempts failed.
    pub failed: u64,
    /// Jobs dead.
    pub dead: u64,
    /// Jobs whose lease ran out.
    pub stalled: u64,
    /// Attempts whose outcome was not stored: the worker no longer held the job.
    pub lost: u64,
    /// Steps of this node's workers that found the backend unavailable (each
    /// waits and tries again: the workers pause until it is back).
    pub unavailable: u64,
}

impl JobMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn enqueued(&self, new: bool) {
        if new {
            self.inner.enqueued.inc();
        } else {
            self.inner.duplicates.inc();
        }
    }
    pub(crate) fn refused(&self) {
        self.inner.refused.inc();
    }
    pub(crate) fn started(&self) {
        self.inner.started.inc();
        self.inner.running.inc();
    }
    pub(crate) fn ended(&self) {
        self.inner.running.dec();
    }
    pub(crate) fn completed(&self) {
        self.inner.completed.inc();
    }
    pub(crate) fn failed(&self, dead: bool) {
        self.inner.failed.inc();
        if dead {
            self.inner.dead.inc();
        }
    }
    pub(crate) fn stalled(&self, dead: bool) {
        self.inner.stalled.inc();
        if dead {
            self.inner.dead.inc();
        }
    }
    pub(crate) fn lost(&self) {
        self.inner.lost.inc();
    }
    pub(crate) fn unavailable(&self) {
        self.inner.unavailable.inc();
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        let i = &self.inner;
        Counts {
            enqueued: i.enqueued.get(),
            duplicates: i.duplicates.get(),
            refused: i.refused.get(),
            started: i.started.get(),
            completed: i.completed.get(),
            failed: i.failed.get(),
            dead: i.dead.get(),
            stalled: i.stalled.get(),
            lost: i.lost.get(),
            unavailable: i.unavailable.get(),
        }
    }

    /// Registers every counter in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let counters = [
            ("plexus_jobs_enqueued", "Jobs added", &i.enqueued),
            (
                "plexus_jobs_duplicates",
                "Enqueues answered with an existing job of the same unique key",
                &i.duplicates,
            ),
            (
                "plexus_jobs_refused",
                "Enqueues refused for bad input",
                &i.refused,
            ),
            ("plexus_jobs_started", "Attempts started", &i.started),
            ("plexus_jobs_completed", "Jobs completed", &i.completed),
            ("plexus_jobs_failed", "Attempts failed", &i.failed),
            (
                "plexus_jobs_dead",
                "Jobs moved to the dead-letter list",
                &i.dead,
            ),
            (
                "plexus_jobs_stalled",
                "Jobs whose worker's lease ran out",
                &i.stalled,
            ),
            (
                "plexus_jobs_lost",
                "Attempts whose outcome was dropped: the worker no longer held the job",
                &i.lost,
            ),
            (
                "plexus_jobs_backend_unavailable",
                "Worker steps that found the jobs backend unavailable",
                &i.unavailable,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "plexus_jobs_running",
            "Attempts running on this node",
            i.running.clone(),
        );
    }
}
