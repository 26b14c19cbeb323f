//! The conformance suite on the PostgreSQL backend, each test in a schema of its
//! own, dropped when the test passes; and the database connection cut through the
//! project's fault proxy under running jobs.

use std::str::FromStr;
use std::sync::Arc;

use plexus_faultproxy::{FaultProxy, Mode};
use plexus_jobs::conformance::{self, Harness};
use plexus_jobs::{Clock, JobBackend, JobState, JobsConfig, PostgresBackend, PostgresOptions};
use plexus_node::CallError;
use plexus_redis::testing::eventually;
use plexus_store::{DataStore, StoreConfig};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;

/// The test server.
pub(crate) fn url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema on the test server, and the backend in it.
pub(crate) async fn fresh() -> (PostgresBackend, String) {
    fresh_in(&format!("pj_{}", crate::unique())).await
}

/// The backend in `schema` on the test server (created when missing).
async fn fresh_in(schema: &str) -> (PostgresBackend, String) {
    let schema = schema.to_owned();
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
    batches_claim_and_complete,
    rate_limit_is_shared_by_nodes,
    progress_is_kept_and_announced,
);

/// The test server's URL with its address replaced by a fault proxy's, and the
/// proxy.
async fn behind_a_proxy() -> (String, FaultProxy) {
    let url = url();
    let options = PgConnectOptions::from_str(&url).unwrap();
    let (host, port) = (options.get_host().to_owned(), options.get_port());
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let proxied = url.replacen(&format!("{host}:{port}"), &proxy.addr().to_string(), 1);
    assert_ne!(proxied, url, "the URL names its host and port");
    (proxied, proxy)
}

/// How many jobs the fault test keeps running (held at the gate) when the
/// connection is cut, and how many more wait; every fifth waiting one always fails.
const HELD: usize = 4;
const WAITING: usize = 20;

/// Jobs on PostgreSQL reached through the fault proxy, the connection cut
/// (`Refuse`: every open connection reset, every new one closed at once) while
/// jobs are running and waiting, then restored:
/// - meanwhile an enqueue is refused as unavailable (not acknowledged);
/// - the workers pause: their steps count the outage
///   (`plexus_jobs_backend_unavailable`), no attempt starts, nothing completes,
///   and the running jobs' outcomes (their target answered during the outage)
///   wait for the database within their lease;
/// - once it is back every acknowledged job ends exactly once: completed on its
///   first attempt (nothing ran twice, no lease ran out, no outcome was dropped)
///   with its result, or dead with its two errors; the counters agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_connection_pauses_the_workers_and_loses_no_job() {
    let (proxied, proxy) = behind_a_proxy().await;
    let schema = format!("pj_{}", crate::unique());
    let backend = PostgresBackend::connect(&PostgresOptions {
        schema: Some(schema.clone()),
        pool_size: 8,
        acquire_timeout_ms: 500,
        ..PostgresOptions::new(proxied)
    })
    .await
    .unwrap();
    let config = JobsConfig {
        concurrency: HELD,
        max_running: HELD,
        lease_ms: 20_000,
        poll_ms: 50,
        ..JobsConfig::default()
    };
    let h = Harness::start_on(Arc::new(backend), config, Clock::system()).await;
    let mut acked = Vec::new();
    for i in 0..HELD {
        acked.push(
            h.enqueue(
                json!({"queue": "f", "target": "work.held", "params": {"tag": format!("h{i}")}}),
            )
            .await,
        );
    }
    h.log.wait_calls(HELD).await;
    for i in 0..WAITING {
        let fail_until = if i % 5 == 0 { 99 } else { 0 };
        acked.push(
            h.enqueue(json!({"queue": "f", "target": "work.record", "params": {"tag": format!("w{i}"), "fail_until": fail_until}, "max_attempts": 2, "backoff_ms": 10}))
                .await,
        );
    }

    proxy.set_mode(Mode::Refuse);
    let refused = h
        .call(
            "enqueue",
            json!({"queue": "f", "target": "work.record", "params": {"tag": "down"}}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CallError::Unavailable { .. }),
        "{refused:?}"
    );
    eventually("the workers meet the outage", || async {
        h.jobs.metrics().counts().unavailable > 0
    })
    .await;
    // The held jobs answer while the database is unreachable: their workers keep
    // trying to store the outcomes (within their lease) until it is back; ten
    // more failed steps outlast the first try of each.
    h.log.open_gate();
    let seen = h.jobs.metrics().counts().unavailable;
    eventually("the outcomes meet the outage", || async {
        h.jobs.metrics().counts().unavailable >= seen + 10
    })
    .await;
    let paused = h.jobs.metrics().counts();
    assert_eq!(
        (paused.started, paused.completed, paused.failed),
        (HELD as u64, 0, 0),
        "the workers pause while the database is away: {paused:?}"
    );
    assert!(proxy.stats().cut > 0, "{:?}", proxy.stats());
    proxy.set_mode(Mode::Forward);

    let total = acked.len();
    eventually("every acknowledged job ends", || async {
        let stats = h.jobs.stats(Some("f")).await;
        stats.is_ok_and(|s| {
            s.first()
                .is_some_and(|s| s.completed + s.dead == total as u64)
        })
    })
    .await;
    let mut completed = 0;
    for id in &acked {
        let job = h.jobs.get(*id).await.unwrap();
        match job.state {
            JobState::Completed => {
                completed += 1;
                assert_eq!(job.attempt, 1, "run again: {job:?}");
                assert!(job.result.is_some(), "{job:?}");
            }
            JobState::Dead => assert_eq!(job.errors.len(), 2, "{job:?}"),
            other => panic!("job {id} ended {other:?}"),
        }
    }
    assert_eq!(completed, total - WAITING / 5);
    let counts = h.jobs.metrics().counts();
    assert_eq!(counts.completed, completed as u64, "a job completed twice");
    assert_eq!(counts.dead, (WAITING / 5) as u64, "a job died twice");
    assert_eq!(counts.enqueued, total as u64);
    assert_eq!((counts.stalled, counts.lost), (0, 0), "{counts:?}");
    let calls = h.log.calls();
    for i in 0..HELD {
        let tag = format!("h{i}");
        let runs = calls.iter().filter(|(t, _)| *t == tag).count();
        assert_eq!(runs, 1, "{tag}: {calls:?}");
    }
    for i in 0..WAITING {
        let tag = format!("w{i}");
        let runs = calls.iter().filter(|(t, _)| *t == tag).count();
        assert_eq!(runs, if i % 5 == 0 { 2 } else { 1 }, "{tag}: {calls:?}");
    }
    h.jobs.close();

    let (direct, _) = fresh_in(&schema).await;
    drop_schema(&direct, &schema).await;
}
