//! The outbox: events commit with their data change or not at all, the relay
//! delivers them after commit with their ids, retries refusals, delivers what a
//! previous process left behind, and a durable topic replays from an offset or a
//! time.

use std::collections::HashSet;
use std::sync::Arc;

use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_core::{Envelope, EventId, Timestamp};
use plexus_store::{
    BackendKind, CollectionSpec, DataStore, DeliveryState, Op, Outbox, OutboxConfig, OutboxError,
    PutMode, RelayConfig, ReplayFrom, StoreError,
};
use serde_json::json;

use crate::support::{PATIENCE, Place, cases_outbox, event, payload_of, put_case};

plexus_store::on_both!(
    events_commit_with_their_data_change_or_not_at_all,
    bad_events_are_refused_before_anything_is_written,
    the_relay_delivers_after_commit_with_the_same_ids,
    a_refused_event_is_retried_until_the_bus_takes_it,
    a_new_process_delivers_what_the_last_one_left,
    durable_topics_replay_from_an_offset_or_a_time,
    retention_keeps_undelivered_events,
);

async fn open(place: &Place) -> (DataStore, Outbox) {
    let ds = place.open().await;
    let outbox = cases_outbox(&ds).await;
    (ds, outbox)
}

/// Receives `n` envelopes or fails after [`PATIENCE`].
async fn receive(sub: &mut plexus_bus::Subscription, n: usize) -> Vec<Arc<Envelope>> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let e = tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived", got.len()))
            .unwrap();
        got.push(e);
    }
    got
}

