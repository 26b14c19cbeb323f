//! The DataStore through `Service::call`: good calls, and bad params naming the
//! field.

use plexus_core::{CallContext, Service, ServiceError};
use plexus_datastore::DataStoreService;
use plexus_store::BackendKind;
use serde_json::{Value, json};

use crate::support::Place;

async fn call(s: &DataStoreService, method: &str, params: Value) -> Result<Value, ServiceError> {
    s.call(method, params, CallContext::new()).await
}

fn field_of(e: ServiceError) -> String {
    match e {
        ServiceError::InvalidParams { field, .. } => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

fn kind_of(e: &ServiceError) -> (String, Value) {
    match e {
        ServiceError::Failed {
            data: Some(data), ..
        } => (data["kind"].as_str().unwrap().to_owned(), data.clone()),
        other => panic!("expected a failure with data, got {other:?}"),
    }
}

async fn service_round_trip(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open_with(|c| c.slow_query_threshold_ms = 0).await;
    let s = DataStoreService::new(ds.clone());
    let created = call(
        &s,
        "create_collection",
        json!({"name": "cases", "indexes": [
        {"name": "by_ref", "fields": ["ref"], "unique": true}]}),
    )
    .await
    .unwrap();
    assert_eq!(created, json!({"created": true}));
    let put = call(
        &s,
        "put",
        json!({"collection": "cases", "id": "c1",
        "doc": {"ref": "R1", "status": "open", "score": 4}, "mode": "insert"}),
    )
    .await
    .unwrap();
    assert_eq!(put, json!({"id": "c1", "version": 1}));
    call(
        &s,
        "put",
        json!({"collection": "cases", "id": "c2", "doc": {"ref": "R2", "status": "closed"}}),
    )
    .await
    .unwrap();
    let got = call(&s, "get", json!({"collection": "cases", "id": "c1"}))
        .await
        .unwrap();
    assert_eq!(got["doc"]["score"], json!(4));
    assert_eq!(
        call(&s, "get", json!({"collection": "cases", "id": "zz"}))
            .await
            .unwrap(),
        Value::Null
    );
    let patched = call(
        &s,
        "patch",
        json!({"collection": "cases", "id": "c1", "patch": {"score": 5}, "expected_version": 1}),
    )
    .await
    .unwrap();
    assert_eq!(patched["version"], json!(2));
    let page = call(
        &s,
        "query",
        json!({"collection": "cases",
        "filter": {"field": "status", "eq": "open"}, "sort": [{"field": "score", "order": "desc"}],
        "projection": ["score"], "limit": 10}),
    )
    .await
    .unwrap();
    assert_eq!(
        page["docs"],
        json!([{"id": "c1", "version": 2, "doc": {"score": 5}}])
    );
    assert_eq!(page["next_cursor"], Value::Null);
    let count = call(&s, "count", json!({"collection": "cases"}))
        .await
        .unwrap();
    assert_eq!(count, json!({"count": 2}));
    let tx = call(
        &s,
        "transaction",
        json!({"ops": [
        {"op": "put", "collection": "cases", "id": "c3", "doc": {"ref": "R3"}},
        {"op": "delete", "collection": "cases", "id": "c2"}]}),
    )
    .await
    .unwrap();
    assert_eq!(tx["results"][1], json!({"op": "delete", "deleted": true}));
    let slow = call(&s, "slow_queries", Value::Null).await.unwrap();
    assert!(!slow["queries"].as_array().unwrap().is_empty());

    // Bad params name the field.
    let bad = [
        ("put", json!({"id": "x", "doc": {"a": 1}}), "/collection"),
        (
            "put",
            json!({"collection": "cases", "id": "x", "doc": {}}),
            "/doc",
        ),
        (
            "put",
            json!({"collection": "cases", "id": "x", "doc": [1]}),
            "/doc",
        ),
        (
            "put",
            json!({"collection": "cases", "id": "x", "doc": {"a": "x".repeat(2 * 1024 * 1024)}}),
            "/doc",
        ),
        (
            "put",
            json!({"collection": "cases", "id": "x", "doc": {"a": 1}, "mode": "merge"}),
            "/mode",
        ),
        (
            "put",
            json!({"collection": "cases", "id": "", "doc": {"a": 1}}),
            "/id",
        ),
        (
            "put",
            json!({"collection": "cases", "id": "x", "doc": {"a": 1}, "extra": 1}),
            "/extra",
        ),
        (
            "get",
            json!({"collection": "nope", "id": "x"}),
            "/collection",
        ),
        ("get", json!({"collection": 3, "id": "x"}), "/collection"),
        ("get", json!([1]), ""),
        (
            "patch",
            json!({"collection": "cases", "id": "c1", "patch": {"ref": null, "status": null, "score": null}}),
            "/patch",
        ),
        (
            "query",
            json!({"collection": "cases", "filter": {"and": [{"field": "a'--", "eq": 1}]}}),
            "/filter/and/0/field",
        ),
        (
            "query",
            json!({"collection": "cases", "sort": [{"field": "a", "order": "sideways"}]}),
            "/sort/0/order",
        ),
        (
            "query",
            json!({"collection": "cases", "limit": 100000}),
            "/limit",
        ),
        (
            "query",
            json!({"collection": "cases", "cursor": "bogus"}),
            "/cursor",
        ),
        (
            "count",
            json!({"collection": "cases", "filter": {"field": "a", "gt": true}}),
            "/filter/gt",
        ),
        ("create_collection", json!({"name": "Bad Name"}), "/name"),
        (
            "create_collection",
            json!({"name": "ok", "indexes": [{"name": "i"}]}),
            "/indexes",
        ),
        ("transaction", json!({"ops": [{"op": "smash"}]}), "/ops/0"),
        (
            "transaction",
            json!({"ops": [
            {"op": "put", "collection": "cases", "id": "t", "doc": {"a": 1}},
            {"op": "put", "collection": "cases", "id": "t2", "doc": {}}]}),
            "/ops/1/doc",
        ),
        ("slow_queries", json!({"x": 1}), "/x"),
    ];
    for (method, params, field) in bad {
        let err = call(&s, method, params.clone()).await.unwrap_err();
        assert_eq!(field_of(err), field, "{method} {params}");
    }
    // Store failures carry their kind.
    let conflict = call(
        &s,
        "put",
        json!({"collection": "cases", "id": "c1", "doc": {"a": 1}, "expected_version": 1}),
    )
    .await
    .unwrap_err();
    let (kind, data) = kind_of(&conflict);
    assert_eq!(kind, "version_conflict");
    assert_eq!(
        (data["expected"].clone(), data["actual"].clone()),
        (json!(1), json!(2))
    );
    assert!(!conflict.is_retryable());
    let dup = call(
        &s,
        "put",
        json!({"collection": "cases", "id": "c9", "doc": {"ref": "R1"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(kind_of(&dup).1["index"], json!("by_ref"));
    let failed_tx = call(
        &s,
        "transaction",
        json!({"ops": [
        {"op": "put", "collection": "cases", "id": "t9", "doc": {"a": 1}},
        {"op": "put", "collection": "cases", "id": "c1", "doc": {"a": 1}, "mode": "insert"}]}),
    )
    .await
    .unwrap_err();
    let (kind, data) = kind_of(&failed_tx);
    assert_eq!(
        (kind.as_str(), data["op"].clone()),
        ("already_exists", json!(1))
    );
    assert_eq!(
        call(&s, "get", json!({"collection": "cases", "id": "t9"}))
            .await
            .unwrap(),
        Value::Null
    );
    assert!(matches!(
        call(&s, "drop_everything", json!({})).await,
        Err(ServiceError::MethodNotFound { .. })
    ));
    assert_eq!(s.descriptor().name.as_str(), "datastore");
    ds.store().close().await;
    place.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_service_round_trip() {
    service_round_trip(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_service_round_trip() {
    service_round_trip(BackendKind::Postgres).await;
}

plexus_store::on_both!(a_page_ends_at_the_byte_budget);

/// `datastore.query` ends a page at `[store] max_result_bytes` with a cursor that
/// continues, whatever the `limit`.
async fn a_page_ends_at_the_byte_budget(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place
        .open_with(|c| {
            c.max_document_bytes = 4_096;
            c.max_result_bytes = 4_096;
        })
        .await;
    let s = DataStoreService::new(ds.clone());
    call(&s, "create_collection", json!({"name": "notes"}))
        .await
        .unwrap();
    for n in 0..5 {
        let doc = json!({"n": n, "text": "t".repeat(1_500)});
        call(
            &s,
            "put",
            json!({"collection": "notes", "id": format!("n{n}"), "doc": doc}),
        )
        .await
        .unwrap();
    }
    let mut ns = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = call(
            &s,
            "query",
            json!({"collection": "notes", "limit": 100, "cursor": cursor}),
        )
        .await
        .unwrap();
        let docs = page["docs"].as_array().unwrap();
        assert!(
            docs.len() <= 2,
            "{} documents of 1.5 KB in 4 KB",
            docs.len()
        );
        ns.extend(docs.iter().map(|d| d["doc"]["n"].as_u64().unwrap()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(ns, vec![0, 1, 2, 3, 4]);
    ds.store().close().await;
    place.remove().await;
}
