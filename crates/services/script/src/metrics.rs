//! The script engine's metrics, defined once here with their Prometheus names.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_script_runs_total` | counter | `outcome`: `ok`, `compile_error`, `runtime_error`, `limit`, `call_failed`, `not_found`, `overloaded`, `cancelled`, `unavailable`, `internal` |
//! | `plexus_script_limits_total` | counter | `limit`: which limit ended a run (`operations`, `duration`, `string_size`, …) |
//! | `plexus_script_operations_total` | counter | |
//! | `plexus_script_duration_seconds` | histogram | |
//! | `plexus_script_compile_cache_total` | counter | `result`: `hit`, `miss` |
//! | `plexus_script_trigger_runs_total` | counter | `trigger` (the stored script), `outcome` as for runs |
//!
//! A run refused because the pool was full is counted with `outcome="overloaded"`;
//! its duration is not observed (it never ran).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Limit;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The script engine's metrics. Cheap to clone; clones share them.
#[derive(Clone, Debug)]
pub struct ScriptMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runs: Family<OutcomeLabel, Counter>,
    limits: Family<LimitLabel, Counter>,
    operations: Counter,
    duration: Histogram,
    cache: Family<ResultLabel, Counter>,
    triggers: Family<TriggerLabel, Counter>,
}

impl Default for ScriptMetrics {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                runs: Family::default(),
                limits: Family::default(),
                operations: Counter::default(),
                // 50 µs to about 13 s.
                duration: Histogram::new(exponential_buckets(0.000_05, 4.0, 10)),
                cache: Family::default(),
                triggers: Family::default(),
            }),
        }
    }
}

impl ScriptMetrics {
    /// New metrics, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a run that ended with `outcome` (`ok`, or a
    /// [`ScriptError::outcome`](crate::ScriptError::outcome)); `ran` is how long and
    /// how many operations, when it ran at all.
    pub fn run(&self, outcome: &'static str, ran: Option<(Duration, u64)>) {
        self.inner
            .runs
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        if let Some((took, operations)) = ran {
            self.inner.duration.observe(took.as_secs_f64());
            self.inner.operations.inc_by(operations);
        }
    }

    /// Counts a run ended by `limit`.
    pub fn limit(&self, limit: Limit) {
        let label = LimitLabel {
            limit: limit.as_str(),
        };
        self.inner.limits.get_or_create(&label).inc();
    }

    /// Counts a look-up of a compiled script (stored, or a source by its text).
    pub fn compiled(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.inner
            .cache
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts a run of the trigger `trigger` that ended with `outcome`.
    pub fn trigger_run(&self, trigger: &str, outcome: &'static str) {
        let label = TriggerLabel {
            trigger: trigger.to_owned(),
            outcome,
        };
        self.inner.triggers.get_or_create(&label).inc();
    }

    /// Runs of the trigger `trigger` that ended with `outcome` so far.
    pub fn trigger_runs(&self, trigger: &str, outcome: &'static str) -> u64 {
        let label = TriggerLabel {
            trigger: trigger.to_owned(),
            outcome,
        };
        self.inner.triggers.get_or_create(&label).get()
    }

    /// Runs that ended with `outcome` so far.
    pub fn runs(&self, outcome: &'static str) -> u64 {
        self.inner
            .runs
            .get_or_create(&OutcomeLabel { outcome })
            .get()
    }

    /// Runs ended by `limit` so far.
    pub fn limits(&self, limit: Limit) -> u64 {
        let label = LimitLabel {
            limit: limit.as_str(),
        };
        self.inner.limits.get_or_create(&label).get()
    }

    /// Operations used by every run so far.
    pub fn operations(&self) -> u64 {
        self.inner.operations.get()
    }

    /// Look-ups of compiled scripts that found one (`true`) or compiled.
    pub fn compiles(&self, hit: bool) -> u64 {
        let result = if hit { "hit" } else { "miss" };
        self.inner
            .cache
            .get_or_create(&ResultLabel { result })
            .get()
    }

    /// Adds every metric to `registry` under its `plexus_script_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        registry.register(
            "plexus_script_runs",
            "Script runs by outcome",
            i.runs.clone(),
        );
        registry.register(
            "plexus_script_limits",
            "Script runs ended by a limit, by limit",
            i.limits.clone(),
        );
        registry.register(
            "plexus_script_operations",
            "Operations used by script runs",
            i.operations.clone(),
        );
        registry.register(
            "plexus_script_duration_seconds",
            "How long script runs took, waiting for a thread not included",
            i.duration.clone(),
        );
        registry.register(
            "plexus_script_compile_cache",
            "Look-ups of compiled scripts (stored, or a source by its text), by result",
            i.cache.clone(),
        );
        registry.register(
            "plexus_script_trigger_runs",
            "Runs of stored scripts started by a trigger's events, by trigger and outcome",
            i.triggers.clone(),
        );
    }
}
