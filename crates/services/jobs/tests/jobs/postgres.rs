//! The conformance suite on the PostgreSQL backend, each test in a schema of its
//! own, dropped when the test passes.

use std::sync::Arc;

use plexus_jobs::conformance;
use plexus_jobs::{JobBackend, PostgresBackend, PostgresOptions};
use plexus_store::{DataStore, StoreConfig};

/// The test server.
pub(crate) fn url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema on the test server, and the backend in it.
pub(crate) async fn fresh() -> (PostgresBackend, String) {
    let schema = format!("pj_{}", crate::unique());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        pool_size: 4,
        ..PostgresOptions::new(url())
    };
    let backend = PostgresBackend::connect(&options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} must be reachable: {e}", url()));
    (backend, schema)
}

/// Drops the schema `fresh` made.
pub(crate) async fn drop_schema(backend: &PostgresBackend, schema: &str) {
    // The name is ours: `pj_` and digits, letters and `_`.
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(backend.pool())
        .await
        .unwrap();
    backend.pool().close().await;
}

/// Jobs in the DataStore's own schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_enqueue() {
    let (backend, schema) = fresh().await;
    let config = StoreConfig {
        schema: Some(schema.clone()),
        ..StoreConfig::with_url(url())
    };
    let store = DataStore::connect(&config).await.unwrap();
    conformance::transactional_enqueue(Arc::new(backend.clone()), store.clone()).await;
    store.store().close().await;
    drop_schema(&backend, &schema).await;
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (backend, schema) = fresh().await;
                let shared: Arc<dyn JobBackend> = Arc::new(backend.clone());
                conformance::$name(shared).await;
                drop_schema(&backend, &schema).await;
            }
        )*
    };
}

suite!(
    ordering_delay_and_pause,
    retries_backoff_dead_and_requeue,
    expired_lease_is_recovered,
    unique_keys_and_cancel,
    bad_input_is_refused,
    per_queue_concurrency,
    live_worker_keeps_its_lease,
    two_nodes_run_each_job_once,
    unique_key_holds_under_concurrent_enqueues,
    cron_fires_once_across_two_nodes,
    queues_take_turns,
    rate_limit_per_queue,
    other_nodes_are_woken_without_polling,
);
