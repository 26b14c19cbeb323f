//! The store's configuration: which database, how big a pool, and every bound the
//! store enforces.
//!
//! A [`StoreConfig`] deserializes from the node's TOML. The backend is chosen by the
//! URL's scheme: `sqlite://<path>` (the default, one file, WAL) or
//! `postgres://…` / `postgresql://…`. Durations are whole milliseconds (`*_ms`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Which database engine a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl BackendKind {
    /// The backend's name as in metric labels and reports: `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How to reach the database and the bounds the store holds to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://<path>` (created when missing) or `postgres://user@host:port/db`.
    /// Default: `sqlite://data/plexus.db`.
    pub url: String,
    /// PostgreSQL only: the schema the store's tables live in (created when missing).
    /// `None` uses the server's `search_path` (normally `public`).
    pub schema: Option<String>,
    /// Most connections the pool opens. Default 8.
    pub max_connections: u32,
    /// Connections the pool keeps open when idle. Default 0.
    pub min_connections: u32,
    /// How long a statement waits for a pooled connection to come free when every
    /// one is in use (load) before failing with [`StoreError::PoolTimeout`]. Default
    /// 5,000 ms.
    pub acquire_timeout_ms: u64,
    /// How long opening a connection to the database (or testing an idle one) may
    /// take before the database counts as unreachable: the call fails with
    /// [`StoreError::Unavailable`] and the store's breaker opens (see
    /// [`Connection`](crate::Connection)). Distinct from `acquire_timeout_ms`, which
    /// is waiting for a connection other calls hold. Default 2,000 ms.
    pub connect_timeout_ms: u64,
    /// How long an idle connection is kept before it is closed; `None` keeps it.
    /// Default 600,000 ms.
    pub idle_timeout_ms: Option<u64>,
    /// SQLite only: how long a writer waits for the database lock. Default 5,000 ms.
    pub busy_timeout_ms: u64,
    /// A statement that takes at least this long is logged as slow and counted.
    /// Default 100 ms.
    pub slow_query_threshold_ms: u64,
    /// How many slow statements the in-memory slow-query log keeps (oldest dropped
    /// first). Default 256.
    pub slow_query_log_capacity: usize,
    /// The largest document accepted, in bytes of its JSON text. Default 1 MiB.
    pub max_document_bytes: usize,
    /// The deepest nesting of objects and arrays accepted in a document. Default 32.
    pub max_document_depth: usize,
    /// Documents a query returns when it sets no limit. Default 100.
    pub default_query_limit: u32,
    /// The largest limit a query may ask for. Default 1,000.
    pub max_query_limit: u32,
    /// The most bytes of documents (as JSON text) one query page holds; a page that
    /// would hold more ends early, with a cursor to continue from. At least
    /// `max_document_bytes`. Default 16 MiB.
    pub max_result_bytes: usize,
    /// The most nodes (conditions, `and`/`or`/`not`, `in` values) one filter may
    /// hold. Default 128.
    pub max_filter_terms: usize,
    /// The most operations one transaction may hold. Default 256.
    pub max_transaction_ops: usize,
    /// The most secondary indexes one collection may declare. Default 16.
    pub max_indexes: usize,
    /// Topic patterns whose events are durable: written to the outbox table (with
    /// the data change that caused them, in a transaction) and delivered by its
    /// relay. Default none.
    pub durable_topics: Vec<String>,
    /// The outbox's bounds (used when `durable_topics` is not empty).
    pub outbox: crate::OutboxConfig,
    /// How the outbox's relay reads, delivers and retries.
    pub relay: crate::RelayConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/plexus.db".to_owned(),
            schema: None,
            max_connections: 8,
            min_connections: 0,
            acquire_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            idle_timeout_ms: Some(600_000),
            busy_timeout_ms: 5_000,
            slow_query_threshold_ms: 100,
            slow_query_log_capacity: 256,
            max_document_bytes: 1024 * 1024,
            max_document_depth: 32,
            default_query_limit: 100,
            max_query_limit: 1_000,
            max_result_bytes: 16 * 1024 * 1024,
            max_filter_terms: 128,
            max_transaction_ops: 256,
            max_indexes: 16,
            durable_topics: Vec::new(),
            outbox: crate::OutboxConfig::default(),
            relay: crate::RelayConfig::default(),
        }
    }
}

impl StoreConfig {
    /// The default configuration with an SQLite file `plexus.db` under `data_dir`.
    pub fn sqlite_in(data_dir: impl AsRef<Path>) -> Self {
        let path = data_dir.as_ref().join("plexus.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            ..Self::default()
        }
    }

