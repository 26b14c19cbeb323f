//! A node with an in-process echo service, the MCP router served on an ephemeral
//! loopback port, and a small raw MCP client over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use plexus_core::{
    CallContext, CallResult, MethodDescriptor, Service, ServiceDescriptor, ServiceError,
    ServiceStatus, async_trait,
};
use plexus_mcp::{McpConfig, McpEvent, McpServer};
use plexus_node::Node;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How long any test waits for an event before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A service answering `say` (schema-checked: `{text: string}`) with
/// `{text, caller}`, and `fail`, which always fails.
pub(crate) struct Echo {
    descriptor: ServiceDescriptor,
}

impl Echo {
    pub(crate) fn new(service: &str, instance: &str) -> Arc<Self> {
        let descriptor = ServiceDescriptor::new(service, "demo")
            .with_instance(instance)
            .with_description(format!("the {service} service"))
            .with_method(
                MethodDescriptor::new("say")
                    .with_description("says the text back")
                    .with_params(json!({
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                        "additionalProperties": false
                    }))
                    .with_result(json!({
                        "type": "object",
                        "properties": {"text": {"type": "string"}}
                    })),
            )
            .with_method(MethodDescriptor::new("fail"));
        Arc::new(Self { descriptor })
    }
}

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        match method {
            "say" => Ok(json!({"text": params["text"], "caller": ctx.caller})),
            "fail" => Err(ServiceError::Failed {
                message: "it always fails".into(),
                data: None,
                retryable: false,
            }),
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }
}

