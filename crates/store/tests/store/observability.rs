//! Pool exhaustion, the slow-query log, metrics, and an unreachable database.

use std::time::Duration;

use plexus_store::{
    BackendKind, CollectionSpec, DataStore, Filter, PutMode, StatementKind, Store, StoreConfig,
    StoreError,
};
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::support::TestStore;

async fn pool_exhaustion_times_out(kind: BackendKind) {
    let t = TestStore::open(kind, |c| {
        c.max_connections = 1;
        c.acquire_timeout_ms = 300;
    })
    .await;
    let ds = &t.ds;
    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    let held = ds.store().session().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), ds.get("c", "x"))
        .await
        .expect("the store gave up within its bounded wait");
    match result {
        Err(StoreError::PoolTimeout { waited }) => {
            assert!(waited >= Duration::from_millis(250), "{waited:?}");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ds.store().metrics().acquire_timeout_count(), 1);
    assert_eq!(ds.store().metrics().error_count("pool_timeout"), 1);
    assert_eq!(ds.store().metrics().waiters(), 0);
    drop(held);
    // Once the connection is back, statements run again.
    assert_eq!(ds.get("c", "x").await.unwrap(), None);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pool_exhaustion_times_out() {
    pool_exhaustion_times_out(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_exhaustion_times_out() {
    pool_exhaustion_times_out(BackendKind::Postgres).await;
}

async fn slow_queries_are_logged(kind: BackendKind) {
    // Threshold 0: every statement counts as slow.
    let t = TestStore::open(kind, |c| {
        c.slow_query_threshold_ms = 0;
        c.slow_query_log_capacity = 8;
    })
    .await;
    let ds = &t.ds;
    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    ds.put("c", "a", &json!({"status": "open"}), PutMode::Insert, None)
        .await
        .unwrap();
    let f = Filter::from_json(&json!({"field": "status", "eq": "open"})).unwrap();
    assert_eq!(ds.count("c", &f).await.unwrap(), 1);
    let log = ds.slow_queries();
    assert!(log.len() <= 8);
    let last = log.last().unwrap();
    assert_eq!(last.kind, StatementKind::Count);
    assert_eq!(last.collection, "c");
    assert!(last.sql.contains("COUNT(*)"));
    // Values are bound, never in the logged SQL.
    assert!(!last.sql.contains("open"));
    assert!(
        ds.store()
            .metrics()
            .slow_query_count(StatementKind::Insert, "c")
            >= 1
    );

    // With the default 100 ms threshold, the same fast statements are not logged.
    let quiet = TestStore::open(kind, |_| {}).await;
    quiet
        .ds
        .create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    quiet
        .ds
        .put("c", "a", &json!({"x": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    let slow: Vec<_> = quiet
        .ds
        .slow_queries()
        .into_iter()
        .filter(|q| q.kind == StatementKind::Insert)
        .collect();
    assert!(slow.is_empty(), "{slow:?}");
    quiet.finish().await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_slow_queries_are_logged() {
    slow_queries_are_logged(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slow_queries_are_logged() {
    slow_queries_are_logged(BackendKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_under_plexus_store_names() {
    let t = TestStore::open(BackendKind::Sqlite, |c| c.slow_query_threshold_ms = 0).await;
    let ds = &t.ds;
    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    ds.put("c", "a", &json!({"x": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    let _ = ds
        .put("c", "a", &json!({"x": 1}), PutMode::Insert, None)
        .await;
    let _ = ds.get("missing_collection", "a").await;
    let mut registry = Registry::default();
    ds.store().metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for needle in [
        "plexus_store_statement_duration_seconds_count{kind=\"insert\",collection=\"c\"} 2",
        "plexus_store_errors_total{kind=\"already_exists\"} 1",
        "plexus_store_errors_total{kind=\"unknown_collection\"} 1",
        "plexus_store_pool_connections{state=\"open\"}",
        "plexus_store_pool_waiters 0",
        "plexus_store_pool_acquire_duration_seconds_count",
        "plexus_store_pool_acquire_timeouts_total 0",
        "plexus_store_transactions_total{outcome=\"commit\"} 1",
        "plexus_store_transaction_duration_seconds_count 1",
        "plexus_store_slow_queries_total{kind=\"insert\",collection=\"c\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let pool = ds.store().pool_state();
    assert!(pool.size >= 1 && pool.idle <= pool.size);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    let config = StoreConfig {
        acquire_timeout_ms: 500,
        // Port 1 on loopback: nothing listens there.
        ..StoreConfig::with_url("postgres://postgres@127.0.0.1:1/test")
    };
    let result = tokio::time::timeout(Duration::from_secs(10), Store::connect(&config))
        .await
        .expect("connect gave up within its bounded wait");
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    let bad = StoreConfig::with_url("redis://127.0.0.1/0");
    assert!(matches!(
        DataStore::connect(&bad).await,
        Err(StoreError::Config { ref field, .. }) if field == "url"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_survives_a_reopen() {
    let dir = std::env::temp_dir().join(format!("plexus-reopen-{}", uuid::Uuid::new_v4().simple()));
    let config = StoreConfig::sqlite_in(dir.join("nested"));
    let ds = DataStore::connect(&config).await.unwrap();
    ds.create_collection("c", CollectionSpec::default())
        .await
        .unwrap();
    ds.put("c", "a", &json!({"x": 1}), PutMode::Insert, None)
        .await
        .unwrap();
    ds.store().close().await;
    // Migrations run again on connect and find their work done.
    let again = DataStore::connect(&config).await.unwrap();
    assert_eq!(
        again.get("c", "a").await.unwrap().unwrap().doc,
        json!({"x": 1})
    );
    again.store().close().await;
    let _ = std::fs::remove_dir_all(dir);
}
