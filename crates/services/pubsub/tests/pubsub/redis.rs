//! The suite on the test Redis, and what only the bridge does.

use plexus_bus::SubscribeOptions;
use plexus_pubsub::conformance::{event, eventually, next};
use plexus_pubsub::{ORIGIN_HEADER, PubSubConfig};
use plexus_redis::testing::{redis_url, unique_prefix};
use serde_json::json;

use crate::support::{bridged, on_redis, pair};

mod suite {
    plexus_pubsub::pubsub_conformance!(|topics: Vec<String>| async move {
        crate::support::pair(topics).await.0
    });
}

/// Topics no shared pattern matches never leave the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_topics_stay_local() {
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
    // The sender counts once Redis has answered, which may be after delivery.
    eventually("the sender counts one event sent", || async {
        a.metrics().snapshot().published == 1
    })
    .await;
}

/// An event over `max_message_bytes` stays on its node and is counted; the next
/// one crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_events_stay_home_and_are_counted() {
    let config = PubSubConfig {
        max_message_bytes: 2_048,
        ..on_redis(vec!["big.>".into()])
    };
    let prefix = unique_prefix();
    let (a, bridge_a) = bridged(&config, &redis_url(), &prefix).await;
    let (b, _bridge_b) = bridged(&config, &redis_url(), &prefix).await;
    let mut big = b.subscribe("big.>", SubscribeOptions::new()).unwrap();
    a.publish(event("big.one", &json!("x".repeat(4_096))))
        .await
        .unwrap();
    a.publish(event("big.two", &json!("small"))).await.unwrap();
    assert_eq!(next(&mut big).await.topic().as_str(), "big.two");
    assert_eq!(bridge_a.metrics().snapshot().dropped_too_large, 1);
}

/// Anything else on a bridged channel (not an envelope, no origin, another topic
/// than its channel's) is counted and ignored; the bridge goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_counted_and_ignored() {
    let (ends, a, b) = pair(vec!["room.>".into()]).await;
    let mut room = ends.b.subscribe("room.>", SubscribeOptions::new()).unwrap();
    let redis =
        plexus_redis::Redis::open(&plexus_redis::testing::test_config(&redis_url(), "unused:"))
            .unwrap();
    let channel = a.channel_for("room.1");
    let unmarked = event("room.1", &json!(1)).to_json().unwrap();
    let elsewhere = event("room.2", &json!(2))
        .with_header(ORIGIN_HEADER, "someone")
        .with_header(plexus_pubsub::SEQ_HEADER, "0:1")
        .to_json()
        .unwrap();
    for bad in [b"not json".to_vec(), unmarked, elsewhere] {
        let channel = channel.clone();
        redis
            .run(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(bad)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .unwrap();
    }
    ends.a.publish(event("room.3", &json!(3))).await.unwrap();
    assert_eq!(next(&mut room).await.topic().as_str(), "room.3");
    eventually("three foreign messages counted", || async {
        b.metrics().snapshot().dropped_malformed == 3
    })
    .await;
}
