//! The Rate Limits family in whole nodes, chosen by configuration alone: two nodes
//! on one Redis with `[limits] backend = "redis"` enforce one limit over JSON-RPC,
//! and a bad rule is refused naming its field.

mod support;

use plexus_client::ClientError;
use serde_json::json;
use support::Served;

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_enforce_one_limit() {
    let prefix = format!("plexus-test:limits:{}:", uuid::Uuid::new_v4().simple());
    let extra = format!(
        "[limits]\nbackend = \"redis\"\n[limits.rules.api]\nlimit = 10\nwindow_ms = 60000\n[redis]\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    let a = Served::start("limits-a", "name = \"a\"\n", &extra).await;
    let b = Served::start("limits-b", "name = \"b\"\n", &extra).await;
    let (ca, cb) = (a.client(), b.client());
    let mut allowed = 0;
    for i in 0..30 {
        let client = if i % 2 == 0 { &ca } else { &cb };
        let d = client
            .call("ratelimit.acquire", json!({"rule": "api", "key": "user:1"}))
            .await
            .expect("ratelimit.acquire");
        allowed += u64::from(d["allowed"] == json!(true));
    }
    assert_eq!(allowed, 10, "one limit across both nodes");
    let rules = cb.call("ratelimit.rules", json!({})).await.unwrap();
    assert_eq!(rules["backend"], "redis");
    let err = ca
        .call(
            "ratelimit.acquire",
            json!({"rule": "api", "key": "k", "cost": 11}),
        )
        .await
        .expect_err("a cost over the limit is refused");
    match err {
        ClientError::Rpc { data, .. } => {
            assert_eq!(data.unwrap_or_default()["field"], "/cost");
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    assert!(b.node.health().component("redis").is_some());
    a.stop().await;
    b.stop().await;
}
