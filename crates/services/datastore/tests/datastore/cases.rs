//! The seed scenario: a case-management pipeline. Twenty concurrent clients run
//! 1,000 mixed operations — create a case, attach an entity, change a case's status
//! (each with its durable event in the same transaction), query cases by type and
//! status page by page through the `datastore` service — every mutating one
//! audited. Then everything is read back: the cases, their entities, the status
//! history told by the `cases.status_changed` events, the events the relay
//! delivered, and the audit trail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::{CallContext, EventId, Service, ServiceError, Timestamp};
use plexus_datastore::{AuditService, DataStoreService};
use plexus_store::{
    AuditConfig, AuditLog, AuditQuery, Auditor, BackendKind, CollectionSpec, DataStore, Filter,
    IndexSpec, Op, Outbox, OutboxError, PutMode, RelayConfig, ReplayFrom, StoreError,
};
use serde_json::{Value, json};

use crate::support::{PATIENCE, Place, event, payload_of};

plexus_store::on_both!(twenty_clients_run_the_case_pipeline_and_lose_nothing);

const CLIENTS: usize = 20;
const OPS_PER_CLIENT: usize = 50;
const TYPES: [&str; 3] = ["fraud", "dispute", "kyc"];
const STATUSES: [&str; 4] = ["open", "triage", "active", "closed"];
const PAGE: u32 = 7;

/// A small deterministic generator, so a failure replays the same operations.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

/// The pipeline every client drives.
#[derive(Clone)]
struct Pipeline {
    ds: DataStore,
    outbox: Outbox,
    service: DataStoreService,
    auditor: Auditor,
    /// Every case created so far: id → type.
    cases: Arc<Mutex<Vec<(String, String)>>>,
}

/// What one client did.
#[derive(Default)]
struct Outcome {
    created: usize,
    /// Entities attached per case.
    attached: HashMap<String, u64>,
    status_changes: usize,
    queries: usize,
    audited: usize,
}

fn retryable(e: &OutboxError) -> bool {
    matches!(
        e.store_error().map(StoreError::root),
        Some(StoreError::VersionConflict { .. } | StoreError::Busy { .. })
    )
}

impl Pipeline {
    async fn audit(&self, ctx: &CallContext, method: &str, params: Value, ok: bool) {
        let result: Result<Value, ServiceError> = if ok {
            Ok(Value::Null)
        } else {
            Err(ServiceError::failed("refused"))
        };
        let recorded = self
            .auditor
            .record_call(
                ctx,
                method,
                true,
                &params,
                &result,
                Timestamp::now(),
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert!(recorded);
    }

    async fn create_case(&self, ctx: &CallContext, id: &str, kind: &str) {
        let doc = json!({"type": kind, "status": "open", "title": format!("case {id}")});
        let created = event("cases.created", json!({"case": id, "type": kind}))
            .with_correlation_id(ctx.correlation_id);
        self.outbox
            .put("cases", id, &doc, PutMode::Insert, None, vec![created])
            .await
            .unwrap();
        self.cases.lock().push((id.to_owned(), kind.to_owned()));
        self.audit(ctx, "cases.create", json!({"id": id, "type": kind}), true)
            .await;
    }

    async fn attach_entity(&self, ctx: &CallContext, case: &str, entity: &str) {
        let op = Op::Put {
            collection: "entities".into(),
            id: entity.to_owned(),
            doc: json!({"case_id": case, "kind": "person"}),
            mode: PutMode::Insert,
            expected_version: None,
        };
        let attached = event(
            "cases.entity_attached",
            json!({"case": case, "entity": entity}),
        )
        .with_correlation_id(ctx.correlation_id);
        self.outbox
            .transaction(vec![op], vec![attached])
            .await
            .unwrap();
        self.audit(
            ctx,
            "cases.attach",
            json!({"case": case, "entity": entity}),
            true,
        )
        .await;
    }

    async fn change_status(&self, ctx: &CallContext, case: &str, pick: usize) {
        loop {
            let current = self.ds.get("cases", case).await.unwrap().unwrap();
            let from = current.doc["status"].as_str().unwrap().to_owned();
            let choices: Vec<&str> = STATUSES.iter().copied().filter(|s| *s != from).collect();
            let to = choices[pick % choices.len()];
            let mut doc = current.doc.clone();
            doc["status"] = json!(to);
            let changed = event(
                "cases.status_changed",
                json!({"case": case, "from": from, "to": to}),
            )
            .with_correlation_id(ctx.correlation_id);
            match self
                .outbox
                .put(
                    "cases",
                    case,
                    &doc,
                    PutMode::Replace,
                    Some(current.version),
                    vec![changed],
                )
                .await
            {
                Ok(_) => break,
                Err(e) if retryable(&e) => continue,
                Err(e) => panic!("status change failed: {e}"),
            }
        }
        self.audit(ctx, "cases.update_status", json!({"case": case}), true)
            .await;
    }

    /// Every case of `kind` in `status`, page by page through the service.
    async fn query(&self, kind: &str, status: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let page = self
                .service
                .call(
                    "query",
                    json!({"collection": "cases", "limit": PAGE, "cursor": cursor,
                           "filter": {"and": [{"field": "type", "eq": kind},
                                              {"field": "status", "eq": status}]}}),
                    CallContext::new(),
                )
                .await
                .unwrap();
            for d in page["docs"].as_array().unwrap() {
                assert_eq!(d["doc"]["type"], kind);
                assert_eq!(d["doc"]["status"], status);
                ids.push(d["id"].as_str().unwrap().to_owned());
            }
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "a page repeated a case");
        ids
    }
}

