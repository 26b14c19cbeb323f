//! Hedging as a `calls` policy: a slow idempotent call is sent once more, to the
//! other instance, and answered by it; the hedge is counted; the slower attempt
//! still ends by its own limit, so a hung instance's breaker opens; methods that
//! are not idempotent are never hedged; a bad hedge policy is refused by its path.

use std::time::Duration;

use plexus_core::CallContext;
use plexus_node::Node;
use plexus_node::metrics::{Format, sample};
use plexus_node::policy::CallsConfig;
use serde_json::json;

use crate::support::*;

fn hedged(node: &Node, method: &str) -> f64 {
    let text = node.metrics().render(Format::Prometheus);
    sample(
        &text,
        "plexus_calls_hedged_total",
        &[("service", "storage"), ("method", method)],
    )
    .unwrap_or_else(|| panic!("no hedge counter for {method} in:\n{text}"))
}

/// Makes `count` calls of `storage.work` one after the other; how long they took.
async fn timed_calls(node: &Node, count: u64) -> Duration {
    let started = tokio::time::Instant::now();
    for n in 0..count {
        node.call("storage.work", json!({"n": n}), CallContext::new())
            .await
            .unwrap();
    }
    started.elapsed()
}

async fn two_instances(hedge: serde_json::Value) -> (Node, [std::sync::Arc<Module>; 2]) {
    let modules = ["storage-1", "storage-2"].map(|i| Module::new("storage", i));
    let calls: CallsConfig = serde_json::from_value(json!({"default": {"hedge": hedge}})).unwrap();
    let node = Node::builder("hedging")
        .calls(calls)
        .service(modules[0].clone())
        .service(modules[1].clone())
        .start()
        .await
        .unwrap();
    (node, modules)
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_hung_instance_is_answered_by_the_hedged_copy() {
    let (node, [s1, s2]) = two_instances(json!({"delay_ms": 50})).await;
    for n in 0..10 {
        node.call("storage.work", json!({"n": n}), CallContext::new())
            .await
            .unwrap();
    }
    assert_eq!(hedged(&node, "work"), 0.0, "fast calls are not hedged");

    s2.hang(true);
    let mut slowest = Duration::ZERO;
    for n in 0..40 {
        let started = tokio::time::Instant::now();
        let answer = node
            .call("storage.work", json!({"n": n}), CallContext::new())
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(answer["instance"], "storage-1", "{answer}");
    }
    // A call sent to the hung instance first waited the hedge delay, not its
    // attempt limit (5 s / 3 attempts).
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");
    let copies = hedged(&node, "work");
    assert!(copies >= 10.0, "about half the calls were hedged: {copies}");
    assert!(s1.calls() >= 40);

    // The slower attempts were not cancelled: they end at their limit and count as
    // the hung instance's failures, so its breaker opens.
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let state = node
        .breakers()
        .into_iter()
        .find(|(_, i, _)| i.as_str() == "storage-2")
        .map(|(_, _, b)| b.state().as_str());
    assert_eq!(state, Some("open"));
    let before = hedged(&node, "work");
    node.call("storage.work", json!({"n": 1}), CallContext::new())
        .await
        .unwrap();
    assert_eq!(
        hedged(&node, "work"),
        before,
        "an open breaker needs no hedge"
    );
}

#[tokio::test(start_paused = true)]
async fn a_method_that_is_not_idempotent_is_never_hedged() {
    let (node, [_s1, s2]) = two_instances(json!({"delay_ms": 50})).await;
    s2.hang(true);
    let mut timed_out = 0;
    for n in 0..4 {
        if node
            .call("storage.echo", json!({"n": n}), CallContext::new())
            .await
            .is_err()
        {
            timed_out += 1;
        }
    }
    assert_eq!(
        timed_out, 2,
        "the calls sent to the hung instance waited it out"
    );
    let text = node.metrics().render(Format::Prometheus);
    assert_eq!(
        sample(
            &text,
            "plexus_calls_hedged_total",
            &[("service", "storage"), ("method", "echo")]
        ),
        Some(0.0),
        "echo is never hedged"
    );
}

#[tokio::test(start_paused = true)]
async fn the_percentile_hedge_waits_for_enough_calls() {
    let (node, [_s1, s2]) =
        two_instances(json!({"latency_percentile": 90, "min_data_points": 10, "period_ms": 1000}))
            .await;
    timed_calls(&node, 20).await;
    s2.hang(true);
    // The record of the last full period is read: none has ended yet, so a call to
    // the hung instance waits its attempt limit and is retried.
    let took = timed_calls(&node, 2).await;
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(hedged(&node, "work"), 0.0);

    // That period has ended: its percentile is known, and a call to the hung
    // instance is hedged at once.
    let took = timed_calls(&node, 2).await;
    assert!(took < Duration::from_millis(100), "{took:?}");
    assert!(hedged(&node, "work") >= 1.0);
}

#[test]
fn a_bad_hedge_policy_is_refused_by_its_path() {
    let calls: CallsConfig = serde_json::from_value(json!({"services": {"storage": {
        "methods": {"work": {"hedge": {"latency_percentile": 100}}}
    }}}))
    .unwrap();
    let error = calls.validate().unwrap_err();
    assert_eq!(
        error.field,
        "calls.services.storage.methods.work.hedge.latency_percentile"
    );
    let calls: CallsConfig =
        serde_json::from_value(json!({"default": {"hedge": {"delay_ms": 0}}})).unwrap();
    assert_eq!(
        calls.validate().unwrap_err().field,
        "calls.default.hedge.delay_ms"
    );
}
