//! WebSocket clients: calls, subscriptions and publishing over `/ws`.

use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_core::{Envelope, Payload, Topic};
use serde_json::json;

use crate::support::{Harness, WAIT, code};

#[tokio::test]
async fn a_client_calls_methods_and_batches_over_the_socket() {
    let h = Harness::start().await;
    let mut peer = h.peer().await;
    assert_eq!(peer.ok("spec.subtract", json!([42, 23])).await, json!(19));
    let missing = peer.request("spec.nothing", json!({})).await;
    assert_eq!(code(&missing), -32601);
    peer.send(&json!([
        {"jsonrpc": "2.0", "id": "a", "method": "spec.sum", "params": [1, 2]},
        {"jsonrpc": "2.0", "method": "spec.notify_hello", "params": []},
        {"jsonrpc": "2.0", "id": "b", "method": "spec.get_data"}
    ]))
    .await;
    let batch = peer.next().await;
    assert_eq!(
        batch,
        json!([
            {"jsonrpc": "2.0", "result": 3, "id": "a"},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": "b"}
        ])
    );
}

#[tokio::test]
async fn a_subscriber_receives_matching_events_until_it_unsubscribes() {
    let h = Harness::start().await;
    let mut peer = h.peer().await;
    let sub = peer
        .ok("plexus.subscribe", json!({"pattern": "news.*"}))
        .await;
    let id = sub["subscription"].as_str().unwrap().to_owned();

    let bus = h.node.bus();
    let topic = Topic::new("news.sports").unwrap();
    bus.publish(Envelope::new(
        topic.clone(),
        Payload::json(&json!({"score": 3})).unwrap(),
    ))
    .await
    .unwrap();
    bus.publish(Envelope::new(
        Topic::new("weather.today").unwrap(),
        Payload::Empty,
    ))
    .await
    .unwrap();
    bus.publish(Envelope::new(topic, Payload::bytes(&b"\x00\x01"[..])))
        .await
        .unwrap();

    let first = peer.notification("plexus.event").await;
    let params = &first["params"];
    assert_eq!(params["subscription"], id.as_str());
    assert_eq!(params["topic"], "news.sports");
    assert_eq!(params["payload"], json!({"score": 3}));
    assert_eq!(params["payload_encoding"], "json");
    assert_eq!(params["priority"], "normal");
    assert!(params["id"].as_str().unwrap().len() >= 32);
    let second = peer.notification("plexus.event").await;
    assert_eq!(second["params"]["payload_encoding"], "base64");
    assert_eq!(second["params"]["payload"], "AAE=");

    peer.ok("plexus.unsubscribe", json!({"subscription": id}))
        .await;
    let again = peer
        .request("plexus.unsubscribe", json!({"subscription": id}))
        .await;
    assert_eq!(code(&again), -32602);
    // Unsubscribed: a publish reaches nobody on the socket.
    let receipt = bus
        .publish(Envelope::new(
            Topic::new("news.late").unwrap(),
            Payload::Empty,
        ))
        .await
        .unwrap();
    assert_eq!(receipt.matched, 0);
}

#[tokio::test]
async fn a_client_publishes_to_in_process_subscribers() {
    let h = Harness::start().await;
    let mut sub = h
        .node
        .bus()
        .subscribe("orders.>", SubscribeOptions::new())
        .unwrap();
    let mut peer = h.peer().await;
    let receipt = peer
        .ok(
            "plexus.publish",
            json!({"topic": "orders.eu.created", "payload": {"n": 1}, "priority": "high", "headers": {"k": "v"}}),
        )
        .await;
    assert_eq!(receipt["enqueued"], 1);
    let got = tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.topic().as_str(), "orders.eu.created");
    assert_eq!(got.priority(), plexus_core::Priority::High);
    assert_eq!(got.headers().get("k"), Some("v"));
    let payload: serde_json::Value = got
        .payload()
        .decode::<serde_json::Value>()
        .unwrap()
        .as_ref()
        .clone();
    assert_eq!(payload, json!({"n": 1}));

    let bad = peer
        .request("plexus.publish", json!({"topic": "a..b"}))
        .await;
    assert_eq!(code(&bad), -32602);
    let bad = peer
        .request(
            "plexus.publish",
            json!({"topic": "a.b", "priority": "urgent"}),
        )
        .await;
    assert_eq!(code(&bad), -32602);
    assert_eq!(bad["error"]["data"]["field"], "/priority");
    // Publishing over HTTP works the same.
    let over_http = h
        .call(
            "plexus.publish",
            json!({"topic": "orders.us.created", "payload": 2}),
        )
        .await;
    assert_eq!(over_http["result"]["enqueued"], 1);
}