async fn events_commit_with_their_data_change_or_not_at_all(kind: BackendKind) {
    let place = Place::new(kind);
    let (ds, outbox) = open(&place).await;
    let opened = event("cases.opened", json!({"case": "c1"}));
    let (stored, appended) = outbox
        .put(
            "cases",
            "c1",
            &json!({"status": "open"}),
            PutMode::Insert,
            None,
            vec![opened.clone()],
        )
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0].id, opened.id());
    assert_eq!(outbox.pending().await.unwrap(), 1);

    // A failing operation rolls back the document and its event together.
    let lost = event("cases.status_changed", json!({"case": "c1"}));
    let err = outbox
        .transaction(
            vec![
                Op::Patch {
                    collection: "cases".into(),
                    id: "c1".into(),
                    patch: json!({"status": "closed"}),
                    expected_version: None,
                },
                Op::Put {
                    collection: "cases".into(),
                    id: "c1".into(),
                    doc: json!({"status": "dup"}),
                    mode: PutMode::Insert,
                    expected_version: None,
                },
            ],
            vec![lost.clone()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            OutboxError::Store(StoreError::Transaction { index: 1, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        ds.get("cases", "c1").await.unwrap().unwrap().doc["status"],
        "open"
    );
    assert_eq!(outbox.pending().await.unwrap(), 1);
    let all = outbox
        .replay("cases.>", ReplayFrom::Offset(0), 100)
        .await
        .unwrap();
    let ids: Vec<EventId> = all.events.iter().map(|r| r.envelope.id()).collect();
    assert_eq!(ids, vec![opened.id()]);

    // An event whose insert fails (same id again) rolls the document back too.
    let err = outbox
        .put(
            "cases",
            "c2",
            &json!({"status": "open"}),
            PutMode::Insert,
            None,
            vec![opened.clone()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OutboxError::Duplicate { id } if *id == opened.id().to_string()),
        "{err:?}"
    );
    assert!(ds.get("cases", "c2").await.unwrap().is_none());

    // Events with no data change commit on their own.
    let alone = outbox
        .append(vec![event("cases.audit", json!({"n": 1}))])
        .await
        .unwrap();
    assert!(alone[0].offset > appended[0].offset);
    assert_eq!(outbox.pending().await.unwrap(), 2);
    ds.store().close().await;
    place.remove().await;
}

async fn bad_events_are_refused_before_anything_is_written(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    ds.create_collection("cases", CollectionSpec::default())
        .await
        .unwrap();
    let config = OutboxConfig {
        max_events_per_transaction: 2,
        max_event_bytes: 400,
        max_pending: 3,
        ..OutboxConfig::default()
    };
    let outbox = Outbox::open(ds.clone(), config).await.unwrap();
    assert!(matches!(
        outbox.declare_durable("cases..x"),
        Err(OutboxError::InvalidPattern { .. })
    ));
    outbox.declare_durable("cases.>").unwrap();
    let doc = json!({"status": "open"});
    let put = |events| outbox.put("cases", "c1", &doc, PutMode::Upsert, None, events);
    let err = put(vec![event("billing.paid", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(&err, OutboxError::NotDurable { topic } if topic == "billing.paid"));
    let err = put(vec![event("cases.a", json!({})); 3]).await.unwrap_err();
    assert!(matches!(
        err,
        OutboxError::TooManyEvents { count: 3, limit: 2 }
    ));
    let err = put(vec![event("cases.a", json!({"text": "x".repeat(500)}))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, OutboxError::TooLarge { limit: 400, .. }),
        "{err:?}"
    );
    assert!(ds.get("cases", "c1").await.unwrap().is_none());
    assert_eq!(outbox.pending().await.unwrap(), 0);

    // The pending bound: three fit, the fourth is refused until some are delivered.
    outbox
        .append(vec![
            event("cases.a", json!({})),
            event("cases.b", json!({})),
        ])
        .await
        .unwrap();
    outbox
        .append(vec![event("cases.c", json!({}))])
        .await
        .unwrap();
    let err = outbox
        .append(vec![event("cases.d", json!({}))])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OutboxError::Full {
                pending: 3,
                adding: 1,
                limit: 3
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let bus = Bus::new();
    let mut sub = bus.subscribe("cases.>", SubscribeOptions::new()).unwrap();
    let relay = outbox
        .spawn_relay(bus.clone(), RelayConfig::default())
        .unwrap();
    receive(&mut sub, 3).await;
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 3))
        .await
        .unwrap()
        .unwrap();
    outbox
        .append(vec![event("cases.d", json!({}))])
        .await
        .unwrap();
    relay.shutdown().await;
    ds.store().close().await;
    place.remove().await;
}

async fn the_relay_delivers_after_commit_with_the_same_ids(kind: BackendKind) {
    let place = Place::new(kind);
    let (_ds, outbox) = open(&place).await;
    let bus = Bus::new();
    let mut sub = bus.subscribe("cases.>", SubscribeOptions::new()).unwrap();
    // Polling once an hour: only the wake-up of each commit can deliver in time.
    let config = RelayConfig {
        poll_interval_ms: 3_600_000,
        ..RelayConfig::default()
    };
    let relay = outbox.spawn_relay(bus.clone(), config).unwrap();
    let mut sent = Vec::new();
    for i in 0..40 {
        let e = event("cases.opened", json!({"i": i})).with_header("tenant", "acme");
        sent.push(e.clone());
        put_case(&outbox, i, vec![e]).await;
    }
    let got = receive(&mut sub, 40).await;
    // In commit order, same ids, correlation ids, headers and payloads.
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(g.id(), s.id());
        assert_eq!(g.correlation_id(), s.correlation_id());
        assert_eq!(g.headers().get("tenant"), Some("acme"));
        assert_eq!(payload_of(g), payload_of(s));
    }
    let mut watch = relay.watch();
    let stats = *tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.refused, 0);
    assert_eq!(outbox.pending().await.unwrap(), 0);
    let page = outbox
        .replay("cases.>", ReplayFrom::Offset(0), 100)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 40);
    assert!(
        page.events
            .iter()
            .all(|r| r.state == DeliveryState::Delivered && r.attempts == 1)
    );
    assert_eq!(stats.last_offset, page.events[39].offset);
    relay.shutdown().await;
    place.remove().await;
}

