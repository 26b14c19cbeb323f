//! The call tap: every call as it ends, with its caller, correlation id and outcome;
//! a listener that falls behind is told how many calls it lost, and the node never
//! waits for it.

use plexus_core::{CallContext, CorrelationId};
use plexus_node::TapRecv;
use plexus_node::tap::TAP_CAPACITY;
use serde_json::json;

use crate::support::{Module, start, work};

#[tokio::test]
async fn each_ended_call_reaches_the_tap_with_its_correlation_id_and_outcome() {
    let storage = Module::new("storage", "storage-1");
    let node = start(plexus_node::Node::builder("tap"), &[&storage]).await;
    let mut tap = node.tap_calls();
    let id = CorrelationId::new();
    let ctx = CallContext::new()
        .with_correlation_id(id)
        .with_caller("alice");
    node.call("storage.work", json!({"n": 1}), ctx)
        .await
        .unwrap();
    storage.fail(true);
    assert!(work(&node, 2).await.is_err());
    assert!(
        node.call("nowhere.at_all", json!({}), CallContext::new())
            .await
            .is_err()
    );

    let mut seen = Vec::new();
    for _ in 0..3 {
        match tap.try_recv() {
            Some(TapRecv::Call(call)) => seen.push(call),
            other => panic!("expected a call, got {other:?}"),
        }
    }
    assert!(tap.try_recv().is_none());
    assert_eq!(seen[0].method, "storage.work");
    assert_eq!(seen[0].correlation_id, id);
    assert_eq!(seen[0].caller.as_deref(), Some("alice"));
    assert_eq!(seen[0].outcome, "ok");
    assert_ne!(seen[1].outcome, "ok");
    assert_eq!(seen[2].outcome, "method_not_found");
}

#[tokio::test]
async fn a_listener_that_falls_behind_learns_what_it_lost() {
    let storage = Module::new("storage", "storage-1");
    let node = start(plexus_node::Node::builder("tap-lag"), &[&storage]).await;
    let mut slow = node.tap_calls();
    let extra = 10;
    for n in 0..(TAP_CAPACITY as u64 + extra) {
        work(&node, n).await.unwrap();
    }
    match slow.try_recv() {
        Some(TapRecv::Lagged(lost)) => assert_eq!(lost, extra),
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(matches!(slow.try_recv(), Some(TapRecv::Call(_))));
    // Calls made with no listener are not kept for a later one.
    drop(slow);
    work(&node, 1).await.unwrap();
    let mut late = node.tap_calls();
    assert!(late.try_recv().is_none());
}
