//! The audit trail: the auditor records mutating calls and skips reads, entries are
//! bounded and redacted, and the log's query filters and pages them (the `audit`
//! service over it is tested in `plexus-datastore`).

use std::time::Duration;

use plexus_core::{CallContext, MethodDescriptor, ServiceError, Timestamp};
use plexus_store::{
    AuditConfig, AuditLog, AuditOutcome, AuditPage, AuditQuery, Auditor, BackendKind, REDACTED,
};
use serde_json::{Value, json};

use crate::support::Place;

/// The `i` parameter of every entry on `page`, in order.
fn numbers(page: &AuditPage) -> Vec<u64> {
    page.entries
        .iter()
        .map(|r| r.entry.params["i"].as_u64().unwrap())
        .collect()
}

plexus_store::on_both!(
    the_auditor_records_mutating_calls_and_skips_reads,
    the_log_query_filters_and_pages,
);

async fn the_auditor_records_mutating_calls_and_skips_reads(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    let log = AuditLog::new(
        ds.store().clone(),
        AuditConfig {
            max_params_bytes: 128,
            ..AuditConfig::default()
        },
    )
    .unwrap();
    let auditor = Auditor::new(log.clone());
    let put = MethodDescriptor::new("put");
    let get = MethodDescriptor::new("get").idempotent();
    assert!(Auditor::is_mutating(&put));
    assert!(!Auditor::is_mutating(&get));

    let ctx = CallContext::new().with_caller("ana");
    let started = Timestamp::now();
    let ok: Result<Value, ServiceError> = Ok(json!({"version": 1}));
    let recorded = auditor
        .record_call(
            &ctx,
            "datastore.put",
            Auditor::is_mutating(&put),
            &json!({"collection": "cases", "doc": {"password": "hunter2", "n": 1}}),
            &ok,
            started,
            Duration::from_micros(1500),
        )
        .await
        .unwrap();
    assert!(recorded);
    let skipped = auditor
        .record_call(
            &ctx,
            "datastore.get",
            Auditor::is_mutating(&get),
            &json!({}),
            &ok,
            started,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert!(!skipped);
    let failed: Result<Value, ServiceError> = Err(ServiceError::unavailable("database gone"));
    auditor
        .record_call(
            &CallContext::new(),
            "datastore.put",
            true,
            &json!({"doc": "x".repeat(500)}),
            &failed,
            started,
            Duration::from_millis(3),
        )
        .await
        .unwrap();

    let page = log.query(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    let first = &page.entries[0].entry;
    assert_eq!(first.who.as_deref(), Some("ana"));
    assert_eq!(first.method, "datastore.put");
    assert_eq!(first.correlation_id, ctx.correlation_id);
    assert_eq!(first.at, started);
    assert_eq!(first.duration, Duration::from_micros(1500));
    assert_eq!(first.outcome, AuditOutcome::Ok);
    assert_eq!(first.params["doc"]["password"], REDACTED);
    assert_eq!(first.params["doc"]["n"], 1);
    let second = &page.entries[1].entry;
    assert_eq!(second.who, None);
    assert!(
        matches!(&second.outcome, AuditOutcome::Error { code, message }
            if code == "unavailable" && message.contains("database gone")),
        "{:?}",
        second.outcome
    );
    assert_eq!(second.params["truncated"], true);
    assert_eq!(second.params["keys"], json!(["doc"]));
    assert!(page.entries[0].seq < page.entries[1].seq);
    ds.store().close().await;
    place.remove().await;
}

async fn the_log_query_filters_and_pages(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    let log = AuditLog::new(ds.store().clone(), AuditConfig::default()).unwrap();
    let auditor = Auditor::new(log.clone());
    let (t0, shared) = plexus_store::testing::record_thirty_calls(&auditor).await;
    // By caller, paged five at a time, oldest first.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = log
            .query(&AuditQuery {
                who: Some("ana".into()),
                limit: Some(5),
                cursor: cursor.take(),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        for r in &page.entries {
            assert_eq!(r.entry.who.as_deref(), Some("ana"));
            seen.push(r.entry.params["i"].as_u64().unwrap());
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
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
    let is = numbers(&page);
    assert_eq!(is, vec![24, 14]);
    let page = log
        .query(&AuditQuery {
            until: Some(Timestamp::from_micros(t0.as_micros() + 3_000)),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 3);

    // By correlation id.
    let page = log
        .query(&AuditQuery {
            correlation_id: Some(shared),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let is = numbers(&page);
    assert_eq!(is, vec![0, 10, 20]);
    assert_eq!(page.entries[0].entry.outcome, AuditOutcome::Ok);
    ds.store().close().await;
    place.remove().await;
}