    /// The default configuration pointed at `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Result<BackendKind, StoreError> {
        let scheme = self.url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(BackendKind::Sqlite),
            "postgres" | "postgresql" => Ok(BackendKind::Postgres),
            _ => Err(StoreError::Config {
                field: "url".to_owned(),
                reason: format!(
                    "scheme `{scheme}` is not supported: use sqlite://<path> or postgres://…"
                ),
            }),
        }
    }

    /// The acquire timeout as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    /// The connect timeout as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The slow-query threshold as a duration.
    pub fn slow_query_threshold(&self) -> Duration {
        Duration::from_millis(self.slow_query_threshold_ms)
    }

    /// Checks every field, naming the first that is out of range.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.backend()?;
        let bad = |field: &str, reason: &str| {
            Err(StoreError::Config {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.min_connections > self.max_connections {
            return bad("min_connections", "must not exceed max_connections");
        }
        if self.acquire_timeout_ms == 0 {
            return bad("acquire_timeout_ms", "must be at least 1");
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "must be at least 1");
        }
        if self.slow_query_log_capacity == 0 {
            return bad("slow_query_log_capacity", "must be at least 1");
        }
        if self.max_document_bytes == 0 {
            return bad("max_document_bytes", "must be at least 1");
        }
        if self.max_document_depth == 0 {
            return bad("max_document_depth", "must be at least 1");
        }
        if self.max_result_bytes < self.max_document_bytes {
            return bad("max_result_bytes", "must be at least max_document_bytes");
        }
        if self.max_query_limit == 0 {
            return bad("max_query_limit", "must be at least 1");
        }
        if self.default_query_limit == 0 || self.default_query_limit > self.max_query_limit {
            return bad(
                "default_query_limit",
                "must be between 1 and max_query_limit",
            );
        }
        if self.max_filter_terms == 0 {
            return bad("max_filter_terms", "must be at least 1");
        }
        if self.max_transaction_ops == 0 {
            return bad("max_transaction_ops", "must be at least 1");
        }
        if let Some(schema) = &self.schema {
            crate::sql::check_identifier("schema", schema, 48)?;
        }
        for (i, pattern) in self.durable_topics.iter().enumerate() {
            if let Err(e) = plexus_core::TopicPattern::new(pattern) {
                return Err(StoreError::Config {
                    field: format!("durable_topics[{i}]"),
                    reason: format!("`{pattern}` is not a topic pattern: {e}"),
                });
            }
        }
        let nested = |prefix: &str, e: crate::OutboxError| match e {
            crate::OutboxError::InvalidArgument { field, reason } => StoreError::Config {
                field: format!("{prefix}.{field}"),
                reason,
            },
            other => StoreError::Config {
                field: prefix.to_owned(),
                reason: other.to_string(),
            },
        };
        self.outbox.validate().map_err(|e| nested("outbox", e))?;
        self.relay.validate().map_err(|e| nested("relay", e))?;
        Ok(())
    }
}

/// The `[store]` section as the node's configuration store checks it, on start and on
/// every runtime change: the same rules as [`StoreConfig::validate`], the field named
/// relative to `[store]`.
impl plexus_config::Validate for StoreConfig {
    fn validate(&self) -> Result<(), plexus_config::FieldErrors> {
        StoreConfig::validate(self).map_err(|e| match e {
            StoreError::Config { field, reason } => plexus_config::FieldErrors::one(field, reason),
            other => plexus_config::FieldErrors::one("", other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            StoreConfig::sqlite_in("/tmp/x").backend().ok(),
            Some(BackendKind::Sqlite)
        );
        assert_eq!(
            StoreConfig::with_url("postgresql://u@h/db").backend().ok(),
            Some(BackendKind::Postgres)
        );
        let err = StoreConfig::with_url("mysql://h/db")
            .validate()
            .unwrap_err();
        assert!(matches!(err, StoreError::Config { ref field, .. } if field == "url"));
    }

    #[test]
    fn toml_fields_override_defaults() {
        let config: StoreConfig =
            toml_like(r#"{"url": "postgres://p@h/db", "max_connections": 2}"#);
        assert_eq!(config.max_connections, 2);
        assert_eq!(config.slow_query_threshold_ms, 100);
        assert_eq!(config.connect_timeout(), Duration::from_secs(2));
        assert_eq!(config.max_document_bytes, 1024 * 1024);
        let bad = StoreConfig {
            min_connections: 3,
            max_connections: 2,
            ..StoreConfig::default()
        };
        assert!(
            matches!(bad.validate(), Err(StoreError::Config { field, .. }) if field == "min_connections")
        );
    }

    fn toml_like(json: &str) -> StoreConfig {
        serde_json::from_str(json).unwrap()
    }
}
