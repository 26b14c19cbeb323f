//! The Cache family in a whole node, chosen by configuration alone: on moka by
//! default, on Redis with `[cache] backend = "redis"` and `[redis]`, reached over
//! JSON-RPC like every service, with the `redis` health component and the
//! `plexus_cache_*` metrics.

mod support;

use plexus_client::{Client, ClientError};
use serde_json::{Value, json};
use support::Served;

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Starts a node from `extra` configuration, runs `body` with a client of it, then
/// stops it.
async fn with_node<F, Fut>(name: &str, extra: &str, body: F)
where
    F: FnOnce(Client, plexus_app::Node) -> Fut,
    Fut: Future<Output = ()>,
{
    let node = Served::start(name, "", extra).await;
    body(node.client(), node.node.clone()).await;
    node.stop().await;
}

async fn round_trip(client: &Client) -> Value {
    let set = client
        .call(
            "cache.set",
            json!({"key": "greeting", "value": {"text": "hi"}}),
        )
        .await
        .expect("cache.set");
    assert_eq!(set, json!({"ttl_ms": 300000}));
    let got = client
        .call("cache.get", json!({"key": "greeting"}))
        .await
        .expect("cache.get");
    assert_eq!(got["value"], json!({"text": "hi"}));
    let err = client
        .call("cache.set", json!({"key": "k", "value": 1, "ttl_ms": 0}))
        .await
        .expect_err("a TTL of 0 is refused");
    match err {
        ClientError::Rpc { data, .. } => {
            assert_eq!(data.unwrap_or_default()["field"], "/ttl_ms");
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    client
        .call("cache.stats", json!({}))
        .await
        .expect("cache.stats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_in_process_by_default() {
    with_node("cache-memory", "", |client, node| async move {
        let stats = round_trip(&client).await;
        assert_eq!(stats["backend"], "memory");
        assert!(
            node.health().component("redis").is_none(),
            "no Redis is used"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_moves_to_redis_by_configuration() {
    let prefix = format!("plexus-test:{}:", std::process::id());
    let extra = format!(
        "[cache]\nbackend = \"redis\"\ntwo_tier = true\n[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    with_node("cache-redis", &extra, |client, node| async move {
        let stats = round_trip(&client).await;
        assert_eq!(stats["backend"], "redis+local");
        let health = node
            .health()
            .check_now("redis")
            .await
            .expect("a redis component");
        assert_eq!(health.consecutive_failures, 0, "{health:?}");
        let metrics = node
            .metrics()
            .render(plexus_node::metrics::Format::Prometheus);
        assert!(metrics.contains("plexus_cache_hits_total"), "{metrics}");
        client
            .call("cache.delete", json!({"key": "greeting"}))
            .await
            .expect("cache.delete");
    })
    .await;
}
