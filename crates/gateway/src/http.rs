//! The HTTP endpoints: `POST /rpc`, `GET /metrics`, `/health`, `/ready`, `/livez`, and
//! the auth layer in front of them.
//!
//! `POST /rpc` reads as a stack, top to bottom:
//!
//! ```text
//! auth          Authorization: Bearer → Caller, or 401 with -32001 (counted)
//! content type  application/json, or 415 (keeps browsers' simple cross-site posts out)
//! body limit    Content-Length, then the bytes read, at most max_body_bytes, or 413 with -32008
//!               (the rest of the body drained, bounded, so the client reads the 413)
//! decode        JSON-RPC 2.0 (plexus_jsonrpc): parse error, invalid request, batch limits
//! dispatch      each request: scope check (-32002), then node.call (the call path)
//! encode        one response, an array for a batch, or 204 when only notifications came
//! ```
//!
//! JSON-RPC errors travel in a `200 OK` body; HTTP statuses other than 200 and 204
//! mean the request never reached JSON-RPC (401, 413, 415).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use plexus_jsonrpc::{self as jsonrpc, RpcError};
use plexus_node::metrics::Format;
use plexus_registry::health::SystemStatus;
use tokio::time::Instant;

use crate::auth::{Caller, Need};
use crate::server::Shared;
use crate::{dispatch, methods};

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON-RPC error body with `status`.
pub(crate) fn error_response(status: StatusCode, error: &RpcError) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON)],
        jsonrpc::error_body(error),
    )
        .into_response()
}

fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/rpc" => "rpc",
        "/ws" => "ws",
        "/metrics" => "metrics",
        "/health" => "health",
        _ => "other",
    }
}

