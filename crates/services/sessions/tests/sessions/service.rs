//! The `session` service on a node: every method through the call path, the
//! typed errors a caller sees, the events on the node's bus, and the metrics in
//! the node's registry.

use std::sync::Arc;

use plexus_bus::SubscribeOptions;
use plexus_core::CallContext;
use plexus_node::{CallError, Node};
use plexus_sessions::{SessionEvent, SessionService, Sessions, SessionsConfig};
use serde_json::{Value, json};

async fn node_with(config: SessionsConfig) -> (Node, Sessions) {
    let sessions = Sessions::in_memory(config);
    let node = Node::builder("session-test")
        .service(Arc::new(SessionService::new(sessions.clone())))
        .start()
        .await
        .unwrap();
    let metrics = sessions.metrics().clone();
    node.metrics().with_registry(|r| metrics.register(r));
    sessions.attach_bus(node.bus().clone());
    (node, sessions)
}

async fn call(node: &Node, method: &str, params: Value) -> Result<Value, CallError> {
    node.call(method, params, CallContext::new()).await
}

fn invalid_field(err: CallError) -> String {
    match err {
        CallError::InvalidParams { field, .. } => field,
        other => panic!("expected invalid params, got {other:?}"),
    }
}

/// The `kind` of a failed call's detail.
fn failed_kind(err: &CallError) -> Value {
    match err {
        CallError::Failed { detail, .. } => detail.clone().unwrap_or_default()["kind"].clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_through_the_call_path() {
    let (node, _sessions) = node_with(SessionsConfig::default()).await;
    let mut events = node
        .bus()
        .subscribe("session.>", SubscribeOptions::new())
        .unwrap();
    let made = call(
        &node,
        "session.create",
        json!({"subject": "ada", "ttl_ms": 60000, "data": {"cart": [1]}}),
    )
    .await
    .unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made.as_object().unwrap().len(), 2, "{made}");
    assert!(made["expires_at_ms"].as_u64().unwrap() > 0);

    let got = call(&node, "session.get", json!({"id": id})).await.unwrap();
    assert_eq!(got["subject"], "ada");
    assert_eq!(got["data"], json!({"cart": [1]}));
    assert_eq!(got["version"], 1);
    let touched = call(&node, "session.touch", json!({"id": id}))
        .await
        .unwrap();
    assert!(touched["expires_at_ms"].as_u64() >= got["expires_at_ms"].as_u64());

    let updated = call(
        &node,
        "session.update",
        json!({"id": id, "data": {"theme": "dark"}, "mode": "merge", "expected_version": 1}),
    )
    .await
    .unwrap();
    assert_eq!(updated["data"], json!({"cart": [1], "theme": "dark"}));
    assert_eq!(updated["version"], 2);
    let err = call(
        &node,
        "session.update",
        json!({"id": id, "data": {}, "expected_version": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(failed_kind(&err), "conflict");

    call(&node, "session.create", json!({"subject": "ada"}))
        .await
        .unwrap();
    let page = call(&node, "session.list", json!({"subject": "ada", "limit": 1}))
        .await
        .unwrap();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);

    let revoked = call(&node, "session.revoke", json!({"id": id}))
        .await
        .unwrap();
    assert_eq!(revoked, json!({"revoked": 1}));
    let envelope = events.recv().await.unwrap();
    assert_eq!(envelope.topic().as_str(), "session.revoked");
    let event = envelope.payload().decode::<SessionEvent>().unwrap();
    assert_eq!(
        (event.id.as_str(), event.reason.as_str()),
        (id.as_str(), "revoked")
    );

    for method in ["session.get", "session.touch", "session.revoke"] {
        let result = call(&node, method, json!({"id": id})).await;
        if method == "session.revoke" {
            assert_eq!(result.unwrap(), json!({"revoked": 0}));
        } else {
            assert_eq!(failed_kind(&result.unwrap_err()), "not_found", "{method}");
        }
    }
    let all = call(&node, "session.revoke", json!({"subject": "ada"}))
        .await
        .unwrap();
    assert_eq!(all, json!({"revoked": 1}));

    let text = node
        .metrics()
        .render(plexus_node::metrics::Format::Prometheus);
    for line in [
        "plexus_sessions_created_total 2",
        "plexus_sessions_revoked_total 2",
        "plexus_sessions_touched_total 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(!text.contains(&id[..8]), "no id in the metrics");
    let descriptor = node.registry().instances(&"session".into())[0]
        .descriptor
        .clone();
    assert_eq!(
        descriptor.method("create").unwrap().params["required"],
        json!(["subject"])
    );
    node.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field() {
    let config = SessionsConfig {
        ttl_ms: 1_000,
        max_ttl_ms: 1_000,
        max_data_bytes: 32,
        max_per_subject: 1,
        on_cap: plexus_sessions::OnCap::Refuse,
        ..SessionsConfig::default()
    };
    let (node, _sessions) = node_with(config).await;
    let id = call(
        &node,
        "session.create",
        json!({"subject": "u", "ttl_ms": 500}),
    )
    .await
    .unwrap()["id"]
        .clone();
    let cases = [
        (
            "session.create",
            json!({"subject": "v", "ttl_ms": 0}),
            "/ttl_ms",
        ),
        (
            "session.create",
            json!({"subject": "v", "ttl_ms": 5000}),
            "/ttl_ms",
        ),
        (
            "session.create",
            json!({"subject": "v", "data": {"x": "y".repeat(64)}}),
            "/data",
        ),
        (
            "session.create",
            json!({"subject": "v", "data": "text"}),
            "/data",
        ),
        ("session.create", json!({"subject": ""}), "/subject"),
        ("session.get", json!({"id": "short"}), "/id"),
        ("session.get", json!({"id": "g".repeat(64)}), "/id"),
        ("session.update", json!({"id": id, "data": [1]}), "/data"),
        ("session.revoke", json!({}), "/id"),
        (
            "session.revoke",
            json!({"id": id, "subject": "u"}),
            "/subject",
        ),
        (
            "session.list",
            json!({"subject": "u", "limit": 100000}),
            "/limit",
        ),
    ];
    for (method, params, field) in cases {
        let err = call(&node, method, params.clone()).await.unwrap_err();
        assert_eq!(invalid_field(err), field, "{method} {params}");
    }
    let err = call(&node, "session.create", json!({"subject": "u"}))
        .await
        .unwrap_err();
    assert_eq!(failed_kind(&err), "cap_reached");
}
