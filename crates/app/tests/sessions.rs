//! The Sessions family in a whole node, chosen by configuration alone: in process
//! by default, on Redis with `[sessions] backend = "redis"` and `[redis]`, reached
//! over JSON-RPC like every service; the family attaches the node's bus and starts
//! the sweeper, so an expired session is announced as `session.expired`.

mod support;

use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_client::{Client, ClientError};
use serde_json::{Value, json};
use support::Served;

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Creates a short session over JSON-RPC and waits for its `session.expired` on
/// the node's bus.
async fn expires_and_is_announced(client: &Client, node: &plexus_app::Node) {
    let mut expired = node
        .bus()
        .subscribe("session.expired", SubscribeOptions::new())
        .expect("a subscription");
    let made = client
        .call("session.create", json!({"subject": "ada", "ttl_ms": 200}))
        .await
        .expect("session.create");
    let id = made["id"].as_str().expect("an id").to_owned();
    let got = client
        .call("session.get", json!({"id": id}))
        .await
        .expect("session.get");
    assert_eq!(got["subject"], "ada");
    let event = tokio::time::timeout(Duration::from_secs(10), expired.recv())
        .await
        .expect("session.expired in time")
        .expect("the bus is open");
    let event: Value =
        serde_json::from_slice(&event.payload().encode().expect("json")).expect("a JSON event");
    assert_eq!(
        event,
        json!({"id": id, "subject": "ada", "reason": "expired"})
    );
    match client.call("session.get", json!({"id": id})).await {
        Err(ClientError::Rpc { data, .. }) => {
            let data = data.unwrap_or_default();
            assert_eq!(data["detail"]["kind"], "not_found", "{data}");
        }
        other => panic!("expected not found, got {other:?}"),
    }
    let metrics = node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    assert!(
        metrics.contains("plexus_sessions_expired_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_in_process_by_default() {
    let node = Served::start(
        "sessions-memory",
        "",
        "[sessions]\nsweep_interval_ms = 20\n",
    )
    .await;
    expires_and_is_announced(&node.client(), &node.node).await;
    assert!(node.node.health().component("redis").is_none());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_move_to_redis_by_configuration() {
    let prefix = format!("plexus-test:{}:", uuid::Uuid::new_v4().simple());
    let extra = format!(
        "[sessions]\nbackend = \"redis\"\nsweep_interval_ms = 20\n[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    let node = Served::start("sessions-redis", "", &extra).await;
    expires_and_is_announced(&node.client(), &node.node).await;
    let health = node
        .node
        .health()
        .check_now("redis")
        .await
        .expect("a redis component");
    assert_eq!(health.consecutive_failures, 0, "{health:?}");
    node.stop().await;
}
