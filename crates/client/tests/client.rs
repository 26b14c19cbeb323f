//! The client against a real node behind a real gateway on a loopback port.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use plexus_client::{Client, ClientConfig, ClientError, Priority};
use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use plexus_gateway::{Gateway, GatewayConfig, TokenConfig};
use plexus_node::Node;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any test waits for something before it fails.
const WAIT: Duration = Duration::from_secs(10);

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

/// `echo.say {text}` → `{said: text}`; `echo.fail` fails with data.
struct Echo;

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("echo", "example")
            .with_instance("echo-1")
            .with_method(MethodDescriptor::new("say").with_params(json!({
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            })))
            .with_method(MethodDescriptor::new("fail"))
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        _: CallContext,
    ) -> Result<Value, ServiceError> {
        match method {
            "say" => Ok(json!({"said": params["text"]})),
            _ => Err(ServiceError::failed("echo was told to fail")),
        }
    }
}

struct Running {
    url: String,
    node: Node,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.served)
            .await
            .unwrap()
            .unwrap();
        self.node.shutdown(Duration::from_secs(1)).await;
    }
}

async fn serve(tokens: Vec<TokenConfig>) -> Running {
    let node = Node::builder("client-test")
        .service(std::sync::Arc::new(Echo))
        .start()
        .await
        .unwrap();
    let gateway = Gateway::builder(node.clone())
        .config(GatewayConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens,
            shutdown_timeout_ms: 2_000,
            ..GatewayConfig::default()
        })
        .build()
        .unwrap();
    let listener = gateway.bind().await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        gateway
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        url,
        node,
        stop: Some(stop),
        served,
    }
}

/// A loopback address nothing listens on.
async fn nothing_listening() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn calls_return_results_and_keep_the_nodes_errors_intact() {
    let node = serve(Vec::new()).await;
    let client = Client::new(&node.url, None).unwrap();

    let said = client
        .call("echo.say", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(said, json!({"said": "hi"}));

    // Params refused by the method's schema: -32602, with the node's data.
    match client
        .call("echo.say", json!({"text": 5}))
        .await
        .unwrap_err()
    {
        ClientError::Rpc {
            code,
            message,
            data,
        } => {
            assert_eq!(code, -32602, "{message}");
            let data = data.unwrap();
            assert!(data.to_string().contains("text"), "{data}");
        }
        other => panic!("{other}"),
    }
    // The service's own failure: -32000 and its message.
    match client.call("echo.fail", Value::Null).await.unwrap_err() {
        ClientError::Rpc { code, message, .. } => {
            assert_eq!(code, -32000);
            assert!(message.contains("echo was told to fail"), "{message}");
        }
        other => panic!("{other}"),
    }
    // An unknown method: -32601 with the node's hint.
    let err = client.call("nosuch.method", json!({})).await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32601), "{err}");
    assert!(err.to_string().contains("nosuch"), "{err}");
    node.stop().await;
}

#[tokio::test]
async fn the_node_service_answers_services_health_and_config() {
    let node = serve(Vec::new()).await;
    let client = Client::new(&node.url, None).unwrap();

    let services = client.services().await.unwrap();
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["descriptor"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"node"),
        "{names:?}"
    );

    let health = client.node_health().await.unwrap();
    assert!(health["system"]["status"].is_string(), "{health}");
    let ops = client.health().await.unwrap();
    assert!(
        ops["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["component"].as_str().unwrap().contains("echo")),
        "{ops}"
    );
    client.livez().await.unwrap();
    assert!(client.ready().await.unwrap());

    let v1 = client
        .config_history()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    let set = client
        .config_set("calls.default.timeout_ms", json!(1234))
        .await
        .unwrap();
    let version = set["version"].as_u64().unwrap();
    assert_eq!(
        client
            .config_get(Some("calls.default.timeout_ms"))
            .await
            .unwrap(),
        json!(1234)
    );
    // An invalid policy is refused naming the field, and the value stays.
    let refused = client
        .config_set("calls.default.timeout_ms", json!(0))
        .await
        .unwrap_err();
    assert_eq!(refused.rpc_code(), Some(-32602), "{refused}");
    assert!(refused.to_string().contains("timeout_ms"), "{refused}");
    let rolled = client.config_rollback(version - 1).await.unwrap();
    assert_eq!(rolled["rollback_of"], json!(version - 1));
    // Rolled back to before the set: the default in force again (issue 14: the
    // effective value, defaults included, not null).
    assert_eq!(
        client
            .config_get(Some("calls.default.timeout_ms"))
            .await
            .unwrap(),
        json!(5000)
    );
    let history = client.config_history().await.unwrap();
    assert_eq!(history.as_array().unwrap().len(), v1 + 2, "{history}");
    node.stop().await;
}

