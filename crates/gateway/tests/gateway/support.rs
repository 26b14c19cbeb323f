//! What the gateway tests share: a node with the specification's example service, a
//! gateway on an ephemeral loopback port, an HTTP client and a WebSocket client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use plexus_core::{
    CallContext, CallResult, MethodDescriptor, Service, ServiceDescriptor, ServiceError,
    ServiceStatus, async_trait,
};
use plexus_gateway::{Gateway, GatewayConfig, ServeReport};
use plexus_node::Node;
use plexus_registry::RegistryChange;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any test waits for an event before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The methods of the JSON-RPC specification's examples (section 7), under the
/// service `spec`, plus `slow` (waits until released) for shutdown tests.
pub(crate) struct Spec {
    pub(crate) notified: Arc<AtomicU64>,
    pub(crate) release: Arc<Notify>,
    pub(crate) entered: Arc<Notify>,
}

impl Spec {
    pub(crate) fn new() -> Self {
        Self {
            notified: Arc::new(AtomicU64::new(0)),
            release: Arc::new(Notify::new()),
            entered: Arc::new(Notify::new()),
        }
    }
}

fn numbers(params: &Value) -> Result<Vec<i64>, ServiceError> {
    params
        .as_array()
        .ok_or_else(|| ServiceError::invalid_params("", "expected an array of numbers"))?
        .iter()
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| ServiceError::invalid_params("", "expected numbers"))
        })
        .collect()
}

#[async_trait]
impl Service for Spec {
    fn descriptor(&self) -> ServiceDescriptor {
        let mut d = ServiceDescriptor::new("spec", "example").with_instance("spec-1");
        for m in [
            "subtract",
            "sum",
            "notify_hello",
            "update",
            "get_data",
            "slow",
            "caller",
        ] {
            d = d.with_method(MethodDescriptor::new(m));
        }
        d
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        match method {
            "subtract" => match &params {
                Value::Object(o) => {
                    let get = |k: &str| o.get(k).and_then(Value::as_i64);
                    match (get("minuend"), get("subtrahend")) {
                        (Some(a), Some(b)) => Ok(json!(a - b)),
                        _ => Err(ServiceError::invalid_params("", "minuend and subtrahend")),
                    }
                }
                _ => match numbers(&params)?.as_slice() {
                    [a, b] => Ok(json!(a - b)),
                    _ => Err(ServiceError::invalid_params("", "two numbers")),
                },
            },
            "sum" => Ok(json!(numbers(&params)?.iter().sum::<i64>())),
            "notify_hello" | "update" => {
                self.notified.fetch_add(1, Ordering::SeqCst);
                Ok(Value::Null)
            }
            "get_data" => Ok(json!(["hello", 5])),
            "caller" => Ok(json!(ctx.caller)),
            "slow" => {
                self.entered.notify_one();
                self.release.notified().await;
                Ok(json!("done"))
            }
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }
}

/// A node, a gateway serving it, and the means to stop it.
pub(crate) struct Harness {
    pub(crate) node: Node,
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    pub(crate) spec: Arc<SpecHandles>,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) served: Option<JoinHandle<Result<ServeReport, plexus_gateway::GatewayError>>>,
}

/// The spec service's shared state, for assertions.
pub(crate) struct SpecHandles {
    pub(crate) notified: Arc<AtomicU64>,
    pub(crate) release: Arc<Notify>,
    pub(crate) entered: Arc<Notify>,
}

impl Harness {
    /// A gateway with the default configuration on an ephemeral port.
    pub(crate) async fn start() -> Self {
        Self::with(GatewayConfig::default()).await
    }

