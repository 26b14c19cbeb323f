//! The family's configuration section, `[jobs]`: where jobs are kept, how many
//! run at once (in all and per queue), their leases, retries and backoff, and the
//! bounds every enqueue is held to. Read and checked so a problem is named by its
//! full path (`jobs.lease_ms`); without the section jobs are kept in the node's
//! SQLite file with these defaults, and `backend = "postgres"` with a
//! `postgres_url` keeps them in PostgreSQL, shared by every node that names it;
//! `backend = "redis"` keeps them on the server of the node's `[redis]` section.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "jobs";

/// Where jobs are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// A SQLite file (`sqlite_url`), the embedded default.
    #[default]
    Sqlite,
    /// A PostgreSQL database (`postgres_url`), shared by several nodes.
    Postgres,
    /// The Redis/Valkey of the node's `[redis]` section (under its key prefix and
    /// `jobs:`), shared by several nodes; no transactional enqueue.
    Redis,
}

/// `[jobs]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Run the `jobs` service (default true).
    pub enabled: bool,
    /// Run workers on this node (default true); false only takes and answers calls.
    pub workers: bool,
    /// Where jobs are kept: `sqlite` (default), `postgres` or `redis` (the node's
    /// `[redis]` connection).
    pub backend: BackendChoice,
    /// The SQLite database (`sqlite://…`). Default: the DataStore's file,
    /// `<node.data_dir>/plexus.db`, so jobs sit beside the data.
    pub sqlite_url: Option<String>,
    /// The PostgreSQL database (`postgres://…`), needed with `backend = "postgres"`;
    /// name the DataStore's to enqueue jobs in its transactions.
    pub postgres_url: Option<String>,
    /// The PostgreSQL schema of the jobs' tables (created when missing); default
    /// the connection's `search_path`.
    pub postgres_schema: Option<String>,
    /// The most database connections the queue holds (default 8).
    pub pool_size: u32,
    /// How long an operation waits for a free connection, in milliseconds
    /// (default 10,000).
    pub acquire_timeout_ms: u64,
    /// How many jobs this node runs at once in all queues (default 64).
    pub max_running: usize,
    /// How many jobs of one queue this node runs at once (default 8).
    pub concurrency: usize,
    /// Per-queue overrides of `concurrency`.
    pub queues: BTreeMap<String, usize>,
    /// The most jobs one claim takes and one completion write stores (default 32):
    /// a claim takes the best due job and then, in the same turn, up to this many
    /// of its queue (within the queue's room and rate); finished jobs' results are
    /// stored together, one transaction for all that finished meanwhile, and so
    /// are concurrent enqueues. 1 claims, stores and enqueues one job at a time.
    pub batch: usize,
    /// Per-queue rate limits: the most jobs of the queue started per second by
    /// all nodes sharing the backend together (none by default); its tokens are a
    /// bucket in the backend.
    pub rates: BTreeMap<String, u32>,
    /// A running job's lease, in milliseconds (default 30,000); its worker renews it
    /// every third of it. A job whose lease ran out (its worker died) is run again.
    pub lease_ms: u64,
    /// How often an idle worker looks for due jobs and expired leases without being
    /// woken, in milliseconds (default 1,000).
    pub poll_ms: u64,
    /// Attempts of a job that does not say (default 3).
    pub default_max_attempts: u32,
    /// The most attempts a job may ask for (default 100).
    pub max_attempts: u32,
    /// The first retry's delay, in milliseconds, for a job that does not say
    /// (default 1,000); each retry doubles it, up to `max_backoff_ms`, with jitter.
    pub backoff_ms: u64,
    /// The longest delay between attempts, in milliseconds (default 3,600,000).
    pub max_backoff_ms: u64,
    /// One attempt's time limit, for a job that does not say, in milliseconds
    /// (default 60,000).
    pub timeout_ms: u64,
    /// The longest per-attempt time limit a job may ask for (default 3,600,000).
    pub max_timeout_ms: u64,
    /// The largest params (and metadata), as JSON, in bytes (default 65,536).
    pub max_params_bytes: usize,
    /// The furthest in the future a job may be scheduled, in milliseconds (default
    /// 365 days).
    pub max_delay_ms: u64,
    /// The most jobs `list` and `dead` answer (default 1,000).
    pub max_list: u32,
    /// The most errors kept in a job's history (default 20: the last ones).
    pub max_errors: usize,
    /// The most recurring schedules (default 1,000).
    pub max_schedules: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            workers: true,
            backend: BackendChoice::Sqlite,
            sqlite_url: None,
            postgres_url: None,
            postgres_schema: None,
            pool_size: 8,
            acquire_timeout_ms: 10_000,
            max_running: 64,
            concurrency: 8,
            queues: BTreeMap::new(),
            batch: 32,
            rates: BTreeMap::new(),
            lease_ms: 30_000,
            poll_ms: 1_000,
            default_max_attempts: 3,
            max_attempts: 100,
            backoff_ms: 1_000,
            max_backoff_ms: 3_600_000,
            timeout_ms: 60_000,
            max_timeout_ms: 3_600_000,
            max_params_bytes: 65_536,
            max_delay_ms: 365 * DAY_MS,
            max_list: 1_000,
            max_errors: 20,
            max_schedules: 1_000,
        }
    }
}

