//! The `lock` service on a node: every method through the call path, the typed
//! errors, a fenced `datastore.put` refusing a stale token, and the metrics in the
//! node's registry.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::CallContext;
use plexus_datastore::DataStoreService;
use plexus_locks::{LockService, Locks, LocksConfig};
use plexus_node::{CallError, Node};
use plexus_store::BackendKind;
use plexus_store::testing::TestStore;
use serde_json::{Value, json};

async fn call(node: &Node, method: &str, params: Value) -> Result<Value, CallError> {
    node.call(method, params, CallContext::new()).await
}

fn invalid_field(err: CallError) -> String {
    match err {
        CallError::InvalidParams { field, .. } => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

fn failed_kind(err: &CallError) -> (String, bool) {
    match err {
        CallError::Failed {
            detail, retryable, ..
        } => (
            detail.as_ref().unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
            *retryable,
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_error_through_the_call_path() {
    let store = TestStore::open(BackendKind::Sqlite, |_| {}).await;
    store
        .ds
        .create_collection("jobs", plexus_store::CollectionSpec::default())
        .await
        .unwrap();
    let service = LockService::new(Locks::in_memory(LocksConfig::default()));
    let metrics = service.locks().metrics().clone();
    let node = Node::builder("locks-test")
        .service(Arc::new(service))
        .service(Arc::new(DataStoreService::new(store.ds.clone())))
        .start()
        .await
        .unwrap();
    node.metrics().with_registry(|r| metrics.register(r));

    let grant = call(
        &node,
        "lock.acquire",
        json!({"name": "job", "lease_ms": 30000, "holder": "w1"}),
    )
    .await
    .unwrap();
    let token = grant["token"].as_u64().unwrap();
    assert_eq!(grant["lease_ms"], 30000);
    assert_eq!(grant["waited_ms"], 0);
    let status = call(&node, "lock.status", json!({"name": "job"}))
        .await
        .unwrap();
    assert_eq!(status["held"], true);
    assert_eq!(status["holder"], "w1");
    assert_eq!(status["token"], token);

    // Busy: retryable, after the bounded wait.
    let err = call(
        &node,
        "lock.acquire",
        json!({"name": "job", "lease_ms": 1000, "wait_ms": 50}),
    )
    .await
    .unwrap_err();
    assert_eq!(failed_kind(&err), ("busy".to_owned(), true));

    // A remote holder keeps its lease alive with extend.
    let extended = call(
        &node,
        "lock.extend",
        json!({"name": "job", "token": token, "lease_ms": 60000}),
    )
    .await
    .unwrap();
    assert_eq!(
        extended,
        json!({"name": "job", "token": token, "lease_ms": 60000})
    );
    let err = call(
        &node,
        "lock.extend",
        json!({"name": "job", "token": token + 1, "lease_ms": 1000}),
    )
    .await
    .unwrap_err();
    assert_eq!(failed_kind(&err), ("not_holder".to_owned(), false));

    // A fenced write with the grant's token is accepted.
    let put = |token: u64, by: &str| {
        json!({"collection": "jobs", "id": "j1", "doc": {"by": by}, "mode": "upsert",
               "fence": {"lock": "job", "token": token}})
    };
    call(&node, "datastore.put", put(token, "first"))
        .await
        .unwrap();

    let released = call(
        &node,
        "lock.release",
        json!({"name": "job", "token": token}),
    )
    .await
    .unwrap();
    assert_eq!(released, json!({"released": true}));
    let err = call(
        &node,
        "lock.release",
        json!({"name": "job", "token": token}),
    )
    .await
    .unwrap_err();
    assert_eq!(failed_kind(&err), ("not_holder".to_owned(), false));
    let status = call(&node, "lock.status", json!({"name": "job"}))
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"name": "job", "held": false, "holder": null, "token": null, "remaining_ms": null})
    );

    // The next holder writes; the old token is fenced off.
    let next = call(
        &node,
        "lock.acquire",
        json!({"name": "job", "lease_ms": 30000}),
    )
    .await
    .unwrap();
    let next = next["token"].as_u64().unwrap();
    assert!(next > token);
    call(&node, "datastore.put", put(next, "second"))
        .await
        .unwrap();
    let err = call(&node, "datastore.put", put(token, "stale"))
        .await
        .unwrap_err();
    assert_eq!(failed_kind(&err), ("fenced".to_owned(), false));
    let CallError::Failed { detail, .. } = &err else {
        unreachable!()
    };
    assert_eq!(detail.as_ref().unwrap()["highest"], next);
    let doc = call(
        &node,
        "datastore.get",
        json!({"collection": "jobs", "id": "j1"}),
    )
    .await
    .unwrap();
    assert_eq!(doc["doc"], json!({"by": "second"}));
    let err = call(
        &node,
        "datastore.put",
        json!({"collection": "jobs", "id": "j1", "doc": {"a": 1}, "fence": {"lock": "", "token": 1}}),
    )
    .await
    .unwrap_err();
    assert_eq!(invalid_field(err), "/fence/lock");

    // Bad input names the field.
    let bad = [
        (json!({"name": "", "lease_ms": 1000}), "/name"),
        (json!({"name": "x", "lease_ms": 0}), "/lease_ms"),
        (json!({"name": "x", "lease_ms": 600001}), "/lease_ms"),
        (
            json!({"name": "x", "lease_ms": 1000, "wait_ms": 60001}),
            "/wait_ms",
        ),
        (json!({"name": "x".repeat(257), "lease_ms": 1000}), "/name"),
    ];
    for (params, field) in bad {
        let err = call(&node, "lock.acquire", params.clone())
            .await
            .unwrap_err();
        assert_eq!(invalid_field(err), field, "{params}");
    }

    let text = node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    for line in [
        "plexus_locks_grants_total 2",
        "plexus_locks_releases_total 1",
        "plexus_locks_extensions_total 1",
        "plexus_locks_busy_total 1",
        "plexus_locks_refusals_total{op=\"extend\"} 1",
        "plexus_locks_refusals_total{op=\"release\"} 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    node.shutdown(Duration::from_secs(1)).await;
    store.finish().await;
}
