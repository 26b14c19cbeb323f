//! The conformance suite on the SQLite backend, each test in a file of its own.

use std::sync::Arc;

use plexus_jobs::conformance;
use plexus_jobs::{JobBackend, SqliteBackend};
use plexus_store::{DataStore, StoreConfig};

/// A fresh folder under the system's temporary folder.
fn folder() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("plexus-jobs-{}", crate::unique()))
}

/// A fresh database file.
async fn fresh() -> Arc<dyn JobBackend> {
    let url = format!("sqlite://{}", folder().join("jobs.db").display());
    Arc::new(SqliteBackend::connect_with(&url, 4).await.unwrap())
}

/// Jobs in the DataStore's own file (as a node keeps them by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_enqueue() {
    let dir = folder();
    let store = DataStore::connect(&StoreConfig::sqlite_in(&dir))
        .await
        .unwrap();
    let url = format!("sqlite://{}", dir.join("plexus.db").display());
    let backend = Arc::new(SqliteBackend::connect_with(&url, 4).await.unwrap());
    conformance::transactional_enqueue(backend, store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance::$name(fresh().await).await;
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
    batches_claim_and_complete,
    rate_limit_is_shared_by_nodes,
    progress_is_kept_and_announced,
);

/// A file made before jobs kept their progress: opening it adds the column, and
/// its jobs read back with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_before_progress_gains_the_column() {
    let dir = folder();
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE plexus_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, target TEXT NOT NULL,
            params TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
            backoff_ms INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, run_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL, finished_at INTEGER, worker TEXT, lease_until INTEGER,
            result TEXT, errors TEXT NOT NULL DEFAULT '[]', unique_key TEXT,
            metadata TEXT NOT NULL DEFAULT 'null', caller TEXT, scopes TEXT);
         INSERT INTO plexus_jobs (queue, target, params, priority, state, attempt, max_attempts,
            backoff_ms, timeout_ms, run_at, created_at, worker)
         VALUES ('q', 'work.record', '{}', 0, 'running', 1, 3, 1000, 60000, 0, 0, 'w');",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let backend = SqliteBackend::connect_with(&url, 2).await.unwrap();
    let job = backend.get(1).await.unwrap().unwrap();
    assert_eq!(job.progress, None);
    let queue = backend
        .progress(1, 1, &serde_json::json!(50))
        .await
        .unwrap();
    assert_eq!(queue.as_deref(), Some("q"));
    assert_eq!(
        backend.get(1).await.unwrap().unwrap().progress,
        Some(serde_json::json!(50))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
