//! Breaker state where people look: `node.services` shows each instance's breaker
//! (`{state, failure_rate, next_trial_ms}`, null before any call reached it), and
//! `node.health` shows the same on each component bound to an instance.

use std::time::Duration;

use plexus_core::CallContext;
use plexus_node::Node;
use serde_json::{Value, json};

use crate::support::*;

/// The entry of `list` whose value at `pointer` is `instance`.
fn entry<'a>(list: &'a Value, pointer: &str, instance: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e.pointer(pointer) == Some(&json!(instance)))
        .unwrap_or_else(|| panic!("{instance} not in {list}"))
}

async fn node_call(node: &Node, method: &str) -> Value {
    node.call(method, json!({}), CallContext::new())
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn node_services_and_node_health_show_each_instance_breaker() {
    let storage = Module::new("storage", "storage-1");
    let idle = Module::new("idle", "idle-1");
    let node = start(
        Node::builder("breakers").calls(breakers_of_four()),
        &[&storage, &idle],
    )
    .await;

    // Closed after a success: its rate is not known until the window holds 4 calls.
    node.call("storage.work", json!({"n": 0}), CallContext::new())
        .await
        .unwrap();
    let services = node_call(&node, "node.services").await;
    let breaker = &entry(&services, "/descriptor/instance", "storage-1")["breaker"];
    assert_eq!(
        breaker,
        &json!({"state": "closed", "failure_rate": null, "next_trial_ms": null})
    );
    // No call has reached `idle` yet: no breaker.
    assert_eq!(
        entry(&services, "/descriptor/instance", "idle-1")["breaker"],
        Value::Null
    );

    // Three failures fill its window of 4 (one success, 75% failed) and open it
    // for 30 s.
    storage.fail(true);
    for n in 0..3 {
        let _ = node
            .call("storage.work", json!({"n": n}), CallContext::new())
            .await;
    }
    let services = node_call(&node, "node.services").await;
    let breaker = &entry(&services, "/descriptor/instance", "storage-1")["breaker"];
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert_eq!(breaker["failure_rate"], json!(75.0), "{breaker}");
    assert_eq!(breaker["next_trial_ms"], json!(30_000), "{breaker}");

    // node.health: the instance's component carries the same view, counting down.
    tokio::time::advance(Duration::from_secs(10)).await;
    let health = node_call(&node, "node.health").await;
    let components = &health["components"];
    let breaker = &entry(components, "/instance", "storage-1")["breaker"];
    assert_eq!(breaker["state"], "open", "{breaker}");
    assert_eq!(breaker["failure_rate"], json!(75.0), "{breaker}");
    assert_eq!(breaker["next_trial_ms"], json!(20_000), "{breaker}");
    assert_eq!(
        entry(components, "/instance", "idle-1")["breaker"],
        Value::Null
    );
}
