//! Two whole nodes made one system by configuration alone: `[cluster]` on the test
//! NATS (a fresh registry bucket and call prefix). A service that only node `a`
//! runs is called through node `b`'s JSON-RPC gateway; the services both run stay
//! local to each; node `b`'s health reports the cluster connection.
#![cfg(feature = "cluster")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use plexus_app::App;
use plexus_core::{
    CallContext, CallResult, MethodDescriptor, Service, ServiceDescriptor, async_trait,
};
use serde_json::{Value, json};
use support::{Served, config, data_dir};

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Answers `hello` with the node it runs on.
struct Greeter;

#[async_trait]
impl Service for Greeter {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("greeter", "test")
            .with_method(MethodDescriptor::new("hello").idempotent())
    }

    async fn call(&self, _method: &str, _params: Value, ctx: CallContext) -> CallResult {
        Ok(json!({"from": "a", "correlation_id": ctx.correlation_id.to_string()}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_one_node_is_called_through_another_nodes_gateway() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let cluster = format!(
        "[cluster]\nnats_url = \"{}\"\nregistry_bucket = \"plexus_test_app_{id}\"\ncall_prefix = \"plexus.test.{id}.call\"\n",
        nats_url()
    );
    let dir = data_dir("cluster-a");
    let app = App::builder()
        .toml(config(&dir, "name = \"a\"\n", &cluster))
        .service(Arc::new(Greeter))
        .start()
        .await
        .expect("node a starts");
    let listening = app.listen().await.expect("a binds");
    let a = Served::serve(app, listening, dir);
    let b = Served::start("cluster-b", "name = \"b\"\n", &cluster).await;

    let client = b.client();
    // Until node b has seen node a's instance come up.
    tokio::time::timeout(
        Duration::from_secs(10),
        b.node.registry().until_routable(&"greeter".into(), 1),
    )
    .await
    .expect("node b sees greeter within 10 s");
    let answer = client
        .call("greeter.hello", json!({}))
        .await
        .expect("greeter answers through node b");
    assert_eq!(answer["from"], "a");

    // Both run the cache: each keeps its own, under its own instance id.
    let mut caches: Vec<String> = b
        .node
        .registry()
        .instances_named("cache")
        .iter()
        .map(|r| r.instance().to_string())
        .collect();
    caches.sort();
    assert_eq!(caches, ["cache-1@a", "cache-1@b"]);
    client
        .call("cache.set", json!({"key": "k", "value": "on b"}))
        .await
        .expect("cache.set on b");
    let on_a = a
        .client()
        .call("cache.get", json!({"key": "k"}))
        .await
        .expect("cache.get on a");
    assert_ne!(on_a["value"], json!("on b"), "a's cache is its own: {on_a}");
    assert!(b.node.health().component("cluster").is_some());

    a.stop().await;
    b.stop().await;
    async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap())
        .delete_key_value(format!("plexus_test_app_{id}"))
        .await
        .unwrap();
}

/// Durable topics across nodes from configuration alone: a publish through node
/// `a`'s gateway is kept in `a`'s outbox, relayed into the JetStream stream, and
/// delivered to the bus of every node by its own durable consumer, with its id
/// unchanged; a topic that is not durable stays on `a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_publish_on_one_node_reaches_every_nodes_bus_through_jetstream() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("plexus_test_durable_{id}");
    let extra = format!(
        "[store]\ndurable_topics = [\"orders.>\"]\n[store.relay]\npoll_interval_ms = 50\n\
         [cluster]\nnats_url = \"{}\"\nregistry_bucket = \"plexus_test_app_{id}\"\n\
         call_prefix = \"plexus.test.{id}.call\"\ndurable_topics = [\"orders.>\"]\n\
         durable_stream = \"{stream}\"\ndurable_subject_prefix = \"plexus.test.{id}.durable\"\n",
        nats_url()
    );
    let a = Served::start("durable-a", "name = \"a\"\n", &extra).await;
    let b = Served::start("durable-b", "name = \"b\"\n", &extra).await;
    let subscribe = |node: &Served| {
        node.node
            .bus()
            .subscribe("orders.>", plexus_bus::SubscribeOptions::new())
            .expect("subscribe")
    };
    let (mut on_a, mut on_b) = (subscribe(&a), subscribe(&b));
    let mut local_b = b
        .node
        .bus()
        .subscribe("carts.>", plexus_bus::SubscribeOptions::new())
        .expect("subscribe");

    let kept = a
        .client()
        .call(
            "plexus.publish",
            json!({"topic": "orders.created", "payload": {"order": 7}}),
        )
        .await
        .expect("publish");
    assert!(kept["offset"].is_u64(), "{kept}");
    for (name, sub) in [("a", &mut on_a), ("b", &mut on_b)] {
        let event = tokio::time::timeout(Duration::from_secs(20), sub.recv())
            .await
            .unwrap_or_else(|_| panic!("node {name} gets the durable event"))
            .expect("an event");
        assert_eq!(
            event.id().to_string(),
            kept["id"].as_str().unwrap_or_default()
        );
        assert_eq!(event.topic().as_str(), "orders.created");
    }
    // Replay on node b reads the stream, where node a's events are too. Under a
    // loaded machine b's own `plexus` instance can be marked stale for a moment in
    // the shared registry (a late heartbeat): wait until it is routable again.
    let replayed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            b.node.registry().until_routable(&"plexus".into(), 1).await;
            match b
                .client()
                .call("plexus.replay", json!({"pattern": "orders.>"}))
                .await
            {
                Err(plexus_client::ClientError::Rpc { code: -32006, .. }) => continue,
                other => return other.expect("replay on b"),
            }
        }
    })
    .await
    .expect("replay on b within 20 s");
    let events = replayed["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{replayed}");
    assert_eq!(events[0]["envelope"]["id"], kept["id"], "{replayed}");
    let first = events[0]["offset"].as_u64().expect("a stream sequence");
    let after = b
        .client()
        .call(
            "plexus.replay",
            json!({"pattern": "orders.>", "from_offset": first + 1}),
        )
        .await
        .expect("replay on b");
    assert_eq!(after["events"], json!([]), "{after}");
    let since = b
        .client()
        .call(
            "plexus.replay",
            json!({"pattern": "orders.>", "since_us": 1_000_000}),
        )
        .await
        .expect("replay on b from a time");
    assert_eq!(since["events"][0]["envelope"]["id"], kept["id"], "{since}");

    // Node b's consumer counts what it took; its lag is back to 0.
    let metrics_of_b = format!("http://{}/metrics", b.addr);
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let text = reqwest::get(&metrics_of_b)
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            if text.contains("plexus_cluster_durable_events_total{event=\"acknowledged\"} 1")
                && text.contains("plexus_cluster_durable_lag 0")
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(counted.is_ok(), "node b's durable metrics count the event");
    a.client()
        .call(
            "plexus.publish",
            json!({"topic": "carts.created", "payload": {}}),
        )
        .await
        .expect("publish");
    assert!(
        local_b.try_recv().is_none(),
        "a topic that is not durable (nor bridged) stays on its node"
    );

    a.stop().await;
    b.stop().await;
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    js.delete_stream(&stream).await.unwrap();
    js.delete_key_value(format!("plexus_test_app_{id}"))
        .await
        .unwrap();
}
