//! `audit.query`: the audit trail read through the `audit` service, filtered and
//! paged, its bad params naming the field.

use std::time::Duration;

use plexus_core::{CallContext, CorrelationId, Service, ServiceError, Timestamp};
use plexus_datastore::AuditService;
use plexus_store::{AuditConfig, AuditLog, AuditQuery, Auditor, BackendKind};
use serde_json::{Value, json};

use crate::support::Place;

crate::on_both!(audit_query_filters_and_pages);

async fn audit_query_filters_and_pages(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    let log = AuditLog::new(ds.store().clone(), AuditConfig::default()).unwrap();
    let auditor = Auditor::new(log.clone());
    let shared = CorrelationId::new();
    let t0 = Timestamp::now();
    for i in 0..30u64 {
        let who = ["ana", "bo", "cy"][(i % 3) as usize];
        let method = if i % 2 == 0 {
            "cases.create"
        } else {
            "cases.update"
        };
        let mut ctx = CallContext::new().with_caller(who);
        if i % 10 == 0 {
            ctx = ctx.with_correlation_id(shared);
        }
        let result: Result<Value, ServiceError> = if i % 5 == 4 {
            Err(ServiceError::invalid_params("/status", "unknown status"))
        } else {
            Ok(Value::Null)
        };
        auditor
            .record_call(
                &ctx,
                method,
                true,
                &json!({"i": i}),
                &result,
                Timestamp::from_micros(t0.as_micros() + i * 1000),
                Duration::ZERO,
            )
            .await
            .unwrap();
    }
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

    // By method, outcome and time window, newest first.
    let page = log
        .query(&AuditQuery {
            method: Some("cases.create".into()),
            ok: Some(false),
            since: Some(Timestamp::from_micros(t0.as_micros() + 10_000)),
            newest_first: true,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let is: Vec<u64> = page
        .entries
        .iter()
        .map(|r| r.entry.params["i"].as_u64().unwrap())
        .collect();
    assert_eq!(is, vec![24, 14]);
    let page = log
        .query(&AuditQuery {
            until: Some(Timestamp::from_micros(t0.as_micros() + 3_000)),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 3);

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
