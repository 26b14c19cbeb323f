//! Helpers for tests that run on a real database (feature `test-util`): where a test
//! database lives ([`Place`]), the test PostgreSQL's address and a route to it through
//! a proxy, events and their payloads, and [`on_both!`](crate::on_both) to run one
//! test on SQLite and PostgreSQL.
//!
//! These panic when something is wrong (they are test helpers): `unwrap_used` is
//! allowed here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use plexus_core::{Envelope, Payload, Topic};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Executor};

use crate::conformance::Fixture;
use crate::{BackendKind, DataStore, StoreConfig};

/// How long a test waits for something it expects to happen.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The PostgreSQL the tests use: `PLEXUS_TEST_POSTGRES_URL`, or the local default.
pub fn postgres_url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh name for a file, a schema or a collection.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The test PostgreSQL server's address (IPv4), and the test URL with `via` (a proxy
/// in front of it) in place of the server when given.
pub async fn postgres_through(via: Option<SocketAddr>) -> (SocketAddr, String) {
    let url = postgres_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = match rest.split_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let upstream = tokio::net::lookup_host(&hostport)
        .await
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .unwrap();
    let via = via.map_or(hostport, |p| p.to_string());
    (upstream, format!("{scheme}://{user}{via}/{path}"))
}

/// Where a test database lives: an SQLite file in a fresh folder, or a fresh
/// PostgreSQL schema. Reopening the same place sees the same data.
#[derive(Clone, Debug)]
pub struct Place {
    /// The engine.
    pub kind: BackendKind,
    /// The SQLite folder.
    pub dir: PathBuf,
    /// The PostgreSQL schema.
    pub schema: String,
}

impl Place {
    /// A new place on `kind`, named after nothing else.
    pub fn new(kind: BackendKind) -> Self {
        let id = unique();
        Self {
            kind,
            dir: std::env::temp_dir().join(format!("plexus-test-{id}")),
            schema: format!("pt_{id}"),
        }
    }

    /// The configuration that opens this place.
    pub fn config(&self) -> StoreConfig {
        match self.kind {
            BackendKind::Sqlite => StoreConfig::sqlite_in(&self.dir),
            BackendKind::Postgres => StoreConfig {
                schema: Some(self.schema.clone()),
                ..StoreConfig::with_url(postgres_url())
            },
        }
    }

    /// Opens the place with `tweak` applied to its configuration.
    pub async fn open_with(&self, tweak: impl FnOnce(&mut StoreConfig)) -> DataStore {
        let mut config = self.config();
        tweak(&mut config);
        DataStore::connect(&config).await.unwrap_or_else(|e| {
            panic!(
                "{} must be reachable for these tests: {e}",
                self.kind.as_str()
            )
        })
    }

    /// Opens the place.
    pub async fn open(&self) -> DataStore {
        self.open_with(|_| {}).await
    }

    /// Removes the file or schema.
    pub async fn remove(&self) {
        match self.kind {
            BackendKind::Sqlite => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            BackendKind::Postgres => {
                let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
                pool.execute(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.schema
                )))
                .await
                .unwrap();
                pool.close().await;
            }
        }
    }
}

/// A data store on a fresh [`Place`], closed and removed by
/// [`finish`](TestStore::finish): a conformance [`Fixture`].
pub struct TestStore {
    /// The open store.
    pub ds: DataStore,
    place: Place,
}

impl TestStore {
    /// A fresh store of `kind` with `tweak` applied to the default configuration.
    pub async fn open(kind: BackendKind, tweak: impl FnOnce(&mut StoreConfig)) -> Self {
        let place = Place::new(kind);
        let ds = place.open_with(tweak).await;
        Self { ds, place }
    }

    /// Closes the store and removes its file or schema.
    pub async fn finish(self) {
        self.ds.store().close().await;
        self.place.remove().await;
    }
}

impl Fixture for TestStore {
    fn data_store(&self) -> &DataStore {
        &self.ds
    }

    async fn finish(self) {
        TestStore::finish(self).await;
    }
}

/// An outbox on `ds` (default settings) that keeps the events on `pattern` durably.
pub async fn durable_outbox(ds: &DataStore, pattern: &str) -> crate::Outbox {
    let outbox = crate::Outbox::open(ds.clone(), crate::OutboxConfig::default())
        .await
        .unwrap();
    outbox.declare_durable(pattern).unwrap();
    outbox
}

/// An event on `topic` with a JSON payload.
pub fn event(topic: &str, payload: Value) -> Envelope {
    Envelope::new(Topic::new(topic).unwrap(), Payload::json(&payload).unwrap())
}

/// The JSON payload of a delivered envelope.
pub fn payload_of(e: &Envelope) -> Value {
    serde_json::from_slice(&e.payload().encode().unwrap()).unwrap()
}

/// Runs each listed `async fn(BackendKind)` on SQLite and PostgreSQL, as
/// multi-threaded `#[tokio::test]`s in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::BackendKind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::BackendKind::Postgres).await;
                }
            )*
        }
    };
}

/// Records thirty mutating calls, `i` = 0..30 in their params, one millisecond
/// apart from the returned start: callers `ana`, `bo`, `cy` in turn; even `i` is
/// `cases.create`, odd `cases.update`; every fifth (`i % 5 == 4`) failed with invalid
/// params; `i` = 0, 10 and 20 share the returned correlation id.
pub async fn record_thirty_calls(
    auditor: &crate::Auditor,
) -> (plexus_core::Timestamp, plexus_core::CorrelationId) {
    use plexus_core::{CallContext, CorrelationId, ServiceError, Timestamp};
    let shared = CorrelationId::new();
    let t0 = Timestamp::now();
    for i in 0..30u64 {
        let who = ["ana", "bo", "cy"][(i % 3) as usize];
        let method = if i % 2 == 0 {
            "cases.create"
        } else {
            "cases.update"
        };
        let mut ctx = CallContext::new().with_caller(who);
        if i % 10 == 0 {
            ctx = ctx.with_correlation_id(shared);
        }
        let result: Result<Value, ServiceError> = if i % 5 == 4 {
            Err(ServiceError::invalid_params("/status", "unknown status"))
        } else {
            Ok(Value::Null)
        };
        auditor
            .record_call(
                &ctx,
                method,
                true,
                &serde_json::json!({ "i": i }),
                &result,
                Timestamp::from_micros(t0.as_micros() + i * 1000),
                Duration::ZERO,
            )
            .await
            .unwrap();
    }
    (t0, shared)
}