async fn client(p: Pipeline, k: usize) -> Outcome {
    let mut rng = Lcg(k as u64 * 7919 + 17);
    let mut out = Outcome::default();
    let who = format!("client-{k}");
    for op in 0..OPS_PER_CLIENT {
        let ctx = CallContext::new().with_caller(who.clone());
        let known = p.cases.lock().len();
        let roll = if op == 0 || known == 0 {
            0
        } else {
            rng.next(100)
        };
        let pick_case = |rng: &mut Lcg| p.cases.lock()[rng.next(known)].0.clone();
        match roll {
            0..20 => {
                let id = format!("k{k}-{op}");
                p.create_case(&ctx, &id, TYPES[rng.next(TYPES.len())]).await;
                out.created += 1;
                out.audited += 1;
            }
            20..55 => {
                let case = pick_case(&mut rng);
                p.attach_entity(&ctx, &case, &format!("e{k}-{op}")).await;
                *out.attached.entry(case).or_default() += 1;
                out.audited += 1;
            }
            55..85 => {
                let case = pick_case(&mut rng);
                p.change_status(&ctx, &case, rng.next(3)).await;
                out.status_changes += 1;
                out.audited += 1;
            }
            _ => {
                let kind = TYPES[rng.next(TYPES.len())];
                let status = STATUSES[rng.next(STATUSES.len())];
                p.query(kind, status).await;
                out.queries += 1;
            }
        }
    }
    out
}

