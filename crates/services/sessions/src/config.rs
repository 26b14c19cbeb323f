//! The family's configuration section, `[sessions]`: which backend, the bounds every
//! session is held to (TTLs, an absolute lifetime, the size of its data, its
//! subject), the cap per subject and what happens past it, and how often expired
//! sessions are swept. Read and checked so that a problem is named by its full path
//! (`sessions.max_ttl_ms`); without the section sessions are kept in process with
//! these defaults.

use serde::{Deserialize, Serialize};

use plexus_config::{FieldErrors, Validate};

/// The section the family reads.
pub const SECTION: &str = "sessions";

/// Where sessions live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process: lost when it stops.
    #[default]
    Memory,
    /// In a SQLite file (`sqlite_path`): kept across restarts of this node.
    Sqlite,
    /// On the Redis/Valkey of `[redis]`, shared by every node that uses it.
    Redis,
}

impl Backend {
    /// Its name in configuration and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
        }
    }
}

/// What `session.create` does when the subject already has `max_per_subject` live
/// sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCap {
    /// Revoke the subject's session that expires soonest (the least recently
    /// used), counted in `plexus_sessions_evicted_total` and announced as
    /// `session.revoked` with reason `evicted`.
    #[default]
    EvictOldest,
    /// Refuse the new session with a typed error.
    Refuse,
}

/// `[sessions]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Run the `session` service (default true).
    pub enabled: bool,
    /// `memory` (default), `sqlite` or `redis`.
    pub backend: Backend,
    /// With `backend = "sqlite"`: the file (default empty: `sessions.sqlite` in
    /// `[node] data_dir`).
    pub sqlite_path: String,
    /// The TTL of a session created without one, in milliseconds (default
    /// 1,800,000: 30 minutes). `session.touch` extends a session by its TTL.
    pub ttl_ms: u64,
    /// The longest TTL `session.create` may ask for, in milliseconds (default
    /// 86,400,000: a day).
    pub max_ttl_ms: u64,
    /// The longest a session may live however often it is touched, in
    /// milliseconds from its creation (default 0: no bound besides its TTL).
    pub max_lifetime_ms: u64,
    /// The largest `data`, as JSON text, in bytes (default 16,384).
    pub max_data_bytes: usize,
    /// The longest subject, in bytes (default 256).
    pub max_subject_bytes: usize,
    /// The most live sessions one subject may hold (default 16).
    pub max_per_subject: usize,
    /// Past `max_per_subject`: `evict_oldest` (default) or `refuse`.
    pub on_cap: OnCap,
    /// The memory and SQLite backends: the most sessions held in all (default
    /// 100,000); a `create` past it is refused and counted.
    pub max_sessions: usize,
    /// The most sessions `session.list` returns in one page (default 100).
    pub max_page: usize,
    /// How often expired sessions are swept and announced as `session.expired`, in
    /// milliseconds (default 1,000).
    pub sweep_interval_ms: u64,
    /// The most expired sessions one sweep takes (default 1,000): the work of one
    /// tick is bounded; a backlog is taken over the next ticks.
    pub sweep_batch: usize,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: Backend::Memory,
            sqlite_path: String::new(),
            ttl_ms: 1_800_000,
            max_ttl_ms: 86_400_000,
            max_lifetime_ms: 0,
            max_data_bytes: 16 * 1024,
            max_subject_bytes: 256,
            max_per_subject: 16,
            on_cap: OnCap::EvictOldest,
            max_sessions: 100_000,
            max_page: 100,
            sweep_interval_ms: 1_000,
            sweep_batch: 1_000,
        }
    }
}

/// The longest TTL or lifetime any setting may hold: 365 days.
const MAX_ANY_MS: u64 = 365 * 86_400_000;

impl Validate for SessionsConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("ttl_ms", self.ttl_ms, 1..=MAX_ANY_MS)
            .range("max_ttl_ms", self.max_ttl_ms, 1..=MAX_ANY_MS)
            .check(self.ttl_ms <= self.max_ttl_ms, "ttl_ms", || {
                format!("must not exceed max_ttl_ms ({})", self.max_ttl_ms)
            })
            .range("max_lifetime_ms", self.max_lifetime_ms, 0..=MAX_ANY_MS)
            .range("max_data_bytes", self.max_data_bytes, 2..=16 * 1024 * 1024)
            .range("max_subject_bytes", self.max_subject_bytes, 1..=4_096)
            .range("max_per_subject", self.max_per_subject, 1..=10_000)
            .range("max_sessions", self.max_sessions, 1..=100_000_000)
            .range("max_page", self.max_page, 1..=10_000)
            .range("sweep_interval_ms", self.sweep_interval_ms, 1..=3_600_000)
            .range("sweep_batch", self.sweep_batch, 1..=100_000);
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{FamilyError, NodeSection, SectionFamily};
    use serde_json::{Value, json};

    use super::*;

    fn check(section: Option<&Value>) -> Result<SessionsConfig, FamilyError> {
        crate::SessionsFamily::default().settings(section, &NodeSection::default())
    }

    #[test]
    fn problems_are_named_by_their_full_path() {
        let cases = [
            (json!({"backend": "memcached"}), "sessions.backend"),
            (json!({"on_cap": "drop"}), "sessions.on_cap"),
            (json!({"ttl_ms": 0}), "sessions.ttl_ms"),
            (json!({"ttl_ms": 10, "max_ttl_ms": 5}), "sessions.ttl_ms"),
            (json!({"max_per_subject": 0}), "sessions.max_per_subject"),
            (
                json!({"sweep_interval_ms": 0}),
                "sessions.sweep_interval_ms",
            ),
            (json!({"surprise": 1}), "sessions"),
        ];
        for (section, key) in cases {
            let err = check(Some(&section)).unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        let config = check(None).unwrap();
        assert_eq!(config, SessionsConfig::default());
        assert_eq!(config.on_cap, OnCap::EvictOldest);
    }
}