#[tokio::test]
async fn a_slow_subscriber_loses_its_oldest_events_and_never_holds_publishers() {
    let h = Harness::with(plexus_gateway::GatewayConfig {
        ws_send_queue: 1,
        ..Default::default()
    })
    .await;
    let mut peer = h.peer().await;
    peer.ok(
        "plexus.subscribe",
        json!({"pattern": "flood", "capacity": 4}),
    )
    .await;
    // The peer reads nothing from now on: 64 KiB events fill the socket's buffers,
    // then its send queue, then the subscription's lane.
    let big = "x".repeat(64 * 1024);
    let bus = h.node.bus();
    let published = async {
        for _ in 0..400 {
            bus.publish(Envelope::new(
                Topic::new("flood").unwrap(),
                Payload::json(&big).unwrap(),
            ))
            .await
            .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), published)
        .await
        .expect("a slow WebSocket subscriber held the publisher up");
    let dropped: u64 = bus
        .subscriptions()
        .iter()
        .filter(|s| s.name.as_deref().is_some_and(|n| n.starts_with("ws-")))
        .map(|s| s.stats.dropped)
        .sum();
    assert!(dropped > 0, "no event was dropped");
    drop(peer);
}

#[tokio::test]
async fn subscriptions_per_socket_are_bounded_and_checked() {
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_ws_subscriptions: 2,
        ..Default::default()
    })
    .await;
    let mut peer = h.peer().await;
    peer.ok("plexus.subscribe", json!({"pattern": "a"})).await;
    peer.ok("plexus.subscribe", json!({"pattern": "b"})).await;
    let third = peer
        .request("plexus.subscribe", json!({"pattern": "c"}))
        .await;
    assert_eq!(code(&third), -32007);
    let bad = peer
        .request("plexus.subscribe", json!({"pattern": "a.>.b"}))
        .await;
    assert_eq!(code(&bad), -32602);
    let bad = peer
        .request(
            "plexus.subscribe",
            json!({"pattern": "a", "overflow": "explode"}),
        )
        .await;
    assert_eq!(code(&bad), -32602);
    let unknown = peer.request("plexus.fly", json!({})).await;
    assert_eq!(code(&unknown), -32601);
}

/// This process's resident memory, in bytes (the node runs in it).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_and_never_reads_cannot_grow_the_node() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let h = Harness::with(plexus_gateway::GatewayConfig {
        max_ws_message_bytes: 64 << 10,
        max_ws_send_buffer_bytes: 256 << 10,
        ..Default::default()
    })
    .await;
    let mut flooder = h.peer().await;
    let ping = vec![7u8; 125];
    // 400,000 pings whose pongs are never read: 50 MB of pongs that an unbounded
    // write buffer would hold; the node holds at most max_ws_send_buffer_bytes.
    let before = rss();
    for _ in 0..400_000 {
        if flooder
            .socket
            .send(Frame::Ping(ping.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Every ping has been read by the node once another request is answered after
    // them on the same runtime; the node serves others as before.
    let services = h.call("node.services", json!({})).await;
    assert!(services.is_object() || services.is_array(), "{services}");
    let grown = rss().saturating_sub(before);
    assert!(grown < 24 << 20, "the node grew by {grown} bytes");
}
