//! Durable topics on a JetStream stream of the shared NATS server, one stream per
//! test: the outbox relay publishes into it, JetStream drops the relay's copies,
//! and durable consumers on other nodes' buses get every event, resume where they
//! acknowledged, and get a refused event again.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plexus_bus::{Bus, Overflow, SubscribeOptions, Subscription};
use plexus_cluster::{ConsumerConfig, DurableConfig, DurableStream};
use plexus_core::{CorrelationId, Envelope, Payload, Topic};
use plexus_store::testing::Place;
use plexus_store::{BackendKind, Delivery, Outbox, OutboxConfig, RelayConfig, RelaySink};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(10);

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A stream of its own on the shared server, keeping `orders.>`; removed at the end
/// of the test by [`Fresh`]'s drop (best effort, on its own thread).
async fn fresh() -> (DurableStream, async_nats::jetstream::Context) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let id = uuid::Uuid::now_v7().simple().to_string();
    let config = DurableConfig {
        stream: format!("plexus_test_durable_{id}"),
        subject_prefix: format!("plexus.test.{id}"),
        topics: vec!["orders.>".into()],
        ..DurableConfig::default()
    };
    (
        DurableStream::open(&jetstream, &config).await.unwrap(),
        jetstream,
    )
}

async fn remove(jetstream: &async_nats::jetstream::Context, stream: &DurableStream) {
    jetstream.delete_stream(stream.name()).await.unwrap();
}

fn order(n: u64) -> Envelope {
    Envelope::new(
        Topic::new(format!("orders.o{n}")).unwrap(),
        Payload::json(&json!({"n": n})).unwrap(),
    )
    .with_correlation_id(CorrelationId::new())
}

async fn next(subscription: &mut Subscription) -> std::sync::Arc<Envelope> {
    tokio::time::timeout(PATIENCE, subscription.recv())
        .await
        .expect("an event within the patience")
        .unwrap()
}

/// Events written through the outbox reach a consumer on another bus, each once,
/// in order, with their ids and correlation ids; a copy of an event the relay
/// sends again is dropped by JetStream's dedupe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_relay_publishes_each_event_once_and_another_node_gets_them() {
    let (stream, jetstream) = fresh().await;
    let place = Place::new(BackendKind::Sqlite);
    let outbox = Outbox::open(place.open().await, OutboxConfig::default())
        .await
        .unwrap();
    outbox.declare_durable("orders.>").unwrap();
    let relay = outbox
        .spawn_relay_to(stream.clone(), RelayConfig::default())
        .unwrap();

    let other = Bus::new();
    let mut orders = other
        .subscribe("orders.>", SubscribeOptions::new().capacity(1_024))
        .unwrap();
    let consumer = stream
        .consume(other.clone(), ConsumerConfig::named("node-b"))
        .await
        .unwrap();

    let sent: Vec<Envelope> = (0..50).map(order).collect();
    outbox.append(sent.clone()).await.unwrap();
    for expected in &sent {
        let got = next(&mut orders).await;
        assert_eq!(got.id(), expected.id());
        assert_eq!(got.topic(), expected.topic());
        assert_eq!(got.correlation_id(), expected.correlation_id());
    }
    // The relay's retry of an event already kept: acknowledged, not kept twice.
    assert_eq!(
        stream.deliver(sent[7].clone(), false).await,
        Delivery::Acknowledged { expired: false }
    );
    assert_eq!(stream.stored().await.unwrap(), 50);
    // Marked delivered once JetStream acknowledged, which may be after the
    // consumer got them.
    tokio::time::timeout(PATIENCE, relay.watch().wait_for(|s| s.delivered == 50))
        .await
        .unwrap()
        .unwrap();
    relay.shutdown().await;
    tokio::time::timeout(
        PATIENCE,
        consumer.watch().wait_for(|s| s.acknowledged == 50),
    )
    .await
    .unwrap()
    .unwrap();
    remove(&jetstream, &stream).await;
}

