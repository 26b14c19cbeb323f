//! [`Client`]: JSON-RPC calls over `POST /rpc`, publishing, the operations endpoints,
//! and the node's own `node.*` methods.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plexus_core::Priority;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ClientError, UNAUTHORIZED_CODE};
use crate::subscribe::{self, Subscription};

/// The address a client uses when none is given: a node started by `plexus serve`
/// with the default configuration (`plexus_gateway::DEFAULT_PORT`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:7700";

/// How a [`Client`] behaves. Every bound it keeps is here, with its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long one request may take, connecting included (default 30 s).
    pub timeout: Duration,
    /// How long connecting may take (default 5 s).
    pub connect_timeout: Duration,
    /// The largest HTTP answer read, in bytes (default 16 MiB); a larger one is
    /// [`ClientError::TooLarge`].
    pub max_response_bytes: usize,
    /// The largest WebSocket message a subscription accepts, in bytes (default
    /// 16 MiB); a larger one ends the subscription with an error.
    pub max_ws_message_bytes: usize,
    /// How many events a subscription holds that arrived before the node confirmed
    /// it (default 1024); more end the subscription with an error.
    pub max_early_events: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 16 << 20,
            max_ws_message_bytes: 16 << 20,
            max_early_events: 1024,
        }
    }
}

/// What a node did with a published event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The event's id (a UUID v7).
    pub id: String,
    /// How many subscriptions matched its topic.
    pub matched: u64,
    /// How many of those queued it.
    pub enqueued: u64,
}

