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
//! In front of it, [`guard`] reads each POST body within `max_body_bytes`, frames it
//! as `/rpc` does (`plexus_jsonrpc`: one object, no repeated keys), and answers what
//! rmcp would answer in plain text with a JSON-RPC error instead: 413 + -32008 for a
//! body too large (what was sent of it drained, within bounds, and the connection
//! closed, so the client reads the 413), 400 + -32700 for one that is not JSON,
//! 400 + -32600 for one that is not a JSON-RPC message object (or a batch), 503 +
//! -32603 for an `initialize` beyond `max_sessions`. Every other plain-text error
//! rmcp returns (400, 403, 404, 405, 406, 415, 500) keeps its status and gets a
//! JSON-RPC error body with its text.
//!
//! `DELETE` with `Mcp-Session-Id` answers as the 2025-11-25 specification has it:
//! 204 when it ended a live session, 404 when no such session lives (expired,
//! already deleted, never existed), and rmcp's 405 for a stateless (2026-07-28)
//! request, which has no session to end.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use plexus_jsonrpc::{self as jsonrpc, Id, Message, Payload, RpcError, codes};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::Value;

use plexus_core::{clip, json_len};

use crate::McpEvent;
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

/// How much of an oversized body is read and dropped, and for how long, so that a
/// client that sends its whole body before reading gets the 413 instead of a reset.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A JSON-RPC error response with `status`, answering `id` (or `null`).
fn rpc_error(status: StatusCode, id: Option<&Id>, error: RpcError) -> Response {
    let body = match id {
        Some(id) => jsonrpc::encode(id, &Err(error)),
        None => jsonrpc::error_body(&error),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads the body, at most `max` bytes; over that, answers 413, draining what
/// follows first (bounded) when `drain_excess`.
async fn read_body(
    body: Body,
    max: usize,
    hint: usize,
    drain_excess: bool,
) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(hint.min(max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                RpcError::parse_error(format!("the request body could not be read: {e}")),
            )
        })?;
        if bytes.len() + chunk.len() > max {
            if drain_excess {
                drain(stream, bytes.len() + chunk.len()).await;
            }
            return Err(too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads and drops what is left of a body, at most [`DRAIN_BYTES`] in all and for at
/// most [`DRAIN_TIME`].
async fn drain(mut stream: BodyDataStream, mut read: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read <= DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}

/// 413 + -32008; the connection closes after it.
fn too_large(max: usize) -> Response {
    let mut response = rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        RpcError::too_large("the request body", max),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What [`guard`] makes of a POST body, read in full.
#[derive(Debug)]
pub enum Framed {
    /// Answered at once with `status` and `error` (for request `id`, or `null`);
    /// rmcp never sees it.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The id answered, when one was read.
        id: Option<Id>,
        /// The JSON-RPC error.
        error: RpcError,
    },
    /// One JSON-RPC message, passed on to rmcp.
    Message {
        /// Its id, answered when rmcp refuses it in plain text (`None`: a
        /// notification, or a response without a valid id).
        id: Option<Id>,
        /// Its method; `None` for a response.
        method: Option<String>,
    },
}

/// Frames a POST body as `/rpc` does (one object, no repeated keys): 400 + -32700
/// for one that is not JSON, 400 + -32600 for a batch or one that is not a
/// JSON-RPC message object, otherwise the message's id and method.
pub fn frame_body(bytes: &[u8]) -> Framed {
    let bad_request = |id, error| Framed::Refused {
        status: StatusCode::BAD_REQUEST,
        id,
        error,
    };
    match jsonrpc::decode(bytes, usize::MAX, true) {
        Payload::Refused(error) if error.code == codes::PARSE_ERROR => bad_request(None, error),
        Payload::Refused(_) | Payload::Batch(_) => bad_request(
            None,
            RpcError::invalid_request("a request must be one JSON-RPC object (MCP has no batches)"),
        ),
        Payload::Single(Message::Invalid(rejected)) => {
            bad_request(Some(rejected.id), rejected.error)
        }
        Payload::Single(Message::Request(request)) => Framed::Message {
            id: request.id,
            method: Some(request.method),
        },
        Payload::Single(Message::Response(response)) => Framed::Message {
            id: response.id,
            method: None,
        },
    }
}

/// The longest `protocolVersion` an `initialize` may name.
const MAX_PROTOCOL_VERSION_BYTES: usize = 64;

/// What an `initialize` says of its client, read before rmcp sees it.
#[derive(Deserialize)]
struct Initialize {
    #[serde(default)]
    params: InitializeParams,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: Option<Value>,
    client_info: Option<Value>,
}

/// Checks an `initialize` body's `clientInfo` (at most `max_bytes` of JSON) and
/// `protocolVersion` (at most 64 bytes), and logs who the client says it is, cut
/// short: nothing a client sends reaches the log unbounded, ours or rmcp's.
fn client_info(body: &[u8], max_bytes: usize, peer: Option<IpAddr>) -> Result<(), RpcError> {
    let Ok(Initialize { params }) = serde_json::from_slice::<Initialize>(body) else {
        // Not an object with object params: rmcp answers it.
        return Ok(());
    };
    let too_long = |field: &str, size: usize, max: usize| {
        Err(RpcError::new(
            codes::INVALID_PARAMS,
            format!("{field}: {size} bytes, more than {max}"),
            "invalid_params",
        ))
    };
    if let Some(version) = &params.protocol_version {
        let size = json_len(version);
        if size > MAX_PROTOCOL_VERSION_BYTES + 2 {
            return too_long("protocolVersion", size, MAX_PROTOCOL_VERSION_BYTES);
        }
    }
    let Some(info) = &params.client_info else {
        return Ok(());
    };
    let size = json_len(info);
    if size > max_bytes {
        return too_long("clientInfo", size, max_bytes);
    }
    let field = |name: &str| {
        let text = info.get(name).and_then(Value::as_str).unwrap_or("");
        clip(text, 64).to_owned()
    };
    tracing::info!(
        client = %field("name"),
        version = %field("version"),
        peer = ?peer,
        "MCP client initializing"
    );
    Ok(())
}

async fn guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if request.method() == Method::DELETE {
        return delete(&state, request, next).await;
    }
    if request.method() != Method::POST {
        return as_json_rpc(next.run(request).await, None).await;
    }
    let max = state.shared.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(declared) = declared.filter(|n| *n > max) {
        let waits = request
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits && declared <= DRAIN_BYTES {
            drain(request.into_body().into_data_stream(), 0).await;
        }
        return too_large(max);
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body, max, declared.unwrap_or(0), true).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let (id, method) = match frame_body(&bytes) {
        Framed::Refused { status, id, error } => return rpc_error(status, id.as_ref(), error),
        Framed::Message { id, method } => (id, method),
    };
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok());
    if let (Some(session), Some("notifications/initialized")) = (session, method.as_deref()) {
        state.sessions.initialized(session);
    }
    let is_initialize = session.is_none() && method.as_deref() == Some("initialize");
    // The client's address, where the server knows it (the gateway, or axum's
    // `into_make_service_with_connect_info`).
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer.filter(|_| is_initialize) {
        let cap = state.shared.config.max_sessions_per_peer;
        if state.sessions.held_by(peer).await >= cap {
            state.shared.emit(McpEvent::PeerFull {
                peer: peer.to_string(),
            });
            return rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                id.as_ref(),
                RpcError::new(
                    codes::OVERLOADED,
                    format!(
                        "this client address holds {cap} live sessions, the most allowed (max_sessions_per_peer); end one (DELETE) or let one expire"
                    ),
                    "overloaded",
                ),
            );
        }
    }
    if is_initialize {
        if let Err(error) = client_info(&bytes, state.shared.config.max_client_info_bytes, peer) {
            state.shared.metrics.refused("client_info");
            return rpc_error(StatusCode::BAD_REQUEST, id.as_ref(), error);
        }
        let max_sessions = state.shared.config.max_sessions;
        if state.sessions.count().await >= max_sessions {
            state.shared.metrics.refused("full");
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id.as_ref(),
                RpcError::internal(format!(
                    "{max_sessions} sessions are live, the most allowed (max_sessions); try again later"
                )),
            );
        }
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = next.run(request).await;
    if let Some(peer) = peer.filter(|_| is_initialize) {
        let opened = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        if let Some(opened) = opened {
            state.sessions.opened_by(SessionId::from(opened), peer);
        }
    }
    as_json_rpc(response, id.as_ref()).await
}

