//! Query observability as types: every metric the store exports, with its name,
//! unit and labels defined here and nowhere else, and the slow-query log.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_store_statement_duration_seconds` | histogram | `kind`, `collection` |
//! | `plexus_store_slow_queries_total` | counter | `kind`, `collection` |
//! | `plexus_store_errors_total` | counter | `kind` (a [`StoreError::kind`](crate::StoreError::kind)) |
//! | `plexus_store_pool_connections` | gauge | `state`: `open`, `idle`, `in_use` |
//! | `plexus_store_pool_waiters` | gauge | |
//! | `plexus_store_pool_acquire_duration_seconds` | histogram | |
//! | `plexus_store_pool_acquire_timeouts_total` | counter | |
//! | `plexus_store_transactions_total` | counter | `outcome`: `commit`, `rollback` |
//! | `plexus_store_transaction_duration_seconds` | histogram | |
//!
//! Pool sizes are sampled whenever a connection is taken or given back (sqlx does
//! not expose pool metrics of its own); waiters and acquire latency are measured
//! around each acquire.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::PoolState;
use strum::{Display as StrumDisplay, IntoStaticStr};

/// The longest SQL text kept in a slow-query entry, in bytes.
pub const MAX_SLOW_SQL_LEN: usize = 2_000;

/// What a statement does, as the `kind` label.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    IntoStaticStr,
    StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// An insert.
    Insert,
    /// A replace (update of the whole document).
    Replace,
    /// An insert-or-replace.
    Upsert,
    /// A read by id.
    Get,
    /// A delete.
    Delete,
    /// A read of a document's version.
    Version,
    /// A query.
    Query,
    /// A count.
    Count,
    /// Schema changes: creating collections and indexes.
    Ddl,
    /// Transaction control and anything else.
    Other,
}

impl StatementKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One statement that took at least the slow-query threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SlowQuery {
    /// When it finished, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What it did.
    pub kind: StatementKind,
    /// The collection it touched (empty for none).
    pub collection: String,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Its SQL text (placeholders, never the bound values), cut at
    /// [`MAX_SLOW_SQL_LEN`] bytes.
    pub sql: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    kind: &'static str,
    collection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to about 26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Every metric of one store, and its slow-query log.
pub struct StoreMetrics {
    statement_duration: HistogramFamily<StatementLabels>,
    slow_queries: Family<StatementLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    pool_connections: Family<StateLabels, Gauge>,
    pool_waiters: Gauge,
    acquire_duration: Histogram,
    acquire_timeouts: Counter,
    transactions: Family<OutcomeLabels, Counter>,
    transaction_duration: Histogram,
    fenced_writes: Family<OutcomeLabels, Counter>,
    slow_threshold: Duration,
    slow_capacity: usize,
    slow_log: Mutex<VecDeque<SlowQuery>>,
}

impl fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("slow_threshold", &self.slow_threshold)
            .field("slow_capacity", &self.slow_capacity)
            .finish_non_exhaustive()
    }
}

impl StoreMetrics {
    /// Metrics logging statements slower than `slow_threshold`, keeping the last
    /// `slow_capacity` of them.
    pub fn new(slow_threshold: Duration, slow_capacity: usize) -> Self {
        Self {
            statement_duration: Family::new_with_constructor(latency_histogram),
            slow_queries: Family::default(),
            errors: Family::default(),
            pool_connections: Family::default(),
            pool_waiters: Gauge::default(),
            acquire_duration: latency_histogram(),
            acquire_timeouts: Counter::default(),
            transactions: Family::default(),
            transaction_duration: latency_histogram(),
            fenced_writes: Family::default(),
            slow_threshold,
            slow_capacity: slow_capacity.max(1),
            slow_log: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds every metric to `registry` under its `plexus_store_*` name.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "plexus_store_statement_duration_seconds",
            "Time each statement took, by statement kind and collection",
            self.statement_duration.clone(),
        );
        registry.register(
            "plexus_store_slow_queries",
            "Statements at or over the slow-query threshold",
            self.slow_queries.clone(),
        );
        registry.register(
            "plexus_store_errors",
            "Failed store operations by error kind",
            self.errors.clone(),
        );
        registry.register(
            "plexus_store_pool_connections",
            "Pooled connections: open, idle and in use",
            self.pool_connections.clone(),
        );
        registry.register(
            "plexus_store_pool_waiters",
            "Statements waiting for a pooled connection",
            self.pool_waiters.clone(),
        );
        registry.register(
            "plexus_store_pool_acquire_duration_seconds",
            "Time spent waiting for a pooled connection",
            self.acquire_duration.clone(),
        );
        registry.register(
            "plexus_store_pool_acquire_timeouts",
            "Waits for a pooled connection that timed out",
            self.acquire_timeouts.clone(),
        );
        registry.register(
            "plexus_store_transactions",
            "Transactions by outcome",
            self.transactions.clone(),
        );
        registry.register(
            "plexus_store_transaction_duration_seconds",
            "Time from begin to commit or rollback",
            self.transaction_duration.clone(),
        );
        registry.register(
            "plexus_store_fenced_writes",
            "Writes carrying a lock's fencing token, accepted or refused (a lower token than one accepted)",
            self.fenced_writes.clone(),
        );
    }

