//! Test stores on both backends, and their cleanup.

use plexus_store::conformance::Fixture;
use plexus_store::{BackendKind, DataStore, StoreConfig};
use sqlx::{AssertSqlSafe, Executor};

/// The PostgreSQL the tests use.
pub(crate) fn postgres_url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A data store on a fresh database: an SQLite file in a new temp folder, or a new
/// PostgreSQL schema.
pub(crate) struct TestStore {
    pub(crate) ds: DataStore,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema(String),
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh store of `kind` with `tweak` applied to the default config.
pub(crate) async fn store(kind: BackendKind, tweak: impl FnOnce(&mut StoreConfig)) -> TestStore {
    let (mut config, cleanup) = match kind {
        BackendKind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("plexus-store-{}", unique()));
            (StoreConfig::sqlite_in(&dir), Cleanup::Dir(dir))
        }
        BackendKind::Postgres => {
            let schema = format!("pt_{}", unique());
            let config = StoreConfig {
                schema: Some(schema.clone()),
                ..StoreConfig::with_url(postgres_url())
            };
            (config, Cleanup::Schema(schema))
        }
    };
    tweak(&mut config);
    let ds = DataStore::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{} must be reachable for these tests: {e}", kind.as_str()));
    TestStore { ds, cleanup }
}

impl TestStore {
    /// Closes the store and removes its file or schema.
    pub(crate) async fn finish(self) {
        self.ds.store().close().await;
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema(schema) => {
                let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
                pool.execute(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
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

/// Runs each listed `async fn(&DataStore)` against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::store(plexus_store::BackendKind::Sqlite, |_| {}).await;
                    super::$name(&t.ds).await;
                    t.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::store(plexus_store::BackendKind::Postgres, |_| {}).await;
                    super::$name(&t.ds).await;
                    t.finish().await;
                }
            )*
        }
    };
}