    /// A gateway with `config` (its `bind` is ignored: port 0 on 127.0.0.1).
    pub(crate) async fn with(config: GatewayConfig) -> Self {
        let spec = Spec::new();
        let handles = Arc::new(SpecHandles {
            notified: spec.notified.clone(),
            release: spec.release.clone(),
            entered: spec.entered.clone(),
        });
        let node = Node::builder("gateway-test")
            .service(Arc::new(spec))
            .start()
            .await
            .unwrap();
        let gateway = Gateway::builder(node.clone())
            .config(config)
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            node,
            addr,
            http: reqwest::Client::new(),
            spec: handles,
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A WebSocket peer of `/ws`, without a token.
    pub(crate) async fn peer(&self) -> Peer {
        connect(&self.ws_url(), None).await.unwrap()
    }

    /// A raw TCP connection to the gateway.
    pub(crate) async fn tcp(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// `POST /rpc` with `body` as JSON text; the status and the parsed body (`Null`
    /// when empty).
    pub(crate) async fn rpc_text(&self, body: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/rpc"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    /// `POST /rpc` with one request; the response object.
    pub(crate) async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let (status, value) = self.rpc_text(&body.to_string(), None).await;
        assert_eq!(status, 200, "{value}");
        value
    }

    /// Tells the gateway to shut down, without waiting.
    pub(crate) fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the gateway gracefully and returns how it went.
    pub(crate) async fn stop(&mut self) -> ServeReport {
        self.signal_stop();
        let served = self.served.take().unwrap();
        tokio::time::timeout(WAIT, served)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    /// Waits until `instance` has `status` in the registry, watching its changes.
    pub(crate) async fn wait_status(&self, instance: &str, status: ServiceStatus) {
        let registry = self.node.registry();
        let mut watch = registry.watch();
        let id = plexus_core::InstanceId::new(instance);
        let reached = || registry.get(&id).is_some_and(|r| r.status == status);
        if reached() {
            return;
        }
        tokio::time::timeout(WAIT, async {
            while watch.next().await.is_some() {
                if reached() {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{instance} did not become {status}; it is {:?}",
                registry.get(&id).map(|r| r.status)
            )
        });
    }

    /// Waits until `instance` leaves the registry.
    pub(crate) async fn wait_gone(&self, instance: &str) {
        let registry = self.node.registry();
        let mut watch = registry.watch();
        let id = plexus_core::InstanceId::new(instance);
        if registry.get(&id).is_none() {
            return;
        }
        tokio::time::timeout(WAIT, async {
            while let Some(change) = watch.next().await {
                if let Ok(RegistryChange::Deregistered { instance, .. }) = change
                    && instance == id
                {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{instance} was not deregistered"));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket peer speaking JSON-RPC.
pub(crate) struct Peer {
    pub(crate) socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Notifications and node→peer requests read while waiting for a response.
    pub(crate) backlog: Vec<Value>,
}

/// Opens `/ws`, with a token when given; the HTTP error status when refused.
pub(crate) async fn connect(url: &str, token: Option<&str>) -> Result<Peer, u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Peer {
            socket,
            next: 1,
            backlog: Vec::new(),
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

impl Peer {
    pub(crate) async fn send(&mut self, value: &Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub(crate) async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next message of any kind, waiting at most [`WAIT`].
    pub(crate) async fn next_message(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.socket.next())
            .await
            .expect("no message within the wait")
            .expect("the socket closed")
            .expect("the socket failed")
    }

    /// The next JSON message, waiting at most [`WAIT`].
    pub(crate) async fn next(&mut self) -> Value {
        loop {
            match self.next_message().await {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The close frame the node sends, waiting at most [`WAIT`].
    pub(crate) async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("no close within the wait");
            match message {
                None => return None,
                Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a request and returns its response, keeping whatever else arrives.
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let message = self.next().await;
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message;
            }
            self.backlog.push(message);
        }
    }

    /// The result of a request, failing the test on an error response.
    pub(crate) async fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// The next notification of `method`, from the backlog first.
    pub(crate) async fn notification(&mut self, method: &str) -> Value {
        if let Some(at) = self
            .backlog
            .iter()
            .position(|m| m.get("method") == Some(&json!(method)))
        {
            return self.backlog.remove(at);
        }
        loop {
            let message = self.next().await;
            if message.get("method") == Some(&json!(method)) {
                return message;
            }
            self.backlog.push(message);
        }
    }
}

/// The code of a JSON-RPC error response.
pub(crate) fn code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}

/// A descriptor of an external test service `name` with instance `instance`.
pub(crate) fn descriptor(name: &str, instance: &str, methods: &[&str]) -> Value {
    json!({
        "name": name,
        "service_type": "external",
        "instance": instance,
        "methods": methods
            .iter()
            .map(|m| json!({"name": m, "idempotent": true}))
            .collect::<Vec<_>>(),
    })
}
