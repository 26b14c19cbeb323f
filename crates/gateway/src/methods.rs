//! What a JSON-RPC request does once it is decoded: a service method through the call
//! path, or one of the gateway's own `plexus.*` methods.
//!
//! The service name `plexus` is reserved for these: `plexus.publish` works over HTTP
//! and WebSocket; `plexus.subscribe`, `plexus.unsubscribe`, `plexus.register`,
//! `plexus.deregister` and `plexus.heartbeat` need a WebSocket, since they bind state
//! to the connection.

use std::sync::Arc;

use plexus_bus::BusError;
use plexus_core::{CallContext, Envelope, Headers, Member, Payload, Priority, Topic};
use plexus_node::{CallError, codes};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Need};
use crate::server::Shared;
use plexus_jsonrpc::{Request, RpcError};

/// The reserved service name of the gateway's own methods.
pub const RESERVED_SERVICE: &str = "plexus";

/// Checks `need`, counting a refusal.
pub(crate) fn check(shared: &Shared, caller: &Caller, need: Need<'_>) -> Result<(), RpcError> {
    caller.check(need).map_err(|f| {
        shared.metrics.auth_failure("forbidden");
        RpcError::from(CallError::from(f))
    })
}

/// Calls a service method through the node's call path, as `caller`.
pub(crate) async fn call_service(
    shared: &Shared,
    caller: &Caller,
    request: Request,
) -> Result<Value, RpcError> {
    check(shared, caller, Need::Call(&request.method))?;
    let ctx = CallContext::new().acting_for(caller);
    shared
        .node
        .call(&request.method, request.params, ctx)
        .await
        .map_err(RpcError::from)
}

/// Reads `params` as `T`, naming the field that is wrong.
pub(crate) fn params<T: for<'de> Deserialize<'de>>(
    method: &str,
    params: Value,
) -> Result<T, RpcError> {
    let params = if params.is_null() { json!({}) } else { params };
    T::deserialize(params).map_err(|e| invalid_params(method, "", e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishParams {
    topic: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, String>>,
}

/// `plexus.publish {topic, payload?, priority?, headers?}` → `{id, matched, enqueued}`.
pub(crate) async fn publish(
    shared: &Shared,
    caller: &Caller,
    raw: Value,
    source: Option<Arc<Member>>,
) -> Result<Value, RpcError> {
    const METHOD: &str = "plexus.publish";
    let p: PublishParams = params(METHOD, raw)?;
    let topic =
        Topic::new(&p.topic).map_err(|e| invalid_params(METHOD, "/topic", e.to_string()))?;
    check(shared, caller, Need::Publish(topic.as_str()))?;
    let payload =
        Payload::json(&p.payload).map_err(|e| invalid_params(METHOD, "/payload", e.to_string()))?;
    let mut envelope = Envelope::new(topic, payload);
    if let Some(priority) = p.priority {
        let priority: Priority =
            priority
                .parse()
                .map_err(|e: plexus_core::ParsePriorityError| {
                    invalid_params(METHOD, "/priority", e.to_string())
                })?;
        envelope = envelope.with_priority(priority);
    }
    if let Some(headers) = p.headers {
        *envelope.headers_mut() = headers.into_iter().collect::<Headers>();
    }
    if let Some(source) = source {
        envelope = envelope.with_source(source);
    }
    let receipt = shared
        .node
        .bus()
        .publish(envelope)
        .await
        .map_err(bus_error)?;
    Ok(json!({
        "id": receipt.id.to_string(),
        "matched": receipt.matched,
        "enqueued": receipt.enqueued,
    }))
}

/// The JSON-RPC error for a bus refusal.
pub(crate) fn bus_error(e: BusError) -> RpcError {
    let message = e.to_string();
    let (code, outcome) = match &e {
        BusError::PayloadTooLarge { .. } | BusError::HeadersTooLarge { .. } => {
            (codes::TOO_LARGE, "too_large")
        }
        BusError::Rejected { .. } => (codes::OVERLOADED, "overloaded"),
        BusError::ShuttingDown => (codes::UNAVAILABLE, "unavailable"),
        BusError::InvalidPattern { .. } | BusError::InvalidOption { .. } => {
            (codes::INVALID_PARAMS, "invalid_params")
        }
        _ => (codes::INTERNAL_ERROR, "internal"),
    };
    RpcError::new(code, message.clone(), outcome).with_data(json!({"reason": message}))
}

/// -32602 for a method of the gateway's own (`plexus.*`).
pub(crate) fn invalid_params(method: &str, field: &str, reason: impl Into<String>) -> RpcError {
    RpcError::from(CallError::InvalidParams {
        method: method.to_owned(),
        field: field.to_owned(),
        reason: reason.into(),
    })
}

/// A `plexus.*` method that needs a WebSocket, asked for over HTTP.
pub(crate) fn needs_socket(method: &str) -> RpcError {
    RpcError::from(CallError::MethodNotFound {
        method: method.to_owned(),
        hint: Some(format!(
            "`{method}` binds state to a connection: call it over the WebSocket at /ws"
        )),
    })
}

/// A `plexus.*` method that does not exist.
pub(crate) fn unknown_own(method: &str) -> RpcError {
    RpcError::from(CallError::MethodNotFound {
        method: method.to_owned(),
        hint: Some(
            "`plexus` has: publish, subscribe, unsubscribe, register, deregister, heartbeat"
                .to_owned(),
        ),
    })
}

/// What `/rpc` does with one request.
pub(crate) async fn http_request(
    shared: &Shared,
    caller: &Caller,
    request: Request,
) -> Result<Value, RpcError> {
    match request.method.strip_prefix("plexus.") {
        Some("publish") => publish(shared, caller, request.params, None).await,
        Some("subscribe" | "unsubscribe" | "register" | "deregister" | "heartbeat") => {
            Err(needs_socket(&request.method))
        }
        Some(_) => Err(unknown_own(&request.method)),
        None => call_service(shared, caller, request).await,
    }
}