    /// Records one statement: its latency, and a slow-log entry when it was slow.
    pub fn statement(&self, kind: StatementKind, collection: &str, sql: &str, took: Duration) {
        let labels = StatementLabels {
            kind: kind.as_str(),
            collection: collection.to_owned(),
        };
        self.statement_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if took >= self.slow_threshold {
            self.slow_queries.get_or_create(&labels).inc();
            let entry = SlowQuery {
                at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                kind,
                collection: collection.to_owned(),
                duration_seconds: took.as_secs_f64(),
                sql: plexus_core::clip(sql, MAX_SLOW_SQL_LEN).to_owned(),
            };
            let mut log = self.slow_log.lock();
            if log.len() == self.slow_capacity {
                log.pop_front();
            }
            log.push_back(entry);
        }
    }

    /// The slow statements kept, oldest first.
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        self.slow_log.lock().iter().cloned().collect()
    }

    /// How many statements of `kind` on `collection` were slow.
    pub fn slow_query_count(&self, kind: StatementKind, collection: &str) -> u64 {
        let labels = StatementLabels {
            kind: kind.as_str(),
            collection: collection.to_owned(),
        };
        self.slow_queries.get(&labels).map_or(0, |c| c.get())
    }

    /// Counts a failed operation.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// How many operations failed with this error kind.
    pub fn error_count(&self, kind: &'static str) -> u64 {
        self.errors.get(&KindLabels { kind }).map_or(0, |c| c.get())
    }

    /// A statement starts waiting for a connection.
    pub fn acquire_started(&self) {
        self.pool_waiters.inc();
    }

    /// A wait for a connection ended after `waited`; `timed_out` when it gave up.
    pub fn acquire_finished(&self, waited: Duration, timed_out: bool) {
        self.pool_waiters.dec();
        self.acquire_duration.observe(waited.as_secs_f64());
        if timed_out {
            self.acquire_timeouts.inc();
        }
    }

    /// How many waits for a connection timed out.
    pub fn acquire_timeout_count(&self) -> u64 {
        self.acquire_timeouts.get()
    }

    /// Statements waiting for a connection now.
    pub fn waiters(&self) -> i64 {
        self.pool_waiters.get()
    }

    /// Samples the pool's size.
    pub fn pool(&self, state: PoolState) {
        let set = |s: &'static str, v: u32| {
            self.pool_connections
                .get_or_create(&StateLabels { state: s })
                .set(i64::from(v));
        };
        set("open", state.size);
        set("idle", state.idle);
        set("in_use", state.size.saturating_sub(state.idle));
    }

    /// A transaction ended after `took`, committed or rolled back.
    pub fn transaction(&self, committed: bool, took: Duration) {
        let outcome = if committed { "commit" } else { "rollback" };
        self.transactions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.transaction_duration.observe(took.as_secs_f64());
    }

    /// Records a fenced write: accepted, or refused for a lower token.
    pub fn fenced_write(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.fenced_writes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// How many fenced writes were accepted (`true`) or refused (`false`).
    pub fn fenced_writes(&self, accepted: bool) -> u64 {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.fenced_writes
            .get(&OutcomeLabels { outcome })
            .map_or(0, |c| c.get())
    }

    /// How many transactions committed (`true`) or rolled back (`false`).
    pub fn transaction_count(&self, committed: bool) -> u64 {
        let outcome = if committed { "commit" } else { "rollback" };
        self.transactions
            .get(&OutcomeLabels { outcome })
            .map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_log_is_bounded_and_counted() {
        let m = StoreMetrics::new(Duration::from_millis(10), 2);
        m.statement(
            StatementKind::Get,
            "c",
            "SELECT 1",
            Duration::from_millis(1),
        );
        for i in 0..3 {
            m.statement(
                StatementKind::Query,
                "c",
                &format!("q{i}"),
                Duration::from_millis(20),
            );
        }
        let log = m.slow_queries();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].sql, "q1");
        assert_eq!(m.slow_query_count(StatementKind::Query, "c"), 3);
        assert_eq!(m.slow_query_count(StatementKind::Get, "c"), 0);
    }

    #[test]
    fn names_are_prometheus_style() {
        let m = StoreMetrics::new(Duration::from_millis(10), 2);
        m.error("busy");
        m.transaction(true, Duration::from_millis(3));
        m.pool(PoolState { size: 3, idle: 1 });
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("plexus_store_errors_total{kind=\"busy\"} 1"));
        assert!(text.contains("plexus_store_transactions_total{outcome=\"commit\"} 1"));
        assert!(text.contains("plexus_store_pool_connections{state=\"in_use\"} 2"));
        assert!(text.contains("plexus_store_pool_acquire_timeouts_total 0"));
        assert!(text.contains("plexus_store_transaction_duration_seconds_count 1"));
    }
}