impl JobsConfig {
    /// The lease.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// Where PostgreSQL keeps the jobs, by these settings (`None` without a URL).
    pub fn postgres(&self) -> Option<crate::PostgresOptions> {
        self.postgres_url
            .as_ref()
            .map(|url| crate::PostgresOptions {
                url: url.clone(),
                schema: self.postgres_schema.clone(),
                pool_size: self.pool_size,
                acquire_timeout_ms: self.acquire_timeout_ms,
            })
    }

    /// The idle poll.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// How many jobs of `queue` this node runs at once.
    pub fn concurrency_of(&self, queue: &str) -> usize {
        self.queues.get(queue).copied().unwrap_or(self.concurrency)
    }
}

const DAY_MS: u64 = 86_400_000;

impl Validate for JobsConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_running", self.max_running, 1..=100_000)
            .range("concurrency", self.concurrency, 1..=100_000)
            .range("batch", self.batch, 1..=1_000)
            .range("lease_ms", self.lease_ms, 100..=DAY_MS)
            .range("poll_ms", self.poll_ms, 1..=600_000)
            .range("max_attempts", self.max_attempts, 1..=10_000)
            .range(
                "default_max_attempts",
                self.default_max_attempts,
                1..=self.max_attempts.max(1),
            )
            .range("backoff_ms", self.backoff_ms, 0..=DAY_MS)
            .range("max_backoff_ms", self.max_backoff_ms, 1..=30 * DAY_MS)
            .range("max_timeout_ms", self.max_timeout_ms, 1..=DAY_MS)
            .range(
                "timeout_ms",
                self.timeout_ms,
                1..=self.max_timeout_ms.max(1),
            )
            .range("max_params_bytes", self.max_params_bytes, 2..=16 << 20)
            .range("max_delay_ms", self.max_delay_ms, 0..=3_650 * DAY_MS)
            .range("max_list", self.max_list, 1..=100_000)
            .range("max_errors", self.max_errors, 1..=1_000)
            .range("pool_size", self.pool_size, 1..=1_000)
            .range("max_schedules", self.max_schedules, 1..=100_000)
            .range("acquire_timeout_ms", self.acquire_timeout_ms, 1..=600_000)
            .check(
                self.backend != BackendChoice::Postgres || self.postgres_url.is_some(),
                "postgres_url",
                || "is needed with backend = \"postgres\"".to_owned(),
            )
            .check(
                self.postgres_url
                    .as_deref()
                    .is_none_or(|u| u.starts_with("postgres://") || u.starts_with("postgresql://")),
                "postgres_url",
                || "must be a postgres:// URL".to_owned(),
            )
            .check(
                self.postgres_schema
                    .as_deref()
                    .is_none_or(|s| crate::postgres::check_schema(s).is_ok()),
                "postgres_schema",
                || {
                    "is not a schema name (a-z first, then a-z, 0-9 and _, at most 48 bytes)"
                        .to_owned()
                },
            )
            .check(
                self.sqlite_url
                    .as_deref()
                    .is_none_or(|u| u.starts_with("sqlite:")),
                "sqlite_url",
                || "must be a sqlite: URL".to_owned(),
            );
        for (queue, rate) in &self.rates {
            errors
                .check(
                    crate::jobs::check_queue(queue).is_ok(),
                    &format!("rates.{queue}"),
                    || "is not a queue name (a-z, 0-9, _ and -, 1 to 64 bytes)".to_owned(),
                )
                .range(&format!("rates.{queue}"), *rate, 1..=1_000_000);
        }
        for (queue, n) in &self.queues {
            errors
                .check(
                    crate::jobs::check_queue(queue).is_ok(),
                    &format!("queues.{queue}"),
                    || "is not a queue name (a-z, 0-9, _ and -, 1 to 64 bytes)".to_owned(),
                )
                .range(&format!("queues.{queue}"), *n, 1..=100_000);
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{NodeSection, SectionFamily};
    use serde_json::json;

    #[test]
    fn problems_are_named_by_their_full_path() {
        let cases = [
            (json!({"lease_ms": 0}), "jobs.lease_ms"),
            (json!({"sqlite_url": "mysql://x"}), "jobs.sqlite_url"),
            (json!({"backend": "postgres"}), "jobs.postgres_url"),
            (json!({"postgres_url": "mysql://x"}), "jobs.postgres_url"),
            (
                json!({"postgres_schema": "Bad-Schema"}),
                "jobs.postgres_schema",
            ),
            (json!({"pool_size": 0}), "jobs.pool_size"),
            (json!({"batch": 0}), "jobs.batch"),
            (json!({"batch": 1_001}), "jobs.batch"),
            (json!({"backend": "mysql"}), "jobs"),
            (json!({"queues": {"Bad Name": 2}}), "jobs.queues.Bad Name"),
            (json!({"queues": {"mail": 0}}), "jobs.queues.mail"),
            (json!({"rates": {"mail": 0}}), "jobs.rates.mail"),
            (json!({"unknown": 1}), "jobs"),
        ];
        let node = NodeSection::default();
        for (section, key) in cases {
            let err = crate::JobsFamily::default()
                .settings(Some(&section), &node)
                .unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert!(crate::JobsFamily::default().settings(None, &node).is_ok());
    }
}