/// A client of one running node. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    /// The node's address as given, for messages.
    pub(crate) url: String,
    /// The base the endpoints are joined to (its path ends with `/`).
    base: Url,
    pub(crate) token: Option<String>,
    pub(crate) config: ClientConfig,
    next_id: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the node at `url` (`http://127.0.0.1:7700`; a path prefix is
    /// kept), sending `token` as a bearer token when one is given.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_config(url, token, ClientConfig::default())
    }

    /// [`Client::new`] with `config` instead of the defaults.
    pub fn with_config(
        url: &str,
        token: Option<String>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let base = parse_base(url)?;
        let printable = |t: &String| HeaderValue::from_str(&format!("Bearer {t}")).is_ok();
        if token.as_ref().is_some_and(|t| !printable(t)) {
            return Err(ClientError::InvalidArgument {
                argument: "token".to_owned(),
                reason: "must be printable ASCII".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|source| ClientError::Http {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                url: url.trim_end_matches('/').to_owned(),
                base,
                token: token.filter(|t| !t.is_empty()),
                config,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The node's address.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The URL of `endpoint` (`rpc`, `ws`, `health`) under the node's address.
    pub(crate) fn endpoint(&self, endpoint: &str) -> Url {
        // `base` has a path ending with `/` and `endpoint` is a plain relative name,
        // so joining cannot fail; fall back to the base rather than panic.
        self.inner
            .base
            .join(endpoint)
            .unwrap_or_else(|_| self.inner.base.clone())
    }

    fn request(&self, method: reqwest::Method, endpoint: &str) -> reqwest::RequestBuilder {
        let builder = self.inner.http.request(method, self.endpoint(endpoint));
        match &self.inner.token {
            Some(token) => builder.header(AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        }
    }

    /// Calls `method` (`service.method`) with `params` through the node's call path
    /// (JSON-RPC 2.0 over `POST /rpc`) and returns its result.
    ///
    /// A JSON-RPC error comes back as [`ClientError::Rpc`] with the node's code,
    /// message and data untouched; a refused token as
    /// [`ClientError::Unauthorized`]; no node at the address as
    /// [`ClientError::NotRunning`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            body["params"] = params;
        }
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::InvalidArgument {
            argument: "params".to_owned(),
            reason: e.to_string(),
        })?;
        let response = self
            .request(reqwest::Method::POST, "rpc")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        let bytes = self.read_body(response).await?;
        let answer: Value = match serde_json::from_slice(&bytes) {
            Ok(answer) => answer,
            Err(e) => return Err(self.unexpected(status, &bytes, e.to_string())),
        };
        if let Some(error) = answer.get("error") {
            return Err(self.rpc_error(error));
        }
        if !status.is_success() {
            return Err(self.unexpected(status, &bytes, String::new()));
        }
        if answer.get("id") != Some(&json!(id)) {
            return Err(ClientError::Protocol {
                reason: format!(
                    "the answer's id is {}, the request's {id}",
                    answer.get("id").unwrap_or(&Value::Null)
                ),
            });
        }
        match answer {
            Value::Object(mut map) => map.remove("result").ok_or_else(|| ClientError::Protocol {
                reason: "the answer has neither `result` nor `error`".to_owned(),
            }),
            other => Err(ClientError::Protocol {
                reason: format!(
                    "the answer is not an object: {}",
                    snippet(other.to_string().as_bytes())
                ),
            }),
        }
    }

    /// Publishes an event on `topic` with a JSON `payload` (`plexus.publish`).
    pub async fn publish(
        &self,
        topic: &str,
        payload: Value,
        priority: Priority,
    ) -> Result<Published, ClientError> {
        let result = self
            .call(
                "plexus.publish",
                json!({"topic": topic, "payload": payload, "priority": priority}),
            )
            .await?;
        serde_json::from_value(result).map_err(|e| ClientError::Protocol {
            reason: format!("plexus.publish answered an unexpected result: {e}"),
        })
    }

    /// Subscribes to `pattern` (`orders.*`, `orders.>`) over a WebSocket of its
    /// own (`GET /ws`, `plexus.subscribe`). The subscription is confirmed when this
    /// returns; its events then come as a [`futures::Stream`]. Dropping it closes
    /// the socket.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, ClientError> {
        subscribe::open(self, pattern).await
    }

    /// The system's health from `GET /health`: the node's `SystemHealth` as JSON
    /// (`{status, components: [{component, kind, criticality, status, verdict,
    /// reason}], at}`). A Critical system answers HTTP 503, which is returned as
    /// health like any other. Needs the `ops` scope when auth is on.
    pub async fn health(&self) -> Result<Value, ClientError> {
        let response = self
            .request(reqwest::Method::GET, "health")
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        let bytes = self.read_body(response).await?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.unexpected(status, &bytes, e.to_string()))?;
        if let Some(error) = body.get("error") {
            return Err(self.rpc_error(error));
        }
        if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE {
            Ok(body)
        } else {
            Err(self.unexpected(status, &bytes, String::new()))
        }
    }

    /// Every service instance (status, breaker) and every method's calls, errors
    /// and p99 since the node started, from `GET /ui/api/services` (the
    /// dashboard's view; `plexus top` reads it): `{at_ms, instances: [...],
    /// methods: [{service, method, calls, errors, p99_ms}]}`. Needs the `ops`
    /// scope when auth is on.
    pub async fn service_stats(&self) -> Result<Value, ClientError> {
        let response = self
            .request(reqwest::Method::GET, "ui/api/services")
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        let bytes = self.read_body(response).await?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.unexpected(status, &bytes, e.to_string()))?;
        if let Some(error) = body.get("error") {
            return Err(self.rpc_error(error));
        }
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.unexpected(status, &bytes, String::new()))
        }
    }

    /// Whether the node's process serves HTTP (`GET /livez`, no token needed).
    pub async fn livez(&self) -> Result<(), ClientError> {
        let response = self
            .request(reqwest::Method::GET, "livez")
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = self.read_body(response).await?;
        Err(self.unexpected(status, &bytes, String::new()))
    }

    /// Whether the node takes work (`GET /ready`: accepting and not Critical).
    pub async fn ready(&self) -> Result<bool, ClientError> {
        let response = self
            .request(reqwest::Method::GET, "ready")
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        let status = response.status();
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            _ => {
                let bytes = self.read_body(response).await?;
                Err(self.unexpected(status, &bytes, String::new()))
            }
        }
    }

    /// Every registered service instance with its status (`node.services`).
    pub async fn services(&self) -> Result<Value, ClientError> {
        self.call("node.services", json!({})).await
    }

    /// The system's health with every component's counters (`node.health`):
    /// `{system: {status, components, at}, components: [...]}`.
    pub async fn node_health(&self) -> Result<Value, ClientError> {
        self.call("node.health", json!({})).await
    }

    /// The configuration value at a dotted `path`, or the whole document
    /// (`node.config_get`).
    pub async fn config_get(&self, path: Option<&str>) -> Result<Value, ClientError> {
        let params = match path {
            Some(path) => json!({"path": path}),
            None => json!({}),
        };
        self.call("node.config_get", params).await
    }

    /// Sets the configuration value at a dotted `path` (`node.config_set`); the
    /// answer is the new version (`{version, at, author, reason, changed,
    /// rollback_of}`).
    pub async fn config_set(&self, path: &str, value: Value) -> Result<Value, ClientError> {
        self.call("node.config_set", json!({"path": path, "value": value}))
            .await
    }

    /// Every configuration version kept, oldest first (`node.config_history`).
    pub async fn config_history(&self) -> Result<Value, ClientError> {
        self.call("node.config_history", json!({})).await
    }

    /// Makes `version`'s content current again, as a new version
    /// (`node.config_rollback`).
    pub async fn config_rollback(&self, version: u64) -> Result<Value, ClientError> {
        self.call("node.config_rollback", json!({"version": version}))
            .await
    }

    /// Reads a body, at most `max_response_bytes` of it.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
        let limit = self.inner.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(ClientError::TooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.send_error(e))? {
            if body.len() + chunk.len() > limit {
                return Err(ClientError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn send_error(&self, error: reqwest::Error) -> ClientError {
        let url = self.inner.url.clone();
        if error.is_timeout() {
            let after = if error.is_connect() {
                self.inner.config.connect_timeout
            } else {
                self.inner.config.timeout
            };
            ClientError::Timeout { url, after }
        } else if error.is_connect() {
            ClientError::NotRunning { url }
        } else {
            ClientError::Http { url, source: error }
        }
    }

    pub(crate) fn rpc_error(&self, error: &Value) -> ClientError {
        rpc_error(&self.inner.url, error)
    }

    fn unexpected(&self, status: StatusCode, body: &[u8], reason: String) -> ClientError {
        if status.is_success() {
            return ClientError::Protocol {
                reason: if reason.is_empty() {
                    snippet(body)
                } else {
                    format!("{reason}: {}", snippet(body))
                },
            };
        }
        if status == StatusCode::UNAUTHORIZED {
            return ClientError::Unauthorized {
                url: self.inner.url.clone(),
                message: snippet(body),
            };
        }
        ClientError::Status {
            url: self.inner.url.clone(),
            status: status.as_u16(),
            body: snippet(body),
        }
    }
}

/// The error a JSON-RPC `error` object stands for.
pub(crate) fn rpc_error(url: &str, error: &Value) -> ClientError {
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_owned();
    if code == UNAUTHORIZED_CODE {
        return ClientError::Unauthorized {
            url: url.to_owned(),
            message,
        };
    }
    ClientError::Rpc {
        code,
        message,
        data: error.get("data").cloned().filter(|d| !d.is_null()),
    }
}

/// The first 200 characters of a body, for a message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 200 {
        text.chars().take(200).collect::<String>() + "…"
    } else {
        text.to_owned()
    }
}

