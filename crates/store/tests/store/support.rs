//! Test stores on both backends (plexus-store's `testing`, feature `test-util`).

pub(crate) use plexus_store::testing::TestStore;

/// Runs each listed `async fn(&DataStore)` against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::TestStore::open(plexus_store::BackendKind::Sqlite, |_| {}).await;
                    super::$name(&t.ds).await;
                    t.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::TestStore::open(plexus_store::BackendKind::Postgres, |_| {}).await;
                    super::$name(&t.ds).await;
                    t.finish().await;
                }
            )*
        }
    };
}
