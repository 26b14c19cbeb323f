//! Runtime configuration on a live node: a breaker threshold raised without restart,
//! an invalid change refused with the field named, rollback, events for each step.

use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_config::ConfigError;
use plexus_core::CallContext;
use plexus_node::policy::CallsConfig;
use plexus_node::{Node, codes};
use serde_json::json;

use crate::support::*;

/// A breaker over the last 10 calls that opens at 50% failures, with no retries.
fn calls() -> CallsConfig {
    serde_json::from_value(json!({"default": {
        "breaker": {"window": {"kind": "count", "size": 10}, "minimum_calls": 10,
                    "failure_rate_threshold": 50, "wait_in_open_ms": 60000,
                    "max_wait_in_open_ms": 60000},
        "retry": {"max_attempts": 1}
    }}))
    .unwrap()
}

/// Ten calls of which `failures` fail; then one more call: does the breaker let it in?
async fn breaker_opens_after(node: &Node, module: &Module, failures: usize) -> bool {
    for i in 0..10 {
        module.fail(i < failures);
        let _ = node
            .call("flaky.work", json!({"n": i}), CallContext::new())
            .await;
    }
    module.fail(false);
    match node
        .call("flaky.work", json!({"n": 99}), CallContext::new())
        .await
    {
        Err(e) => e.code() == codes::CIRCUIT_OPEN,
        Ok(_) => false,
    }
}

#[tokio::test(start_paused = true)]
async fn a_threshold_changes_on_a_live_node_and_a_bad_one_is_refused() {
    let flaky = Module::new("flaky", "flaky-1");
    let node = Node::builder("config")
        .calls(calls())
        .service(flaky.clone())
        .start()
        .await
        .unwrap();
    let mut events = node
        .bus()
        .subscribe("plexus.config.>", SubscribeOptions::new())
        .unwrap();
    let path = "calls.default.breaker.failure_rate_threshold";
    let start = node.config().current_version();

    // At 50%, six failures in ten open the breaker.
    assert!(breaker_opens_after(&node, &flaky, 6).await);

    // Raised to 80% on the running node: six failures in ten no longer open it.
    let v = node.config().set(path, json!(80), "ops").await.unwrap();
    assert_eq!(v.version, start + 1);
    assert!(!breaker_opens_after(&node, &flaky, 6).await);

    // 150% is refused with the field named; 80% stays in force.
    let refused = node
        .config()
        .set(path, json!(150), "ops")
        .await
        .unwrap_err();
    let ConfigError::Invalid { field, reason, .. } = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(field, path);
    assert!(reason.contains("150"), "{reason}");
    assert_eq!(node.config().current_version(), start + 1);
    assert!(!breaker_opens_after(&node, &flaky, 6).await);

    // Rolling back to the first version restores 50%.
    let back = node.config().rollback(start, "ops").await.unwrap();
    assert_eq!(back.rollback_of, Some(start));
    let restored = node.config().get(path).unwrap().unwrap();
    assert_eq!(restored.as_f64(), Some(50.0));
    assert!(breaker_opens_after(&node, &flaky, 6).await);

    // Each step was announced on the bus.
    // Each step was announced on the bus (a rollback is a change, then its own event).
    let mut topics = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::ZERO, events.recv()).await {
        if e.topic().as_str() == "plexus.config.rejected" {
            let body = String::from_utf8(e.payload().encode().unwrap().to_vec()).unwrap();
            assert!(body.contains(path), "{body}");
        }
        topics.push(e.topic().to_string());
    }
    assert_eq!(
        topics,
        [
            "plexus.config.changed",
            "plexus.config.rejected",
            "plexus.config.changed",
            "plexus.config.rolled_back"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_node_service_answers_about_services_health_and_configuration() {
    let node = Node::builder("admin")
        .calls(calls())
        .service(Module::new("flaky", "flaky-1"))
        .start()
        .await
        .unwrap();
    let ops = || CallContext::new().with_caller("ops");
    let services = node.call("node.services", json!({}), ops()).await.unwrap();
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["descriptor"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["flaky", "node", "plexus"]);
    let health = node.call("node.health", json!({}), ops()).await.unwrap();
    assert!(health["system"]["status"].is_string(), "{health}");

    let path = "calls.default.breaker.failure_rate_threshold";
    let set = node
        .call("node.config_set", json!({"path": path, "value": 70}), ops())
        .await
        .unwrap();
    assert_eq!(set["author"], "ops");
    let got = node
        .call("node.config_get", json!({"path": path}), ops())
        .await
        .unwrap();
    assert_eq!(got.as_f64(), Some(70.0));
    let refused = node
        .call(
            "node.config_set",
            json!({"path": path, "value": 150}),
            ops(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), codes::INVALID_PARAMS);
    assert_eq!(refused.data()["field"], path);
    let history = node
        .call("node.config_history", json!({}), ops())
        .await
        .unwrap();
    let first = history[0]["version"].as_u64().unwrap();
    let back = node
        .call("node.config_rollback", json!({"version": first}), ops())
        .await
        .unwrap();
    assert_eq!(back["rollback_of"], first);
    let bad = node
        .call("node.config_rollback", json!({"version": "one"}), ops())
        .await
        .unwrap_err();
    assert_eq!(bad.code(), codes::INVALID_PARAMS);
}