/// A node running `echo`, its MCP server, and the router served on loopback.
pub(crate) struct Harness {
    pub(crate) node: Node,
    pub(crate) server: McpServer,
    pub(crate) addr: SocketAddr,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::with_config(McpConfig::default()).await
    }

    pub(crate) async fn with_config(config: McpConfig) -> Self {
        let node = Node::builder("mcp-test")
            .service(Echo::new("echo", "echo-1"))
            .start()
            .await
            .unwrap();
        let server = McpServer::new(node.clone(), config).unwrap();
        let app = axum::Router::new().nest("/mcp", server.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // As a server should: small SSE frames go out at once (no Nagle delay).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            node,
            server,
            addr,
            url: format!("http://{addr}/mcp"),
            http: reqwest::Client::new(),
        }
    }

    /// Registers `service` as a remote instance that accepts calls.
    pub(crate) async fn add_service(&self, service: &str) -> plexus_core::InstanceId {
        let echo = Echo::new(service, &format!("{service}-1"));
        let descriptor = echo.descriptor();
        let instance = descriptor.instance.clone();
        self.node.attach(descriptor, echo).await.unwrap();
        self.node
            .registry()
            .set_status(&instance, ServiceStatus::Healthy, None)
            .await
            .unwrap();
        instance
    }

    /// A POST to the endpoint of a JSON body, accepting JSON or SSE.
    pub(crate) fn json_post(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    /// This harness's node and server, reached at `addr` through `http`.
    pub(crate) fn reached_at(&self, addr: SocketAddr, http: reqwest::Client) -> Self {
        Self {
            node: self.node.clone(),
            server: self.server.clone(),
            addr,
            url: format!("http://{addr}/mcp"),
            http,
        }
    }

    /// POSTs one message with `headers`; the answer's status, headers and the
    /// JSON-RPC messages of its body (JSON, or the `data:` lines of SSE).
    pub(crate) async fn post(&self, headers: &[(&str, &str)], body: Value) -> Reply {
        self.post_raw(headers, body.to_string().into_bytes()).await
    }

    pub(crate) async fn post_raw(&self, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut request = self.json_post().body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .unwrap()
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = tokio::time::timeout(WAIT, response.text())
            .await
            .unwrap()
            .unwrap();
        Reply {
            status,
            headers,
            messages: plexus_mcp::testing::messages(&text),
            text,
        }
    }

    /// Opens a 2025-11-25 session: initialize + initialized. Returns its id.
    pub(crate) async fn session(&self) -> String {
        let reply = self.post(&[], initialize(1, "2025-11-25")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let id = reply
            .headers
            .get("mcp-session-id")
            .expect("initialize returns Mcp-Session-Id")
            .to_str()
            .unwrap()
            .to_owned();
        let ack = self
            .post(
                &session_headers(&id),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(ack.status, 202, "{}", ack.text);
        id
    }

    /// A request in a session; the JSON-RPC response.
    pub(crate) async fn call_in(
        &self,
        session: &str,
        id: u64,
        method: &str,
        params: Value,
    ) -> Reply {
        self.post(
            &session_headers(session),
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await
    }

    /// `tools/call` of `tool` with `{"text": text}` in a session; the reply.
    pub(crate) async fn say(
        &self,
        session: &str,
        id: u64,
        tool: &str,
        text: impl Into<Value>,
    ) -> Reply {
        let arguments = json!({"text": text.into()});
        self.call_in(
            session,
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
        .await
    }

    /// DELETE with `Mcp-Session-Id: session` at protocol `version`.
    pub(crate) async fn delete(&self, session: &str, version: &str) -> reqwest::Response {
        self.http
            .delete(&self.url)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", version)
            .send()
            .await
            .unwrap()
    }

    /// A stateless 2026-07-28 request, with the headers and `_meta` it needs.
    pub(crate) async fn stateless(
        &self,
        id: u64,
        method: &str,
        name: Option<&str>,
        params: Value,
    ) -> Reply {
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ];
        if let Some(name) = name {
            headers.push(("mcp-name", name));
        }
        self.post(&headers, stateless_request(id, method, params))
            .await
    }

    /// Opens a 2026-07-28 `subscriptions/listen` stream for tool-list changes and
    /// waits for its acknowledgement.
    pub(crate) async fn listen(&self, id: u64) -> SseStream {
        let body = stateless_request(
            id,
            "subscriptions/listen",
            json!({"notifications": {"toolsListChanged": true}}),
        );
        let response = self
            .json_post()
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "subscriptions/listen")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let mut stream = SseStream::new(response);
        let ack = stream
            .wait_method("notifications/subscriptions/acknowledged")
            .await;
        assert_eq!(
            ack["params"]["notifications"]["toolsListChanged"], true,
            "{ack}"
        );
        stream
    }

    /// Opens the session's standalone stream (GET).
    pub(crate) async fn open_stream(&self, session: &str) -> SseStream {
        let response = self
            .http
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        SseStream::new(response)
    }

    /// Waits for the first event `pick` accepts.
    pub(crate) async fn wait_for<T>(
        events: &mut broadcast::Receiver<McpEvent>,
        mut pick: impl FnMut(&McpEvent) -> Option<T>,
    ) -> T {
        tokio::time::timeout(WAIT, async {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if let Some(found) = pick(&event) {
                            return found;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
                }
            }
        })
        .await
        .expect("the event came in time")
    }
}

pub(crate) fn session_headers(id: &str) -> Vec<(&str, &str)> {
    vec![
        ("mcp-session-id", id),
        ("mcp-protocol-version", "2025-11-25"),
    ]
}

pub(crate) fn initialize(id: u64, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "plexus-test", "version": "0"}
        }
    })
}

pub(crate) fn stateless_request(id: u64, method: &str, params: Value) -> Value {
    let mut params = match params {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    params.insert(
        "_meta".into(),
        json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "plexus-test", "version": "0"}
        }),
    );
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
    pub(crate) messages: Vec<Value>,
}

impl Reply {
    /// The response (or error) with `id`.
    pub(crate) fn response(&self, id: u64) -> &Value {
        self.messages
            .iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no response {id} in {}", self.text))
    }

    /// The names of the tools in the `tools/list` result with `id`.
    pub(crate) fn tool_names(&self, id: u64) -> Vec<&str> {
        let result = &self.response(id)["result"];
        result["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {result}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect()
    }

    /// The only JSON-RPC error of a plain error answer.
    pub(crate) fn error(&self) -> &Value {
        let first = self
            .messages
            .first()
            .unwrap_or_else(|| panic!("no JSON-RPC body: {}", self.text));
        &first["error"]
    }
}

/// An open SSE response, read message by message.
pub(crate) struct SseStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next JSON-RPC message, or `None` when the stream ends.
    pub(crate) async fn next_message(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if let Ok(message) = serde_json::from_str::<Value>(&data) {
                    return Some(message);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Waits for a message with `method`, skipping others.
    pub(crate) async fn wait_method(&mut self, method: &str) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.next_message().await {
                    Some(m) if m["method"] == method => return m,
                    Some(_) => continue,
                    None => panic!("the stream ended before `{method}`"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{method}` in time"))
    }
}
