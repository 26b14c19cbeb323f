//! The `inference` service through the node's call path: `chat`, `models`, and a
//! stream published on a topic (what a WebSocket caller receives as
//! `plexus.event` notifications).

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_core::CallContext;
use plexus_inference::InferenceService;
use plexus_inference::testing::{REPLY, Wire};
use plexus_node::Node;
use serde_json::{Value, json};

use crate::support::*;

pub async fn node_with(engine: plexus_inference::Inference) -> Node {
    let node = Node::builder("inference-test")
        .service(Arc::new(InferenceService::new(engine.clone())))
        .start()
        .await
        .unwrap();
    engine.attach(&node);
    node
}

#[tokio::test]
async fn chat_and_models_through_the_call_path() {
    let a = fake(Wire::Anthropic).await;
    let node = node_with(engine(config(&[&a], json!({})))).await;
    let answer = node
        .call(
            "inference.chat",
            request("chain"),
            CallContext::new().with_caller("alice"),
        )
        .await
        .unwrap();
    assert_eq!(answer.pointer("/choices/0/message/content").unwrap(), REPLY);
    let models = node
        .call("inference.models", json!({}), CallContext::new())
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chain", "p0/m0"]);
    let err = node
        .call(
            "inference.chat",
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            CallContext::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown model"), "{err}");
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stream_is_published_chunk_by_chunk_and_answered_whole() {
    let a = fake(Wire::Gemini).await;
    let node = node_with(engine(config(&[&a], json!({})))).await;
    let mut events = node
        .bus()
        .subscribe("inference.stream.t1", SubscribeOptions::default())
        .unwrap();
    let mut params = request("chain");
    params["stream_topic"] = json!("inference.stream.t1");
    let answer = node
        .call("inference.chat", params, CallContext::new())
        .await
        .unwrap();
    assert_eq!(answer.pointer("/choices/0/message/content").unwrap(), REPLY);
    assert_eq!(answer.pointer("/usage/completion_tokens"), Some(&json!(5)));
    let mut text = String::new();
    let mut chunks = 0;
    while text != REPLY {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap();
        let chunk = event.payload().decode::<Value>().unwrap();
        chunks += 1;
        text.push_str(
            chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
    }
    assert!(chunks >= 5, "one event per chunk: {chunks}");
    let mut params = request("chain");
    params["stream_topic"] = json!("elsewhere.t1");
    let err = node
        .call("inference.chat", params, CallContext::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stream_topic"), "{err}");
    node.shutdown(Duration::from_secs(1)).await;
}
