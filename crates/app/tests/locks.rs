//! The Locks family in a whole node, its backend chosen by configuration alone
//! (`[locks] backend = "redis"` with `[redis]`), reached over JSON-RPC: a grant,
//! its status, a release, a stale token refused, and the `plexus_locks_*` metrics.
//! (The PostgreSQL backend opens through the same `PostgresBackend::connect` its
//! conformance suite runs on.)

mod support;

use plexus_client::{Client, ClientError};
use serde_json::json;
use support::Served;

/// A grant, its status, a release, and the same token refused once released.
async fn cycle(client: &Client, name: &str) -> u64 {
    let grant = client
        .call(
            "lock.acquire",
            json!({"name": name, "lease_ms": 30000, "holder": "app-test"}),
        )
        .await
        .expect("lock.acquire");
    let token = grant["token"].as_u64().expect("a token");
    let status = client
        .call("lock.status", json!({"name": name}))
        .await
        .expect("lock.status");
    assert_eq!(
        (status["held"].clone(), status["token"].clone()),
        (json!(true), json!(token))
    );
    client
        .call("lock.release", json!({"name": name, "token": token}))
        .await
        .expect("lock.release");
    match client
        .call("lock.release", json!({"name": name, "token": token}))
        .await
    {
        Err(ClientError::Rpc { data, .. }) => {
            let data = data.unwrap_or_default();
            assert_eq!(data["detail"]["kind"], "not_holder", "{data}");
        }
        other => panic!("a released token was not refused: {other:?}"),
    }
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_move_to_redis_by_configuration() {
    let url = std::env::var("PLEXUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("plexus-test:locks:{}:", std::process::id());
    let extra = format!(
        "[locks]\nbackend = \"redis\"\n[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n"
    );
    on("redis", extra).await;
}

async fn on(backend: &str, extra: String) {
    let node = Served::start(&format!("locks-{backend}"), "", &extra).await;
    let client = node.client();
    let name = format!("app-{backend}-{}", std::process::id());
    let first = cycle(&client, &name).await;
    assert!(cycle(&client, &name).await > first, "tokens increase");
    let metrics = node
        .node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    assert!(metrics.contains("plexus_locks_grants_total 2"), "{metrics}");
    node.stop().await;
}