/// `DELETE`: 204 for a live session it ended, 404 for a session that does not live.
/// rmcp answers 202 to both, and its own refusals (405 for a stateless request, 400
/// without a session id) pass through.
async fn delete(state: &HttpState, request: Request, next: Next) -> Response {
    let session: Option<SessionId> = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| id.to_owned().into());
    let live = match &session {
        Some(id) => state.sessions.has_session(id).await.unwrap_or(false),
        None => false,
    };
    let response = next.run(request).await;
    if session.is_some() && response.status() == StatusCode::ACCEPTED {
        if !live {
            return rpc_error(
                StatusCode::NOT_FOUND,
                None,
                RpcError::new(codes::INVALID_REQUEST, SESSION_NOT_FOUND, "invalid_request"),
            );
        }
        let mut ended = Response::new(Body::empty());
        *ended.status_mut() = StatusCode::NO_CONTENT;
        return ended;
    }
    as_json_rpc(response, None).await
}

/// What a request naming a session that does not live is told.
const SESSION_NOT_FOUND: &str =
    "session not found: it expired, was deleted or never existed; send `initialize` for a new one";

/// Gives a plain-text error from rmcp a JSON-RPC error body, keeping its status.
async fn as_json_rpc(response: Response, id: Option<&Id>) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| !v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match read_body(body, MAX_ERROR_BODY, 0, false).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let text = if status == StatusCode::NOT_FOUND {
        SESSION_NOT_FOUND.to_owned()
    } else {
        text
    };
    let (code, outcome) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (codes::TOO_LARGE, "too_large"),
        s if s.is_server_error() => (codes::INTERNAL_ERROR, "internal"),
        _ => (codes::INVALID_REQUEST, "invalid_request"),
    };
    let mut out = rpc_error(status, id, RpcError::new(code, text, outcome));
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
