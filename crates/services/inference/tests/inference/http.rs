//! `POST /v1/chat/completions` and `GET /v1/models` on the gateway, behind its
//! tokens and scopes, driven by the official `openai` Python package (pinned in
//! tests/clients/requirements.txt; scripts/test installs it).

use std::path::PathBuf;
use std::time::Duration;

use plexus_gateway::{Gateway, GatewayConfig, TokenConfig};
use plexus_inference::testing::{Behaviour, COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, Wire};
use serde_json::{Value, json};

use crate::service::node_with;
use crate::support::*;

fn python() -> String {
    std::env::var("PLEXUS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_package_talks_to_plexus() {
    let (a, broken) = (fake(Wire::Anthropic).await, fake(Wire::OpenAi).await);
    broken.always(Behaviour::DropMidStream);
    let mut c = config(&[&a, &broken], json!({}));
    let chain = c.models.remove("chain").unwrap();
    c.models.insert("chain".into(), chain[..1].to_vec());
    c.models.insert("broken".into(), chain[1..].to_vec());
    let engine = engine(c);
    let node = node_with(engine.clone()).await;
    let gateway = GatewayConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tokens: vec![
            TokenConfig::new(
                "alice",
                "alice-token-0123456789",
                ["call:inference.*", "subscribe:inference.stream.>"],
            ),
            TokenConfig::new("watcher", "watcher-token-0123456789", ["ops"]),
        ],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::builder(node.clone())
        .config(gateway)
        .merge(plexus_inference::http::router(engine.clone()))
        .build()
        .unwrap();
    let listener = gateway.bind().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let run = tokio::process::Command::new(python())
        .arg("openai_client.py")
        .current_dir(dir)
        .env("PLEXUS_BASE_URL", format!("http://{addr}/v1"))
        .env("PLEXUS_TOKEN", "alice-token-0123456789")
        .env("PLEXUS_OPS_TOKEN", "watcher-token-0123456789")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client finished within 120 s")
        .expect("python3 with the openai package must be installed (scripts/test does it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();

    let tokens = json!([PROMPT_TOKENS, COMPLETION_TOKENS]);
    assert_eq!(
        seen.pointer("/answer/content"),
        Some(&json!(REPLY)),
        "{seen}"
    );
    assert_eq!(seen.pointer("/answer/usage"), Some(&tokens));
    assert_eq!(
        seen.pointer("/answer/plexus/deployment"),
        Some(&json!("p0/m0"))
    );
    assert_eq!(seen.pointer("/stream/content"), Some(&json!(REPLY)));
    assert_eq!(seen.pointer("/stream/usage"), Some(&tokens));
    assert_eq!(seen["models"], json!(["broken", "chain", "p0/m0", "p1/m1"]));
    assert_eq!(seen["unknown_model"], 404);
    // The stream that dropped after its first content raised, with that content.
    assert_eq!(
        seen.pointer("/midstream/error"),
        Some(&json!("APIError")),
        "{seen}"
    );
    assert_eq!(seen.pointer("/midstream/text"), Some(&json!("Hello")));
    assert_eq!(seen["forbidden"], 403);
    assert_eq!(seen["unauthenticated"], 401);
    // The budget is charged to the token's name.
    assert!(engine.spent("alice") > 0.0);

    streamed_to_a_websocket_caller(addr).await;

    let _ = stop.send(());
    served.await.unwrap().unwrap();
    node.shutdown(Duration::from_secs(1)).await;
}

/// A WebSocket caller subscribes to a stream topic, calls `inference.chat` with it,
/// and receives the chunks as `plexus.event` notifications, then the whole answer.
async fn streamed_to_a_websocket_caller(addr: std::net::SocketAddr) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let mut upgrade = format!("ws://{addr}/ws").into_client_request().unwrap();
    upgrade.headers_mut().insert(
        "authorization",
        "Bearer alice-token-0123456789".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(upgrade).await.unwrap();
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({"jsonrpc": "2.0", "id": 1, "method": "plexus.subscribe", "params": {"pattern": "inference.stream.ws1"}})))
        .await
        .unwrap();
    let mut params = request("chain");
    params["stream_topic"] = json!("inference.stream.ws1");
    let (mut text, mut events, mut answer) = (String::new(), 0, None);
    let mut subscribed = false;
    while answer.is_none() || text != REPLY {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        let Message::Text(message) = message else {
            continue;
        };
        let message: Value = serde_json::from_str(&message).unwrap();
        if message["id"] == 1 && !subscribed {
            subscribed = true;
            ws.send(send(
                json!({"jsonrpc": "2.0", "id": 2, "method": "inference.chat", "params": params}),
            ))
            .await
            .unwrap();
        } else if message["id"] == 2 {
            answer = Some(message["result"].clone());
        } else if message["method"] == "plexus.event" {
            events += 1;
            let chunk = &message["params"]["payload"];
            text.push_str(
                chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            );
        }
    }
    assert!(events >= 5, "a notification per chunk: {events}");
    let answer = answer.unwrap();
    assert_eq!(
        answer.pointer("/choices/0/message/content"),
        Some(&json!(REPLY)),
        "{answer}"
    );
}
