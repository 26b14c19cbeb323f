//! The suite on the test NATS server (`PLEXUS_TEST_NATS_URL`), each test under a
//! fresh subject prefix, and the NATS backend through the family door.

use std::sync::Arc;

use plexus_bus::{Bus, SubscribeOptions};
use plexus_node::family::{Family, NodeSection};
use plexus_pubsub::conformance::{Ends, event, eventually, next};
use plexus_pubsub::testing::PrivateNats;
use plexus_pubsub::{
    Backend, Bridge, NatsConnection, ORIGIN_HEADER, PubSubConfig, PubSubFamily, PubSubMetrics,
};
use serde_json::json;

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// `[pubsub]` on NATS sharing `topics` under a subject prefix of its own.
fn on_nats(topics: Vec<String>) -> PubSubConfig {
    PubSubConfig {
        backend: Backend::Nats,
        topics,
        nats_url: Some(nats_url()),
        subject_prefix: format!("plexus.test.{}", uuid::Uuid::new_v4().simple()),
        ..PubSubConfig::default()
    }
}

/// A bus bridged through its own connection, once its subscriptions are live.
async fn bridged(config: &PubSubConfig) -> (Bus, Arc<Bridge>) {
    let nats = NatsConnection::connect(&nats_url(), "plexus pubsub test")
        .await
        .unwrap();
    let bus = Bus::new();
    let bridge = Arc::new(Bridge::nats(nats, config, PubSubMetrics::new()));
    bridge.start(&bus).unwrap();
    eventually("the bridge subscribes", || async { bridge.live() }).await;
    (bus, bridge)
}

async fn pair(topics: Vec<String>) -> (Ends, Arc<Bridge>, Arc<Bridge>) {
    let config = on_nats(topics);
    let (a, bridge_a) = bridged(&config).await;
    let (b, bridge_b) = bridged(&config).await;
    let keep: Vec<Arc<dyn std::any::Any + Send + Sync>> = vec![bridge_a.clone(), bridge_b.clone()];
    (Ends { a, b, keep }, bridge_a, bridge_b)
}

mod suite {
    plexus_pubsub::pubsub_conformance!(
        |topics: Vec<String>| async move { super::pair(topics).await.0 }
    );
}

/// Topics no shared pattern matches never leave the node; shared ones travel on
/// `{subject_prefix}.{topic}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_topics_stay_local_and_shared_ones_use_their_subject() {
    let (ends, a, _b) = pair(vec!["shared.>".into()]).await;
    let mut everything = ends.b.subscribe(">", SubscribeOptions::new()).unwrap();
    ends.a
        .publish(event("private.note", &json!(1)))
        .await
        .unwrap();
    ends.a
        .publish(event("shared.note", &json!(2)))
        .await
        .unwrap();
    let got = next(&mut everything).await;
    assert_eq!(got.topic().as_str(), "shared.note");
    assert!(got.headers().contains(ORIGIN_HEADER), "marked as bridged");
    assert!(a.channel_for("shared.note").ends_with(".shared.note"));
    eventually("the sender counts one event sent", || async {
        a.metrics().snapshot().published == 1
    })
    .await;
}

/// A raw NATS publisher on a shared subject that is not an envelope is counted
/// and ignored; the next real event crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_counted_and_ignored() {
    let (ends, _a, b) = pair(vec!["room.*".into()]).await;
    let mut room = ends.b.subscribe("room.*", SubscribeOptions::new()).unwrap();
    let raw = async_nats::connect(nats_url()).await.unwrap();
    raw.publish(b.channel_for("room.1"), "not an envelope".into())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    ends.a
        .publish(event("room.1", &json!("real")))
        .await
        .unwrap();
    let got = next(&mut room).await;
    assert_eq!(
        got.payload()
            .decode::<serde_json::Value>()
            .unwrap()
            .as_ref(),
        &json!("real")
    );
    eventually("the foreign message is counted", || async {
        b.metrics().snapshot().dropped_malformed == 1
    })
    .await;
}

/// `backend = "nats"` through the family door brings the `nats` health component,
/// and a missing `nats_url` is a configuration error naming it.
#[tokio::test]
async fn the_family_opens_nats_with_its_health_component() {
    let node = NodeSection::default();
    let section = json!({"backend": "nats", "topics": ["a.>"], "nats_url": nats_url()});
    let parts = PubSubFamily::default()
        .open(Some(&section), &node)
        .await
        .unwrap();
    assert_eq!(parts.services.len(), 1);
    assert_eq!(parts.components.len(), 1);
    let Err(err) = PubSubFamily::default()
        .open(Some(&json!({"backend": "nats", "topics": ["a.>"]})), &node)
        .await
    else {
        panic!("opened without a server");
    };
    assert!(err.to_string().contains("pubsub.nats_url"), "{err}");
}

/// A private NATS killed and restarted under two bridged buses: the receiver goes
/// down and live again by itself, and every event the sender handled is either
/// delivered or counted as a gap by the receiver: none is lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_nats_comes_back_and_nothing_is_lost_silently() {
    let mut server = PrivateNats::start().await;
    let config = PubSubConfig {
        nats_url: Some(server.url()),
        ..on_nats(vec!["news.>".into()])
    };
    let connect = |url: String| async move {
        NatsConnection::connect(&url, "plexus pubsub fault test")
            .await
            .unwrap()
    };
    let (a, b) = (Bus::new(), Bus::new());
    let sender = Bridge::nats(connect(server.url()).await, &config, PubSubMetrics::new());
    let receiver = Bridge::nats(connect(server.url()).await, &config, PubSubMetrics::new());
    sender.start(&a).unwrap();
    receiver.start(&b).unwrap();
    eventually("both bridges subscribe", || async {
        sender.live() && receiver.live()
    })
    .await;
    let mut news = b.subscribe("news.>", SubscribeOptions::new()).unwrap();
    a.publish(event("news.first", &json!(0))).await.unwrap();
    assert_eq!(next(&mut news).await.topic().as_str(), "news.first");

    server.kill().await;
    eventually("the receiver sees the connection lost", || async {
        !receiver.live()
    })
    .await;
    for n in 1..=5 {
        a.publish(event("news.meanwhile", &json!(n))).await.unwrap();
    }
    server.start_again().await;
    eventually("the receiver is live again", || async {
        receiver.live() && receiver.metrics().snapshot().resubscribes == 1
    })
    .await;

    // Send until one arrives after the restart (the receiver's subscription may
    // reach the new server a moment after its connection does).
    let mut k = 0;
    'back: loop {
        k += 1;
        assert!(k <= 50, "nothing arrived after the restart");
        a.publish(event("news.back", &json!(k))).await.unwrap();
        while let Ok(Some(got)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), news.recv()).await
        {
            if got.topic().as_str() == "news.back" {
                break 'back;
            }
        }
    }
    let handled = 1 + 5 + k;
    eventually("every event is delivered or counted as a gap", || async {
        let sent = sender.metrics().snapshot();
        let got = receiver.metrics().snapshot();
        sent.published + sent.dropped_publish_failed == handled
            && got.received + got.gap_messages == handled
    })
    .await;
}