/// A consumer that stops and comes back under the same name gets only what it
/// had not acknowledged; an event its bus refused comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_resumes_where_it_acknowledged_and_gets_refusals_again() {
    let (stream, jetstream) = fresh().await;
    let bus = Bus::new();
    let mut orders = bus
        .subscribe("orders.>", SubscribeOptions::new().capacity(1_024))
        .unwrap();
    // A short ack_wait: what the stopped consumer had pulled but not acknowledged
    // (its pull request outlives it on the server) comes again after it.
    let config = ConsumerConfig {
        ack_wait: Duration::from_secs(1),
        retry_delay: Duration::from_millis(20),
        ..ConsumerConfig::named("node-c")
    };
    let first = stream.consume(bus.clone(), config.clone()).await.unwrap();
    for n in 0..3 {
        stream.deliver(order(n), false).await;
    }
    for n in 0..3 {
        assert_eq!(
            next(&mut orders).await.topic().as_str(),
            format!("orders.o{n}")
        );
    }
    let mut acked = first.watch();
    tokio::time::timeout(PATIENCE, acked.wait_for(|s| s.acknowledged == 3))
        .await
        .unwrap()
        .unwrap();
    first.stop();

    for n in 3..6 {
        stream.deliver(order(n), false).await;
    }
    // Back under the same name, behind a subscriber that refuses when full: the
    // first event it gets fills it, the next are refused until it is drained.
    let strict = Bus::new();
    let mut narrow = strict
        .subscribe(
            "orders.>",
            SubscribeOptions::new()
                .capacity(1)
                .overflow(Overflow::Reject),
        )
        .unwrap();
    let again = stream.consume(strict.clone(), config).await.unwrap();
    tokio::time::timeout(PATIENCE, again.watch().wait_for(|s| s.refused >= 1))
        .await
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(next(&mut narrow).await.topic().as_str().to_owned());
    }
    // A refused event comes again after its delay, so it may come after the
    // next one: at least once, not in order, past a refusal.
    seen.sort();
    assert_eq!(seen, ["orders.o3", "orders.o4", "orders.o5"]);
    let mut watch = again.watch();
    let stats = *tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.acknowledged == 3))
        .await
        .unwrap()
        .unwrap();
    assert!(stats.redelivered >= stats.refused, "{stats:?}");
    remove(&jetstream, &stream).await;
}

/// A consumer acknowledges an event only once its node handled it: while a
/// handler is stuck on the first event, none of the three is acknowledged, and
/// one not handled within `ack_wait` comes again. When that node dies (its
/// consumer stops with the events still queued or in the handler), a node back
/// under the same name gets all three again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_acknowledged_only_once_handled_and_come_again_when_the_node_dies_first() {
    let (stream, jetstream) = fresh().await;
    let stuck = Bus::new();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let _handler = stuck
        .handle(
            "orders.>",
            SubscribeOptions::new().capacity(1_024),
            move |event: std::sync::Arc<Envelope>| {
                let _ = started_tx.send(event.topic().as_str().to_owned());
                // A handler that never finishes: the node is busy, then dies.
                std::future::pending::<Result<(), String>>()
            },
        )
        .unwrap();
    let config = ConsumerConfig {
        ack_wait: Duration::from_secs(1),
        ..ConsumerConfig::named("node-h")
    };
    let first = stream.consume(stuck.clone(), config.clone()).await.unwrap();
    for n in 0..3 {
        stream.deliver(order(n), false).await;
    }
    let started_on = tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap();
    assert_eq!(started_on.as_deref(), Some("orders.o0"));
    let mut watch = first.watch();
    let stats = *tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.unhandled >= 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.acknowledged, 0, "{stats:?}");
    let stats = *tokio::time::timeout(PATIENCE, watch.wait_for(|s| s.redelivered >= 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.acknowledged, 0, "{stats:?}");
    first.stop();

    let bus = Bus::new();
    let mut orders = bus
        .subscribe("orders.>", SubscribeOptions::new().capacity(1_024))
        .unwrap();
    let again = stream.consume(bus.clone(), config).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        seen.insert(next(&mut orders).await.topic().as_str().to_owned());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["orders.o0", "orders.o1", "orders.o2"]
    );
    tokio::time::timeout(PATIENCE, again.watch().wait_for(|s| s.acknowledged >= 3))
        .await
        .unwrap()
        .unwrap();
    remove(&jetstream, &stream).await;
}
