//! The `ratelimit` service on a node: every method through the call path, errors
//! naming the field, and the metrics in the node's registry.

use std::sync::Arc;

use plexus_core::CallContext;
use plexus_limits::conformance::with_rules;
use plexus_limits::{Limiter, LimitsService, RuleConfig};
use plexus_node::{CallError, Node};
use serde_json::{Value, json};

async fn node() -> Node {
    let config = with_rules(&[
        ("api", RuleConfig::sliding_window(3, 60_000)),
        ("burst", RuleConfig::gcra(10, 1_000, 5)),
    ]);
    let service = LimitsService::new(Limiter::in_memory(config));
    let metrics = service.limiter().metrics().clone();
    let node = Node::builder("limits-test")
        .service(Arc::new(service))
        .start()
        .await
        .unwrap();
    node.metrics().with_registry(|r| metrics.register(r));
    node
}

async fn call(node: &Node, method: &str, params: Value) -> Result<Value, CallError> {
    node.call(method, params, CallContext::new()).await
}

/// The answer of `ratelimit.{method}`, which must succeed.
async fn ok(node: &Node, method: &str, params: Value) -> Value {
    call(node, &format!("ratelimit.{method}"), params)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_the_call_path() {
    let node = node().await;
    let d = ok(&node, "check", json!({"rule": "api", "key": "u1"})).await;
    assert_eq!(
        d,
        json!({"allowed": true, "remaining": 3, "retry_after_ms": 0, "reset_after_ms": 0, "limit": 3})
    );
    let d = ok(
        &node,
        "acquire",
        json!({"rule": "api", "key": "u1", "cost": 2}),
    )
    .await;
    assert_eq!(
        (d["allowed"].clone(), d["remaining"].clone()),
        (json!(true), json!(1))
    );
    let d = ok(
        &node,
        "acquire",
        json!({"rule": "api", "key": "u1", "cost": 2}),
    )
    .await;
    assert_eq!(d["allowed"], json!(false), "a refusal is an answer: {d}");
    assert!(d["retry_after_ms"].as_u64().unwrap() > 0, "{d}");

    let rules = ok(&node, "rules", json!({})).await;
    assert_eq!(rules["backend"], "memory");
    assert_eq!(
        rules["rules"]["burst"],
        json!({"algorithm": "gcra", "limit": 10, "window_ms": 1000, "burst": 5})
    );
    let reset = ok(&node, "reset", json!({"rule": "api", "key": "u1"})).await;
    assert_eq!(reset, json!({"reset": true}));
    let d = ok(
        &node,
        "check",
        json!({"rule": "api", "key": "u1", "cost": 3}),
    )
    .await;
    assert_eq!(d["allowed"], json!(true));

    let text = node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    assert!(
        text.contains(
            "plexus_limits_decisions_total{rule=\"api\",op=\"acquire\",outcome=\"limited\"} 1"
        ),
        "{text}"
    );
    let descriptor = node.registry().instances(&"ratelimit".into())[0]
        .descriptor
        .clone();
    let acquire = descriptor.method("acquire").unwrap();
    assert_eq!(acquire.params["required"], json!(["rule", "key"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field() {
    let node = node().await;
    let long = "k".repeat(300);
    // (method, rule, key, cost, the field named)
    let cases = [
        ("acquire", "api", "", None, "/key"),
        ("acquire", "api", long.as_str(), None, "/key"),
        ("acquire", "api", "k", Some(0), "/cost"),
        ("check", "nope", "k", None, "/rule"),
        ("check", "Bad", "k", None, "/rule"),
        ("acquire", "api", "k", Some(4), "/cost"),
        ("acquire", "burst", "k", Some(6), "/cost"),
        ("reset", "nope", "k", None, "/rule"),
    ];
    let mut calls: Vec<(String, Value, &str)> = cases
        .into_iter()
        .map(|(method, rule, key, cost, field)| {
            let mut params = json!({"rule": rule, "key": key});
            if let Some(cost) = cost {
                params["cost"] = json!(cost);
            }
            (format!("ratelimit.{method}"), params, field)
        })
        .collect();
    calls.push(("ratelimit.acquire".into(), json!({"key": "k"}), "/rule"));
    for (method, params, field) in calls {
        let err = call(&node, &method, params.clone()).await.unwrap_err();
        match err {
            CallError::InvalidParams {
                field: got, reason, ..
            } => {
                assert_eq!(got, field, "{method} {params}: {reason}");
                if params.get("cost").is_some_and(|c| c.as_u64() > Some(3)) {
                    assert!(reason.contains("can never be allowed"), "{reason}");
                }
            }
            other => panic!("{method} {params}: expected invalid params, got {other:?}"),
        }
    }
}
