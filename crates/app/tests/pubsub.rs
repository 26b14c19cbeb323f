//! The Pub/Sub family in whole nodes, chosen by configuration alone: two nodes on
//! one Redis with `[pubsub] backend = "redis"`, an event published over JSON-RPC on
//! one reaching a WebSocket subscriber of the other, and nothing else crossing.

mod support;

use std::time::Duration;

use futures::StreamExt;
use plexus_client::{Client, Priority};
use serde_json::{Value, json};
use support::Served;

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn status(client: &Client) -> Value {
    client
        .call("pubsub.status", json!({}))
        .await
        .expect("pubsub.status")
}

/// Waits (at most 10 s) until `pubsub.status` on `client` meets `check`.
async fn status_until(client: &Client, what: &str, check: impl Fn(&Value) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !check(&status(client).await) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: {}", status(client).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_on_one_node_reaches_a_websocket_subscriber_of_another() {
    let prefix = format!("plexus-test:pubsub:{}:", uuid::Uuid::new_v4().simple());
    let extra = format!(
        "[pubsub]\nbackend = \"redis\"\ntopics = [\"chat.>\"]\n[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    let a = Served::start("pubsub-a", "name = \"a\"\n", &extra).await;
    let b = Served::start("pubsub-b", "name = \"b\"\n", &extra).await;
    let (ca, cb) = (a.client(), b.client());
    for client in [&ca, &cb] {
        status_until(client, "the bridge subscribes", |s| s["live"] == true).await;
    }
    assert!(b.node.health().component("redis").is_some());

    let mut room = cb.subscribe("chat.*").await.expect("subscribed over /ws");
    ca.publish("private.note", json!("stays on a"), Priority::Normal)
        .await
        .unwrap();
    ca.publish(
        "chat.room1",
        json!({"text": "hello from a"}),
        Priority::High,
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), room.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
        .expect("an event");
    assert_eq!(event.topic, "chat.room1");
    assert_eq!(event.payload, json!({"text": "hello from a"}));
    assert_eq!(event.priority, Priority::High);

    // The sender counts once Redis has answered, which may be after delivery.
    status_until(&ca, "one event sent", |s| s["counts"]["published"] == 1).await;
    let (sa, sb) = (status(&ca).await, status(&cb).await);
    assert_eq!(sa["backend"], "redis");
    assert_eq!(sb["counts"]["received"], 1, "{sb}");
    assert_eq!(sb["counts"]["gap_messages"], 0, "{sb}");
    drop(room);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_stays_in_process_by_default() {
    let node = Served::start("pubsub-default", "", "").await;
    let got = status(&node.client()).await;
    assert_eq!(got["backend"], "bus");
    assert_eq!(got["live"], true);
    assert!(node.node.health().component("redis").is_none());
    node.stop().await;
}