async fn twenty_clients_run_the_case_pipeline_and_lose_nothing(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open_with(|c| c.max_connections = 10).await;
    ds.create_collection(
        "cases",
        CollectionSpec::default().with_index(IndexSpec::new("by_type_status", &["type", "status"])),
    )
    .await
    .unwrap();
    ds.create_collection(
        "entities",
        CollectionSpec::default().with_index(IndexSpec::new("by_case", &["case_id"])),
    )
    .await
    .unwrap();
    let outbox = plexus_store::testing::durable_outbox(&ds, "cases.>").await;
    let log = AuditLog::new(ds.store().clone(), AuditConfig::default()).unwrap();
    let bus = Bus::new();
    let mut sub = bus
        .subscribe("cases.>", SubscribeOptions::new().capacity(1 << 14))
        .unwrap();
    let relay = outbox
        .spawn_relay(bus.clone(), RelayConfig::default())
        .unwrap();
    let pipeline = Pipeline {
        ds: ds.clone(),
        outbox: outbox.clone(),
        service: DataStoreService::new(ds.clone()),
        auditor: Auditor::new(log.clone()),
        cases: Arc::new(Mutex::new(Vec::new())),
    };
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|k| tokio::spawn(client(pipeline.clone(), k)))
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let created: usize = outcomes.iter().map(|o| o.created).sum();
    let changes: usize = outcomes.iter().map(|o| o.status_changes).sum();
    let queries: usize = outcomes.iter().map(|o| o.queries).sum();
    let mut attached: HashMap<String, u64> = HashMap::new();
    for o in &outcomes {
        for (case, n) in &o.attached {
            *attached.entry(case.clone()).or_default() += n;
        }
    }
    let attached_total: u64 = attached.values().sum();
    assert_eq!(
        created + changes + queries + attached_total as usize,
        CLIENTS * OPS_PER_CLIENT
    );
    assert!(created >= CLIENTS && changes > 100 && attached_total > 100 && queries > 50);

    // Every event arrives, once each, in commit order.
    let expected_events = created + changes + attached_total as usize;
    let mut received = Vec::with_capacity(expected_events);
    while received.len() < expected_events {
        let e = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {expected_events} events", received.len()))
            .unwrap();
        received.push(e);
    }
    let mut watch = relay.watch();
    tokio::time::timeout(
        PATIENCE,
        watch.wait_for(|s| s.delivered == expected_events as u64),
    )
    .await
    .unwrap()
    .unwrap();
    relay.shutdown().await;
    assert!(sub.try_recv().is_none());
    let ids: HashSet<EventId> = received.iter().map(|e| e.id()).collect();
    assert_eq!(ids.len(), expected_events);
    let replayed = outbox
        .replay("cases.>", ReplayFrom::Offset(0), 10_000)
        .await
        .unwrap();
    let replayed_ids: Vec<EventId> = replayed.events.iter().map(|r| r.envelope.id()).collect();
    let received_ids: Vec<EventId> = received.iter().map(|e| e.id()).collect();
    assert_eq!(replayed_ids, received_ids, "delivered in offset order");

    // Re-read everything: every case, with its type, and the status its last
    // status_changed event says, each change starting where the last one ended.
    let expected_cases: BTreeMap<String, String> = pipeline.cases.lock().iter().cloned().collect();
    assert_eq!(expected_cases.len(), created);
    let mut status_of: HashMap<String, String> = HashMap::new();
    for e in &received {
        let p = payload_of(e);
        match e.topic().as_str() {
            "cases.created" => {
                assert!(
                    status_of
                        .insert(p["case"].as_str().unwrap().to_owned(), "open".into())
                        .is_none()
                );
            }
            "cases.status_changed" => {
                let case = p["case"].as_str().unwrap();
                let before = status_of
                    .get_mut(case)
                    .expect("a change before the case existed");
                assert_eq!(p["from"], before.as_str(), "case {case}");
                *before = p["to"].as_str().unwrap().to_owned();
            }
            "cases.entity_attached" => {
                assert!(status_of.contains_key(p["case"].as_str().unwrap()));
            }
            other => panic!("unexpected topic {other}"),
        }
    }
    let mut by_query = HashSet::new();
    for kind in TYPES {
        for status in STATUSES {
            for id in pipeline.query(kind, status).await {
                assert_eq!(expected_cases[&id], kind);
                assert_eq!(status_of[&id], status, "case {id}");
                assert!(by_query.insert(id));
            }
        }
    }
    assert_eq!(by_query.len(), created);
    for (case, kind) in &expected_cases {
        let doc = ds.get("cases", case).await.unwrap().unwrap();
        assert_eq!(doc.doc["type"], kind.as_str());
        assert_eq!(doc.doc["status"], status_of[case].as_str());
        let filter = Filter::from_json(&json!({"field": "case_id", "eq": case})).unwrap();
        let n = ds.count("entities", &filter).await.unwrap();
        assert_eq!(n, attached.get(case).copied().unwrap_or(0), "case {case}");
    }
    assert_eq!(
        ds.count("entities", &Filter::All).await.unwrap(),
        attached_total
    );

    // The audit trail: one entry per mutating operation, by the client that made it.
    let audit = AuditService::new(log.clone());
    for (k, o) in outcomes.iter().enumerate() {
        let mut n = 0;
        let mut cursor = Value::Null;
        loop {
            let page = audit
                .call(
                    "query",
                    json!({"who": format!("client-{k}"), "limit": 20, "cursor": cursor}),
                    CallContext::new(),
                )
                .await
                .unwrap();
            n += page["entries"].as_array().unwrap().len();
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        assert_eq!(n, o.audited, "client-{k}");
    }
    let changes_audited = log
        .query(&AuditQuery {
            method: Some("cases.update_status".into()),
            limit: Some(1_000),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(changes_audited.entries.len(), changes);
    assert!(
        changes_audited
            .entries
            .iter()
            .all(|r| r.entry.outcome.is_ok())
    );
    ds.store().close().await;
    place.remove().await;
}
