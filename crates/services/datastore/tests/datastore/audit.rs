//! `audit.query`: the audit trail read through the `audit` service, filtered and
//! paged, its bad params naming the field.

use plexus_core::{CallContext, Service, ServiceError};
use plexus_datastore::AuditService;
use plexus_store::{AuditConfig, AuditLog, Auditor, BackendKind};
use serde_json::{Value, json};

use crate::support::Place;

plexus_store::on_both!(audit_query_filters_and_pages);

async fn audit_query_filters_and_pages(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    let log = AuditLog::new(ds.store().clone(), AuditConfig::default()).unwrap();
    let auditor = Auditor::new(log.clone());
    let (_, shared) = plexus_store::testing::record_thirty_calls(&auditor).await;
    let service = AuditService::new(log.clone());
    let call = |params: Value| {
        let service = service.clone();
        async move { service.call("query", params, CallContext::new()).await }
    };

    // By caller, paged five at a time, oldest first.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = call(json!({"who": "ana", "limit": 5, "cursor": cursor}))
            .await
            .unwrap();
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(e["who"], "ana");
            seen.push(e["params"]["i"].as_u64().unwrap());
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, (0..30).step_by(3).collect::<Vec<u64>>());

    // By correlation id, through the service.
    let page = call(json!({"correlation_id": shared.to_string()}))
        .await
        .unwrap();
    let is: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["params"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(is, vec![0, 10, 20]);
    assert_eq!(page["entries"][0]["outcome"]["status"], "ok");

    // Bad params name the field.
    for (params, field) in [
        (json!({"since": "yesterday"}), "/since"),
        (json!({"limit": 0}), "/limit"),
        (json!({"limit": 5000}), "/limit"),
        (json!({"cursor": "nope"}), "/cursor"),
        (json!({"correlation_id": "x"}), "/correlation_id"),
        (json!({"colour": "red"}), "/colour"),
    ] {
        match call(params.clone()).await {
            Err(ServiceError::InvalidParams { field: f, .. }) => assert_eq!(f, field, "{params}"),
            other => panic!("{params}: {other:?}"),
        }
    }
    assert!(matches!(
        service.call("delete", json!({}), CallContext::new()).await,
        Err(ServiceError::MethodNotFound { .. })
    ));
    let descriptor = service.descriptor();
    assert_eq!(descriptor.name.as_str(), "audit");
    assert!(descriptor.method("query").unwrap().idempotent);
    ds.store().close().await;
    place.remove().await;
}
