//! The embedding example, run as a test: a node started from the library alone
//! answers its own service and the built-in ones over JSON-RPC, then stops.

#[path = "../examples/embed.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod embed;

mod support;

use serde_json::json;
use support::{Served, config, data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_node_serves_its_own_and_the_built_in_services() {
    let dir = data_dir("embed");
    let toml = config(&dir, "name = \"embedded\"\n", "");
    let (app, listening) = embed::start(&toml).await.expect("the node starts");
    let node = Served::serve(app, listening, dir);

    let client = node.client();
    let hello = client
        .call("greeter.hello", json!({"name": "embedder"}))
        .await
        .expect("greeter.hello answers");
    assert_eq!(hello, json!({"greeting": "hello, embedder"}));
    let refused = client.call("greeter.hello", json!({"name": ""})).await;
    assert!(
        refused.is_err(),
        "the schema refuses an empty name: {refused:?}"
    );
    client
        .call("datastore.create_collection", json!({"name": "notes"}))
        .await
        .expect("the DataStore family is there");
    let services = client
        .call("node.services", json!({}))
        .await
        .expect("node.services");
    let names = services.to_string();
    for name in ["greeter", "datastore", "audit", "node"] {
        assert!(
            names.contains(&format!("\"{name}\"")),
            "{name} missing: {names}"
        );
    }

    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_in_force_is_readable_with_its_defaults() {
    let dir = data_dir("effective");
    let toml = config(
        &dir,
        "",
        "[calls.default]\ntimeout_ms = 2500\n[registry]\nheartbeat_ttl_ms = 3000\n",
    );
    let (app, listening) = embed::start(&toml).await.expect("the node starts");
    let node = Served::serve(app, listening, dir);
    let client = node.client();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            client
                .call("node.config_get", json!({"path": path}))
                .await
                .expect("node.config_get")
        }
    };
    // What the file sets wins; what it does not set shows its default.
    let calls = get("calls").await;
    assert_eq!(calls["default"]["timeout_ms"], 2500, "{calls}");
    assert_eq!(calls["default"]["retry"]["max_attempts"], 3, "{calls}");
    assert_eq!(calls["default"]["breaker"]["minimum_calls"], 20, "{calls}");
    assert_eq!(get("node.drain_ms").await, 5000);
    assert_eq!(get("gateway.max_batch").await, 100);
    let store = get("store.url").await;
    assert!(
        store.as_str().is_some_and(|u| u.starts_with("sqlite://")),
        "{store}"
    );
    assert!(get("mcp").await.is_object());
    assert_eq!(get("health.default.interval_ms").await, 10000);
    assert_eq!(get("health.default.failure_threshold").await, 3);
    assert_eq!(get("registry.heartbeat_ttl_ms").await, 3000);
    assert_eq!(get("registry.deregister_after_ms").await, 60000);

    node.stop().await;
}

#[tokio::test]
async fn registry_settings_out_of_range_are_refused_naming_the_key() {
    let dir = data_dir("registry-bad");
    for (bad, key) in [
        ("heartbeat_ttl_ms = 0", "heartbeat_ttl_ms"),
        ("sweep_interval_ms = 1", "sweep_interval_ms"),
        ("max_instances = 0", "max_instances"),
    ] {
        let toml = config(&dir, "", &format!("[registry]\n{bad}\n"));
        let Err(error) = embed::start(&toml).await else {
            panic!("{bad} was accepted");
        };
        // The whole chain, as the binary prints it.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(text.contains(key), "{bad}: {text}");
    }
}