async fn a_refused_event_is_retried_until_the_bus_takes_it(kind: BackendKind) {
    let place = Place::new(kind);
    let (_ds, outbox) = open(&place).await;
    let bus = Bus::new();
    // One slot per lane, and refuse when it is full.
    let mut sub = bus
        .subscribe(
            "cases.>",
            SubscribeOptions::new()
                .capacity(1)
                .overflow(Overflow::Reject),
        )
        .unwrap();
    let config = RelayConfig {
        retry_backoff_ms: 5,
        max_backoff_ms: 20,
        ..RelayConfig::default()
    };
    let relay = outbox.spawn_relay(bus.clone(), config).unwrap();
    let events: Vec<Envelope> = (0..3)
        .map(|i| event("cases.opened", json!({"i": i})))
        .collect();
    outbox.append(events.clone()).await.unwrap();
    let mut watch = relay.watch();
    // The first fits; the second is refused, again and again while nobody reads.
    tokio::time::timeout(
        PATIENCE,
        watch.wait_for(|s| s.delivered == 1 && s.refused >= 3),
    )
    .await
    .unwrap()
    .unwrap();
    let page = outbox
        .replay("cases.>", ReplayFrom::Offset(0), 10)
        .await
        .unwrap();
    let states: Vec<DeliveryState> = page.events.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        vec![
            DeliveryState::Delivered,
            DeliveryState::Pending,
            DeliveryState::Pending
        ]
    );
    assert!(
        page.events[1].attempts >= 3,
        "{:?}",
        page.events[1].attempts
    );
    // Reading makes room: every event arrives once, in order.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(receive(&mut sub, 1).await.remove(0).id());
    }
    assert_eq!(got, events.iter().map(Envelope::id).collect::<Vec<_>>());
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 3))
        .await
        .unwrap()
        .unwrap();
    assert!(sub.try_recv().is_none());
    relay.shutdown().await;

    // With require_subscriber, an event nobody listens to waits for a listener.
    let lonely = Bus::new();
    let config = RelayConfig {
        retry_backoff_ms: 5,
        max_backoff_ms: 20,
        require_subscriber: true,
        ..RelayConfig::default()
    };
    let relay = outbox.spawn_relay(lonely.clone(), config).unwrap();
    let late = event("cases.late", json!({}));
    outbox.append(vec![late.clone()]).await.unwrap();
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.refused >= 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outbox.pending().await.unwrap(), 1);
    let mut sub = lonely
        .subscribe("cases.late", SubscribeOptions::new())
        .unwrap();
    assert_eq!(receive(&mut sub, 1).await[0].id(), late.id());
    relay.shutdown().await;
    place.remove().await;
}

async fn a_new_process_delivers_what_the_last_one_left(kind: BackendKind) {
    let place = Place::new(kind);
    let (ds, outbox) = open(&place).await;
    let mut written = HashSet::new();
    for i in 0..25 {
        let e = event("cases.opened", json!({"i": i}));
        written.insert(e.id());
        put_case(&outbox, i, vec![e]).await;
    }
    // No relay ran: the process "stops" here.
    drop(outbox);
    ds.store().close().await;

    let (ds, outbox) = open(&place).await;
    assert_eq!(outbox.pending_estimate(), 25);
    let bus = Bus::new();
    let mut sub = bus.subscribe("cases.*", SubscribeOptions::new()).unwrap();
    let config = RelayConfig {
        poll_interval_ms: 20,
        ..RelayConfig::default()
    };
    let relay = outbox.spawn_relay(bus.clone(), config).unwrap();
    let got: HashSet<EventId> = receive(&mut sub, 25).await.iter().map(|e| e.id()).collect();
    assert_eq!(got, written);
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 25))
        .await
        .unwrap()
        .unwrap();

    // Another process appends to the same database: no wake-up reaches this relay,
    // its poll finds the event.
    let (other_ds, other) = open(&place).await;
    let more = other
        .append(vec![event("cases.closed", json!({"i": 25}))])
        .await
        .unwrap();
    let late = receive(&mut sub, 1).await;
    assert_eq!(late[0].id(), more[0].id);
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 26))
        .await
        .unwrap()
        .unwrap();
    other_ds.store().close().await;
    relay.shutdown().await;
    assert_eq!(outbox.pending().await.unwrap(), 0);
    ds.store().close().await;
    place.remove().await;
}

