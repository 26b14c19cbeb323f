//! Streamable HTTP: the axum router the gateway nests at `/mcp`.
//!
//! rmcp's `StreamableHttpService` speaks both protocols on one path: a request
//! that names 2026-07-28 (header `MCP-Protocol-Version` or its `_meta`) is served
//! statelessly, including `server/discover` and `subscriptions/listen`; anything
//! older goes through a 2025-11-25 session (`initialize` creates it and returns
//! `Mcp-Session-Id`, GET opens its standalone stream, DELETE ends it, an unknown or
//! expired id answers 404). `Host` and `Origin` are checked by rmcp against
//! [`McpConfig`](crate::McpConfig).
//!
//! In front of it, [`guard`] reads each POST body within `max_body_bytes` and
//! answers what rmcp would answer in plain text with a JSON-RPC error instead:
//! 413 + -32008 for a body too large, 400 + -32700 for one that is not JSON,
//! 400 + -32600 for one that is not a request object, 503 + -32603 for an
//! `initialize` beyond `max_sessions`. Every other plain-text error rmcp returns
//! (400, 403, 404, 405, 406, 415, 500) keeps its status and gets a JSON-RPC error
//! body with its text.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use plexus_node::codes;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use crate::handler::Tools;
use crate::server::{McpServer, Shared};
use crate::sessions::Sessions;

/// The largest rmcp error body rewritten as JSON-RPC; larger ones pass unchanged.
const MAX_ERROR_BODY: usize = 16 * 1024;

#[derive(Clone)]
struct HttpState {
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
}

impl McpServer {
    /// The Streamable HTTP endpoint at the router's root path (the gateway nests it
    /// at `/mcp`). Each call makes an endpoint with its own sessions; the tool list
    /// and its change notifications are shared by all.
    pub fn router(&self) -> Router {
        let shared = self.shared.clone();
        let config = &shared.config;
        let sessions = Arc::new(Sessions::new(shared.clone()));
        let mut http = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(true)
            .with_sse_keep_alive(config.sse_keep_alive())
            .with_max_request_body_bytes(config.max_body_bytes)
            .with_allowed_origins(config.allowed_origins.iter().cloned());
        if config.allowed_origins.is_empty() {
            http = http.enforce_origin_validation();
        }
        http = if config.allowed_hosts.is_empty() {
            http.disable_allowed_hosts()
        } else {
            http.with_allowed_hosts(config.allowed_hosts.iter().cloned())
        };
        let factory = shared.clone();
        let service = StreamableHttpService::new(
            move || Ok(Tools::new(factory.clone())),
            sessions.clone(),
            http,
        );
        Router::new()
            .route_service("/", service)
            .layer(middleware::from_fn_with_state(
                HttpState { shared, sessions },
                guard,
            ))
    }
}

/// A JSON-RPC error response with `status`.
fn rpc_error(status: StatusCode, id: Option<&Value>, code: i64, message: String) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads the body, at most `max` bytes.
async fn read_body(body: Body, max: usize, hint: usize) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(hint.min(max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::PARSE_ERROR,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn too_large(max: usize) -> Response {
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        codes::TOO_LARGE,
        format!("the request body is larger than {max} bytes (max_body_bytes)"),
    )
}

async fn guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return as_json_rpc(next.run(request).await, None).await;
    }
    let max = state.shared.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(max);
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body, max, declared.unwrap_or(0)).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::PARSE_ERROR,
                format!("the body is not valid JSON: {e}"),
            );
        }
    };
    let Value::Object(object) = &message else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "a request must be one JSON-RPC object (MCP has no batches)".to_owned(),
        );
    };
    let id = object.get("id").cloned();
    let is_initialize = object.get("method").and_then(Value::as_str) == Some("initialize");
    if is_initialize && !parts.headers.contains_key("mcp-session-id") {
        let max_sessions = state.shared.config.max_sessions;
        if state.sessions.count().await >= max_sessions {
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id.as_ref(),
                codes::INTERNAL_ERROR,
                format!(
                    "{max_sessions} sessions are live, the most allowed (max_sessions); try again later"
                ),
            );
        }
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    as_json_rpc(next.run(request).await, id.as_ref()).await
}

/// Gives a plain-text error from rmcp a JSON-RPC error body, keeping its status.
async fn as_json_rpc(response: Response, id: Option<&Value>) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| !v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match read_body(body, MAX_ERROR_BODY, 0).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let text = if status == StatusCode::NOT_FOUND {
        "session not found: it expired, was deleted or never existed; send `initialize` for a new one".to_owned()
    } else {
        text
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => codes::TOO_LARGE,
        s if s.is_server_error() => codes::INTERNAL_ERROR,
        _ => codes::INVALID_REQUEST,
    };
    let mut out = rpc_error(status, id, code, text);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