/// The auth layer: puts the [`Caller`] in the request's extensions, or answers 401.
/// `/livez` and `/ready` pass without a token.
pub(crate) async fn authenticate(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !shared.auth.enabled() {
        request.extensions_mut().insert(shared.open.clone());
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path == "/livez" || path == "/ready" || crate::ui::is_public(path) {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match shared.auth.authenticate(header) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(failure) => {
            shared.metrics.auth_failure(failure.reason());
            shared
                .metrics
                .request(endpoint_of(request.uri().path()), "unauthorized");
            let (parts, body) = request.into_parts();
            drain_refused(&parts.headers, body).await;
            let mut response = error_response(StatusCode::UNAUTHORIZED, &RpcError::from(failure));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            close_after(&mut response);
            response
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /rpc`.
pub(crate) async fn rpc(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = rpc_inner(&shared, &caller, &headers, body).await;
    shared.metrics.rpc_duration(started.elapsed());
    response
}

async fn rpc_inner(shared: &Shared, caller: &Caller, headers: &HeaderMap, body: Body) -> Response {
    let metrics = &shared.metrics;
    if !is_json(headers) {
        metrics.request("rpc", "invalid_request");
        drain_refused(headers, body).await;
        let mut response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &RpcError::invalid_request("send the request with `Content-Type: application/json`"),
        );
        close_after(&mut response);
        return response;
    }
    let limit = shared.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = match read_body(body, limit, declared, expects_continue(headers)).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            metrics.request("rpc", "too_large");
            let mut response = error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &RpcError::too_large("the request body", limit),
            );
            // What was sent of the body has been drained (within bounds); the
            // connection closes after this answer, which the client reads first.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(BodyError::Broken(e)) => {
            metrics.request("rpc", "parse_error");
            return error_response(
                StatusCode::BAD_REQUEST,
                &RpcError::parse_error(format!("the request body could not be read: {e}")),
            );
        }
    };
    let payload = jsonrpc::decode(&bytes, shared.config.max_batch, false);
    let answer = dispatch::execute(
        payload,
        |request| methods::http_request(shared, caller, request),
        |outcome| metrics.request("rpc", outcome),
    )
    .await;
    match answer {
        Some(body) => ([(header::CONTENT_TYPE, JSON)], body).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// How much of an oversized body is read and dropped, and for how long, so that a
/// client that sends its whole body before reading (Python's `urllib`, most simple
/// clients) reads the 413 instead of a connection reset.
const DRAIN_BYTES: u64 = 8 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Why a body could not be read.
enum BodyError {
    /// It is larger than the limit (what followed was drained, within bounds).
    TooLarge,
    /// It broke off before its end.
    Broken(String),
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads a body of at most `limit` bytes. One over the limit, declared or read, is
/// refused; the rest of it is drained unless the client waits for a `100 Continue`
/// (then it has not sent it) or declared more than [`DRAIN_BYTES`].
async fn read_body(
    body: Body,
    limit: usize,
    declared: Option<u64>,
    expects_continue: bool,
) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        if !expects_continue && declared.is_some_and(|n| n <= DRAIN_BYTES) {
            drain(stream, 0).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut more = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        let read = first.as_ref().map_or(0, Bytes::len) + more.len() + chunk.len();
        if read > limit {
            drain(stream, read as u64).await;
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if more.is_empty() => first = Some(chunk),
            Some(head) => {
                more.extend_from_slice(&head);
                more.extend_from_slice(&chunk);
            }
            None => more.extend_from_slice(&chunk),
        }
    }
    Ok(first.unwrap_or_else(|| more.freeze()))
}

/// Asks the client to close the connection after this answer (its request body may
/// not have been read to its end).
fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Drains the body of a request refused before it was read (unless its client waits
/// for a `100 Continue` or declared more than [`DRAIN_BYTES`]), so a client that
/// sends its whole request before reading gets the answer instead of a reset.
pub(crate) async fn drain_refused(headers: &HeaderMap, body: Body) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if !expects_continue(headers) && declared.is_none_or(|n| n <= DRAIN_BYTES) {
        drain(body.into_data_stream(), 0).await;
    }
}

/// Reads and drops what is left of a body, at most [`DRAIN_BYTES`] in all and for at
/// most [`DRAIN_TIME`].
async fn drain(mut stream: BodyDataStream, mut read: u64) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read <= DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.len() as u64,
                _ => break,
            }
        }
    })
    .await;
}

/// Checks the `ops` scope for `endpoint`, answering 403 when it is missing.
pub(crate) fn ops_denied(
    shared: &Shared,
    caller: &Caller,
    endpoint: &'static str,
) -> Option<Response> {
    let denied = methods::check(shared, caller, Need::Ops).err()?;
    shared.metrics.request(endpoint, "forbidden");
    Some(error_response(StatusCode::FORBIDDEN, &denied))
}

/// `GET /metrics`: Prometheus text, or OpenMetrics when `Accept` names it. Needs `ops`.
pub(crate) async fn metrics(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "metrics") {
        return denied;
    }
    shared.metrics.request("metrics", "ok");
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = shared.node.metrics().render(format);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

/// `GET /health`: the system's health with every component, as JSON; 503 when it is
/// Critical. Needs `ops`.
pub(crate) async fn health(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = ops_denied(&shared, &caller, "health") {
        return denied;
    }
    shared.metrics.request("health", "ok");
    let health = shared.node.system_health();
    let status = if health.status == SystemStatus::Critical {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(health)).into_response()
}

/// `GET /ready`: 200 while the gateway accepts work and the system is not Critical,
/// 503 otherwise. No token needed.
pub(crate) async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let system = shared.node.system_health().status;
    let ready = shared.accepting() && system != SystemStatus::Critical;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "accepting": shared.accepting(),
        "status": system.as_str(),
    });
    (status, axum::Json(body)).into_response()
}

/// `GET /livez`: 200 while the process serves HTTP. No token needed.
pub(crate) async fn livez() -> &'static str {
    "ok"
}

/// What a connection in the ops reserve gets for anything but the ops endpoints.
pub(crate) async fn saturated() -> (axum::http::StatusCode, &'static str) {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "every data-plane connection is in use (gateway.max_connections); this connection serves /livez, /ready, /health and /metrics only\n",
    )
}
