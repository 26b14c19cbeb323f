//! The family's configuration section, `[locks]`: which backend, the bounds every
//! call is held to (name and holder sizes, leases, waits, how many locks the
//! in-process backend holds), how a waiter polls, and where PostgreSQL is. Read and
//! checked so that a problem is named by its full path (`locks.max_lease_ms`);
//! without the section locks are held in process with these defaults.

use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "locks";

/// Where locks are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process: only this node's callers share them.
    #[default]
    Memory,
    /// On the Redis/Valkey of `[redis]`, shared by every node that uses it.
    Redis,
    /// In a table of the PostgreSQL at `locks.postgres_url`.
    Postgres,
}

impl Backend {
    /// Its name in configuration and in `lock.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

/// `[locks]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocksConfig {
    /// Run the `lock` service (default true).
    pub enabled: bool,
    /// `memory` (default), `redis` or `postgres`.
    pub backend: Backend,
    /// With `backend = "postgres"`: the server (`postgres://…`), required. The
    /// `[store]` section is not read: to keep locks beside the data they guard, name
    /// the same URL. The pool takes `[store]`'s defaults, and the store's migrations
    /// create the lock table and token sequence.
    pub postgres_url: Option<String>,
    /// With `backend = "postgres"`: a schema of its own for the lock table (default
    /// none: the connection's `search_path`).
    pub postgres_schema: Option<String>,
    /// The longest lock name, in bytes (default 256).
    pub max_name_bytes: usize,
    /// The longest holder label, in bytes (default 128).
    pub max_holder_bytes: usize,
    /// The longest lease a call may ask for, in milliseconds (default 600,000).
    pub max_lease_ms: u64,
    /// The longest a call may wait for a busy lock, in milliseconds (default
    /// 60,000).
    pub max_wait_ms: u64,
    /// How many locks the in-process backend holds at once (default 100,000); an
    /// acquire beyond it is refused (`too_many`) and counted.
    pub max_locks: usize,
    /// A waiter's first pause between attempts, in milliseconds (default 5); it
    /// doubles up to `poll_max_ms`, and never passes the wait's end.
    pub poll_min_ms: u64,
    /// A waiter's longest pause between attempts, in milliseconds (default 200).
    pub poll_max_ms: u64,
}

impl Default for LocksConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: Backend::Memory,
            postgres_url: None,
            postgres_schema: None,
            max_name_bytes: 256,
            max_holder_bytes: 128,
            max_lease_ms: 600_000,
            max_wait_ms: 60_000,
            max_locks: 100_000,
            poll_min_ms: 5,
            poll_max_ms: 200,
        }
    }
}

impl LocksConfig {
    /// The longest lease.
    pub fn max_lease(&self) -> Duration {
        Duration::from_millis(self.max_lease_ms)
    }

    /// The longest wait.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// The longest any lease or wait setting may be: one day.
const DAY_MS: u64 = 86_400_000;

impl Validate for LocksConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_name_bytes", self.max_name_bytes, 1..=4_096)
            .range("max_holder_bytes", self.max_holder_bytes, 1..=4_096)
            .range("max_lease_ms", self.max_lease_ms, 1..=DAY_MS)
            .range("max_wait_ms", self.max_wait_ms, 0..=DAY_MS)
            .range("max_locks", self.max_locks, 1..=100_000_000)
            .range("poll_min_ms", self.poll_min_ms, 1..=60_000)
            .range("poll_max_ms", self.poll_max_ms, 1..=60_000)
            .check(self.poll_min_ms <= self.poll_max_ms, "poll_min_ms", || {
                format!("must not exceed poll_max_ms ({})", self.poll_max_ms)
            })
            .check(
                self.backend != Backend::Postgres
                    || self.postgres_url.as_deref().is_some_and(|u| {
                        u.starts_with("postgres://") || u.starts_with("postgresql://")
                    }),
                "postgres_url",
                || "must be a postgres:// URL with backend = \"postgres\"".to_owned(),
            )
            .check(
                self.postgres_schema.as_deref().is_none_or(|s| {
                    plexus_store::check_identifier("postgres_schema", s, 48).is_ok()
                }),
                "postgres_schema",
                || {
                    "is not a schema name (a-z, 0-9, _, starting with a letter, at most 48 bytes)"
                        .to_owned()
                },
            );
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
            (json!({"backend": "zookeeper"}), "locks.backend"),
            (json!({"max_lease_ms": 0}), "locks.max_lease_ms"),
            (
                json!({"poll_min_ms": 50, "poll_max_ms": 10}),
                "locks.poll_min_ms",
            ),
            (json!({"backend": "postgres"}), "locks.postgres_url"),
            (
                json!({"backend": "postgres", "postgres_url": "mysql://x"}),
                "locks.postgres_url",
            ),
            (
                json!({"postgres_schema": "Bad-Name"}),
                "locks.postgres_schema",
            ),
            (json!({"unknown": 1}), "locks"),
        ];
        let node = NodeSection::default();
        for (section, key) in cases {
            let err = crate::LocksFamily::default()
                .settings(Some(&section), &node)
                .unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert!(crate::LocksFamily::default().settings(None, &node).is_ok());
    }
}
