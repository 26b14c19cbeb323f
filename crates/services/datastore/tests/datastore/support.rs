//! Test stores on both backends, and helpers shared by the modules.

use std::time::Duration;

use plexus_core::{Envelope, Payload, Topic};
use plexus_store::{BackendKind, DataStore, StoreConfig};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Executor};

/// The PostgreSQL the tests use.
pub(crate) fn postgres_url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// How long a test waits for something it expects to happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Where a test database lives: an SQLite file in a fresh folder, or a fresh
/// PostgreSQL schema. Reopening the same place sees the same data.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    pub(crate) kind: BackendKind,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) schema: String,
}

impl Place {
    pub(crate) fn new(kind: BackendKind) -> Self {
        let id = unique();
        Self {
            kind,
            dir: std::env::temp_dir().join(format!("plexus-datastore-{id}")),
            schema: format!("pds_{id}"),
        }
    }

    /// The configuration that opens this place.
    pub(crate) fn config(&self) -> StoreConfig {
        match self.kind {
            BackendKind::Sqlite => StoreConfig::sqlite_in(&self.dir),
            BackendKind::Postgres => StoreConfig {
                schema: Some(self.schema.clone()),
                ..StoreConfig::with_url(postgres_url())
            },
        }
    }

    pub(crate) async fn open_with(&self, tweak: impl FnOnce(&mut StoreConfig)) -> DataStore {
        let mut config = self.config();
        tweak(&mut config);
        DataStore::connect(&config).await.unwrap_or_else(|e| {
            panic!(
                "{} must be reachable for these tests: {e}",
                self.kind.as_str()
            )
        })
    }

    pub(crate) async fn open(&self) -> DataStore {
        self.open_with(|_| {}).await
    }

    /// Removes the file or schema.
    pub(crate) async fn remove(&self) {
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

/// An event on `topic` with a JSON payload.
pub(crate) fn event(topic: &str, payload: Value) -> Envelope {
    Envelope::new(Topic::new(topic).unwrap(), Payload::json(&payload).unwrap())
}

/// The JSON payload of a delivered envelope.
pub(crate) fn payload_of(e: &Envelope) -> Value {
    serde_json::from_slice(&e.payload().encode().unwrap()).unwrap()
}

/// Runs each listed `async fn(BackendKind)` on SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(plexus_store::BackendKind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(plexus_store::BackendKind::Postgres).await;
                }
            )*
        }
    };
}
