//! The conformance suite on the SQLite backend, each test in a file of its own.

use std::sync::Arc;

use plexus_jobs::conformance;
use plexus_jobs::{JobBackend, SqliteBackend};

/// A fresh database file under the system's temporary folder.
async fn fresh() -> Arc<dyn JobBackend> {
    let dir = std::env::temp_dir().join(format!("plexus-jobs-{}", crate::unique()));
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    Arc::new(SqliteBackend::connect(&url, 4).await.unwrap())
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
);
