//! Durable topics on a whole node (`[store] durable_topics`): a publish through the
//! gateway on a durable topic is kept in the outbox first (its answer carries the
//! offset) and reaches subscribers through the relay with its id unchanged; a
//! `datastore.transaction` with `events` writes data and events together or
//! neither; `plexus.replay` reads the log back from an offset or a time, behind
//! the `subscribe:` scope.

mod support;

use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_client::Client;
use serde_json::{Value, json};
use support::Served;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "durable-admin-0123456789abcdef";
const READER: &str = "durable-reader-0123456789abcdef";

const CONFIG: &str = r#"
[store]
durable_topics = ["orders.>"]
[store.relay]
poll_interval_ms = 50
[[gateway.tokens]]
name = "admin"
token = "durable-admin-0123456789abcdef"
scopes = ["admin"]
[[gateway.tokens]]
name = "reader"
token = "durable-reader-0123456789abcdef"
scopes = ["call:datastore.*", "publish:orders.>", "subscribe:orders.paid"]
"#;

fn client(node: &Served, token: &str) -> Client {
    Client::new(&format!("http://{}", node.addr), Some(token.to_owned())).expect("a client")
}

fn offsets(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["offset"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_publishes_are_kept_relayed_and_replayed() {
    let node = Served::start("durable", "", CONFIG).await;
    let mut orders = node
        .node
        .bus()
        .subscribe("orders.>", SubscribeOptions::new())
        .expect("subscribe");
    let rpc = client(&node, TOKEN);

    // A publish through the gateway on a durable topic: kept, then relayed.
    let kept = rpc
        .call(
            "plexus.publish",
            json!({"topic": "orders.created", "payload": {"order": 1}}),
        )
        .await
        .expect("publish");
    let first = kept["offset"].as_u64().expect("an offset");
    let delivered = tokio::time::timeout(WAIT, orders.recv())
        .await
        .expect("the relay delivers it")
        .expect("an event");
    assert_eq!(
        delivered.id().to_string(),
        kept["id"].as_str().unwrap_or_default()
    );
    assert_eq!(delivered.topic().as_str(), "orders.created");

    // Another topic is not durable: straight onto the bus, no offset.
    let direct = rpc
        .call(
            "plexus.publish",
            json!({"topic": "carts.created", "payload": {}}),
        )
        .await
        .expect("publish");
    assert!(direct.get("offset").is_none(), "{direct}");
    assert!(direct["matched"].is_u64(), "{direct}");

    // Data and its event in one transaction.
    rpc.call("datastore.create_collection", json!({"name": "orders"}))
        .await
        .expect("collection");
    let committed = rpc
        .call(
            "datastore.transaction",
            json!({
                "ops": [{"op": "put", "collection": "orders", "id": "o-2", "doc": {"total": 5}}],
                "events": [{"topic": "orders.paid", "payload": {"order": 2}}],
            }),
        )
        .await
        .expect("the transaction commits");
    let paid_offset = committed["events"][0]["offset"]
        .as_u64()
        .expect("an offset");
    assert!(paid_offset > first, "{committed}");
    let paid = tokio::time::timeout(WAIT, orders.recv())
        .await
        .expect("the relay delivers it")
        .expect("an event");
    assert_eq!(paid.topic().as_str(), "orders.paid");
    assert_eq!(
        paid.id().to_string(),
        committed["events"][0]["id"].as_str().unwrap_or_default()
    );

    // A transaction that fails writes neither its data nor its event.
    let refused = rpc
        .call(
            "datastore.transaction",
            json!({
                "ops": [
                    {"op": "put", "collection": "orders", "id": "o-3", "doc": {"total": 7}},
                    {"op": "put", "collection": "orders", "id": "o-2", "doc": {"total": 9}, "mode": "insert"},
                ],
                "events": [{"topic": "orders.paid", "payload": {"order": 3}}],
            }),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let absent = rpc
        .call(
            "datastore.get",
            json!({"collection": "orders", "id": "o-3"}),
        )
        .await
        .expect("get");
    assert_eq!(absent, Value::Null);

    // An event on a topic that is not durable cannot ride a transaction.
    let not_durable = rpc
        .call(
            "datastore.transaction",
            json!({"ops": [], "events": [{"topic": "carts.paid", "payload": {}}]}),
        )
        .await
        .expect_err("refused");
    assert!(not_durable.to_string().contains("durable"), "{not_durable}");

    // Replay: everything from the start, from an offset, and from a time.
    let all = rpc
        .call("plexus.replay", json!({"pattern": "orders.>"}))
        .await
        .expect("replay");
    assert_eq!(offsets(&all), [first, paid_offset], "{all}");
    assert_eq!(
        all["events"][1]["envelope"]["topic"], "orders.paid",
        "{all}"
    );
    let later = rpc
        .call(
            "plexus.replay",
            json!({"pattern": "orders.>", "from_offset": first + 1}),
        )
        .await
        .expect("replay");
    assert_eq!(offsets(&later), [paid_offset]);
    let future = rpc
        .call(
            "plexus.replay",
            json!({"pattern": "orders.>", "since_us": u64::MAX / 2}),
        )
        .await
        .expect("replay");
    assert_eq!(offsets(&future), Vec::<u64>::new());
    let both = rpc
        .call(
            "plexus.replay",
            json!({"pattern": "orders.>", "from_offset": 0, "since_us": 1}),
        )
        .await
        .expect_err("one start only");
    assert!(both.to_string().contains("since_us"), "{both}");

    // Replay reads events: it needs `subscribe:` on the pattern asked for.
    let reader = client(&node, READER);
    let narrow = reader
        .call("plexus.replay", json!({"pattern": "orders.paid"}))
        .await
        .expect("allowed");
    assert_eq!(offsets(&narrow), [paid_offset]);
    let wide = reader
        .call("plexus.replay", json!({"pattern": "orders.>"}))
        .await
        .expect_err("forbidden");
    assert!(wide.to_string().contains("subscribe:orders.>"), "{wide}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_durable_topics_replay_says_how_to_declare_them() {
    let node = Served::start("durable-none", "", "").await;
    let err = node
        .client()
        .call("plexus.replay", json!({"pattern": "orders.>"}))
        .await
        .expect_err("nothing is durable");
    assert!(err.to_string().contains("durable_topics"), "{err}");
    node.stop().await;
}