fn parse_base(url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    // `127.0.0.1:7700` and `localhost:7700` mean http.
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let mut base = Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
    match base.scheme() {
        "http" => {}
        "https" => {
            return Err(invalid(
                "https is not supported by this client (no TLS); reach the node over http on loopback or through a TLS-terminating proxy",
            ));
        }
        other => return Err(invalid(&format!("the scheme `{other}` is not http"))),
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("it must not have a query or a fragment"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_under_the_base_path() {
        let client = Client::new("http://127.0.0.1:7700", None).unwrap();
        assert_eq!(client.endpoint("rpc").as_str(), "http://127.0.0.1:7700/rpc");
        let prefixed = Client::new("http://host:80/plexus", None).unwrap();
        assert_eq!(prefixed.endpoint("ws").as_str(), "http://host/plexus/ws");
        let bare = Client::new("localhost:7700", None).unwrap();
        assert_eq!(bare.endpoint("rpc").as_str(), "http://localhost:7700/rpc");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, needle) in [
            ("http://", "invalid node URL"),
            ("https://127.0.0.1:7700", "https"),
            ("ftp://x", "scheme `ftp`"),
            ("http://x/?a=1", "query"),
            ("not a url", "invalid node URL"),
        ] {
            let err = Client::new(url, None).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let client = Client::new(DEFAULT_URL, Some("0123456789abcdef-secret".into())).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn rpc_errors_keep_code_message_and_data() {
        let err = rpc_error(
            DEFAULT_URL,
            &json!({"code": -32602, "message": "bad", "data": {"field": "/x"}}),
        );
        match err {
            ClientError::Rpc {
                code,
                message,
                data,
            } => {
                assert_eq!((code, message.as_str()), (-32602, "bad"));
                assert_eq!(data, Some(json!({"field": "/x"})));
            }
            other => panic!("{other}"),
        }
        let unauthorized = rpc_error(DEFAULT_URL, &json!({"code": -32001, "message": "no"}));
        assert!(matches!(unauthorized, ClientError::Unauthorized { .. }));
    }
}