async fn durable_topics_replay_from_an_offset_or_a_time(kind: BackendKind) {
    let place = Place::new(kind);
    let (ds, outbox) = open(&place).await;
    outbox.declare_durable("billing.*").unwrap();
    let mut offsets = Vec::new();
    for i in 0..10u64 {
        let topic = if i % 2 == 0 {
            "cases.opened"
        } else {
            "billing.paid"
        };
        let e = event(topic, json!({"i": i}));
        let a = outbox.append(vec![e]).await.unwrap();
        offsets.push(a[0].offset);
    }
    let cut = Timestamp::now();
    let later = event("cases.closed", json!({"i": 10}));
    let last = outbox.append(vec![later.clone()]).await.unwrap()[0].offset;

    let page = outbox
        .replay("cases.>", ReplayFrom::Offset(offsets[3]), 100)
        .await
        .unwrap();
    let is: Vec<u64> = page
        .events
        .iter()
        .map(|r| payload_of(&r.envelope)["i"].as_u64().unwrap())
        .collect();
    assert_eq!(is, vec![4, 6, 8, 10]);
    assert_eq!(page.next_offset, None);
    assert!(
        page.events
            .iter()
            .all(|r| r.state == DeliveryState::Pending)
    );

    // Paging: two at a time, continuing where the last page stopped.
    let first = outbox
        .replay("billing.paid", ReplayFrom::Offset(0), 2)
        .await
        .unwrap();
    assert_eq!(first.events.len(), 2);
    let next = first.next_offset.unwrap();
    assert_eq!(next, first.events[1].offset + 1);
    let rest = outbox
        .replay("billing.paid", ReplayFrom::Offset(next), 10)
        .await
        .unwrap();
    assert_eq!(rest.events.len(), 3);

    let since = outbox
        .replay(">", ReplayFrom::Time(cut), 100)
        .await
        .unwrap();
    assert_eq!(since.events.len(), 1);
    assert_eq!(since.events[0].envelope.id(), later.id());
    assert_eq!(since.events[0].offset, last);

    assert!(matches!(
        outbox.replay("cases.>", ReplayFrom::Offset(0), 0).await,
        Err(OutboxError::InvalidArgument { field: "limit", .. })
    ));
    assert!(matches!(
        outbox.replay("cases.>.x", ReplayFrom::Offset(0), 5).await,
        Err(OutboxError::InvalidPattern { .. })
    ));
    ds.store().close().await;
    place.remove().await;
}

async fn retention_keeps_undelivered_events(kind: BackendKind) {
    let place = Place::new(kind);
    let ds = place.open().await;
    let outbox = Outbox::open(
        ds.clone(),
        OutboxConfig {
            max_retained: 2,
            ..OutboxConfig::default()
        },
    )
    .await
    .unwrap();
    outbox.declare_durable("cases.>").unwrap();
    let bus = Bus::new();
    let mut sub = bus.subscribe("cases.>", SubscribeOptions::new()).unwrap();
    let relay = outbox
        .spawn_relay(bus.clone(), RelayConfig::default())
        .unwrap();
    for i in 0..5 {
        outbox
            .append(vec![event("cases.x", json!({"i": i}))])
            .await
            .unwrap();
    }
    receive(&mut sub, 5).await;
    let mut watch = relay.watch();
    tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.delivered == 5))
        .await
        .unwrap()
        .unwrap();
    relay.shutdown().await;
    // Two more stay undelivered: no relay runs now.
    for i in 5..7 {
        outbox
            .append(vec![event("cases.x", json!({"i": i}))])
            .await
            .unwrap();
    }
    assert_eq!(outbox.prune().await.unwrap(), 3);
    let left = outbox
        .replay("cases.>", ReplayFrom::Offset(0), 100)
        .await
        .unwrap();
    let is: Vec<u64> = left
        .events
        .iter()
        .map(|r| payload_of(&r.envelope)["i"].as_u64().unwrap())
        .collect();
    assert_eq!(is, vec![3, 4, 5, 6]);
    assert_eq!(outbox.pending().await.unwrap(), 2);
    ds.store().close().await;
    place.remove().await;
}