#[tokio::test]
async fn published_events_reach_a_subscription_and_shutdown_ends_it() {
    let node = serve(Vec::new()).await;
    let client = Client::new(&node.url, None).unwrap();
    let mut orders = client.subscribe("orders.>").await.unwrap();
    assert!(orders.id().starts_with('s'), "{}", orders.id());

    let published = client
        .publish("orders.created", json!({"id": 7}), Priority::High)
        .await
        .unwrap();
    assert_eq!(published.matched, 1);
    // Not matching the pattern: never delivered.
    client
        .publish("invoices.created", json!({"id": 8}), Priority::Normal)
        .await
        .unwrap();
    client
        .publish("orders.paid", json!("done"), Priority::Low)
        .await
        .unwrap();

    let first = tokio::time::timeout(WAIT, orders.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.topic, "orders.created");
    assert_eq!(first.id, published.id);
    assert_eq!(first.payload, json!({"id": 7}));
    assert_eq!(first.priority, Priority::High);
    assert_eq!(first.payload_encoding, "json");
    let second = tokio::time::timeout(WAIT, orders.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.topic.as_str(), &second.payload),
        ("orders.paid", &json!("done"))
    );

    // A pattern the bus refuses: the node's error, before any event.
    let bad = client.subscribe("orders..x").await.unwrap_err();
    assert_eq!(bad.rpc_code(), Some(-32602), "{bad}");

    // The gateway shutting down closes the socket: the stream says so, then ends.
    node.stop().await;
    let end = tokio::time::timeout(WAIT, orders.next()).await.unwrap();
    assert!(
        matches!(end, Some(Err(ClientError::Closed { .. }))),
        "{end:?}"
    );
    assert!(
        tokio::time::timeout(WAIT, orders.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn no_node_is_told_apart_and_says_how_to_start_one() {
    let url = nothing_listening().await;
    let client = Client::new(&url, None).unwrap();
    let err = client.call("node.services", json!({})).await.unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().contains("plexus serve"), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    let err = client.subscribe("a.>").await.unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(client.livez().await.unwrap_err().is_not_running());
}

#[tokio::test]
async fn tokens_are_sent_and_a_refusal_says_to_set_plexus_token() {
    let node = serve(vec![
        TokenConfig::new("admin", ADMIN, ["admin"]),
        TokenConfig::new("reader", READER, ["call:node.services"]),
    ])
    .await;
    for token in [None, Some("wrong-token-0123456789".to_owned())] {
        let client = Client::new(&node.url, token).unwrap();
        let err = client.call("node.services", json!({})).await.unwrap_err();
        assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
        assert!(err.to_string().contains("PLEXUS_TOKEN"), "{err}");
        let err = client.subscribe("a.>").await.unwrap_err();
        assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
        // /livez needs no token.
        client.livez().await.unwrap();
    }
    let admin = Client::new(&node.url, Some(ADMIN.to_owned())).unwrap();
    admin.call("node.services", json!({})).await.unwrap();
    admin.health().await.unwrap();
    let mut events = admin.subscribe("a.>").await.unwrap();
    admin
        .publish("a.b", json!(1), Priority::Normal)
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.payload, json!(1));

    // A valid token without the scope: the node's -32002, not Unauthorized.
    let reader = Client::new(&node.url, Some(READER.to_owned())).unwrap();
    reader.call("node.services", json!({})).await.unwrap();
    let err = reader
        .call("echo.say", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32002), "{err}");
    let err = reader.health().await.unwrap_err();
    assert_eq!(err.rpc_code(), Some(-32002), "{err}");
    drop(events);
    node.stop().await;
}

#[tokio::test]
async fn an_answer_over_the_bound_is_refused() {
    let node = serve(Vec::new()).await;
    let client = Client::with_config(
        &node.url,
        None,
        ClientConfig {
            max_response_bytes: 64,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let err = client.services().await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge { limit: 64 }), "{err}");
    // A small answer passes the same bound.
    assert_eq!(
        client.call("echo.say", json!({"text": "x"})).await.unwrap(),
        json!({"said": "x"})
    );
    node.stop().await;
}
