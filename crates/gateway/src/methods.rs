//! What a JSON-RPC request does once it is decoded: a service method through the call
//! path, or a method of the node's `plexus` service that the gateway answers itself.
//!
//! The `plexus` service ([`plexus_node::own`]) lists the methods and their params
//! types; the gateway answers them on `/rpc` and `/ws` because they bind state to the
//! connection (`plexus.subscribe`, `plexus.register`, … are WebSocket-only) or name
//! the connection's instance as an event's source (`plexus.publish` over `/ws`).

use std::sync::Arc;

use plexus_bus::BusError;
use plexus_core::scope::call_need;
use plexus_core::{CallContext, CorrelationId, Envelope, EventId, Member};
use plexus_node::own::PublishParams;
use plexus_node::{CallError, codes};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Need};
use crate::server::Shared;
use plexus_jsonrpc::{Request, RpcError};

/// The reserved service name of the bus and registry methods.
pub use plexus_core::scope::PLEXUS_SERVICE as RESERVED_SERVICE;

/// Checks `need`, counting a refusal.
pub(crate) fn check(shared: &Shared, caller: &Caller, need: Need<'_>) -> Result<(), RpcError> {
    caller.check(need).map_err(|f| {
        shared.metrics.auth_failure("forbidden");
        RpcError::from(CallError::from(f))
    })
}

/// The conversation a request says it belongs to: its `plexus` member's
/// `correlation_id` and `causation_id` (UUIDs). An external service passes on the
/// ids the node sent with the call it is serving, so the calls it makes for it
/// share that call's correlation id in the audit trail; any caller may, as with an
/// HTTP correlation header (the ids name a conversation, never who is calling).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Conversation {
    correlation_id: Option<CorrelationId>,
    causation_id: Option<EventId>,
}

impl Conversation {
    /// The ids `request` carries, or a -32600 naming the member that is not a UUID.
    pub(crate) fn of(request: &Request) -> Result<Self, RpcError> {
        let Some(plexus) = &request.plexus else {
            return Ok(Self::default());
        };
        Ok(Self {
            correlation_id: id_member(plexus, "correlation_id")?,
            causation_id: id_member(plexus, "causation_id")?,
        })
    }

    /// A call context for `caller` in this conversation (a new one when none is named).
    pub(crate) fn context(self, caller: &Caller) -> CallContext {
        let mut ctx = CallContext::new().acting_for(caller);
        if let Some(id) = self.correlation_id {
            ctx = ctx.with_correlation_id(id);
        }
        ctx.causation_id = self.causation_id;
        ctx
    }

    /// `envelope` in this conversation (it keeps its own ids where none is named).
    fn envelope(self, mut envelope: Envelope) -> Envelope {
        if let Some(id) = self.correlation_id {
            envelope = envelope.with_correlation_id(id);
        }
        if self.causation_id.is_some() {
            envelope = envelope.with_causation_id(self.causation_id);
        }
        envelope
    }
}

/// The id at `plexus.<key>`, if any; a -32600 saying what it must be otherwise.
fn id_member<T: std::str::FromStr>(
    plexus: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<T>, RpcError> {
    match plexus.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text.parse().map(Some).map_err(|_| {
            RpcError::invalid_request(format!(
                "`plexus.{key}` must be a UUID such as \"0190a3c2-7b1e-7000-8000-000000000000\" \
                 (pass on the one the node sent with the call you are serving)"
            ))
        }),
        Some(_) => Err(RpcError::invalid_request(format!(
            "`plexus.{key}` must be a string holding a UUID"
        ))),
    }
}

/// Calls a service method through the node's call path, as `caller`.
pub(crate) async fn call_service(
    shared: &Shared,
    caller: &Caller,
    request: Request,
) -> Result<Value, RpcError> {
    if let Some(need) = call_need(&request.method) {
        check(shared, caller, need)?;
    }
    let ctx = Conversation::of(&request)?.context(caller);
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

/// `plexus.publish {topic, payload?, priority?, headers?}` → `{id, matched, enqueued}`.
pub(crate) async fn publish(
    shared: &Shared,
    caller: &Caller,
    request: Request,
    source: Option<Arc<Member>>,
) -> Result<Value, RpcError> {
    const METHOD: &str = "plexus.publish";
    let conversation = Conversation::of(&request)?;
    let p: PublishParams = params(METHOD, request.params)?;
    let mut envelope = conversation.envelope(
        p.envelope()
            .map_err(|(field, reason)| invalid_params(METHOD, field, reason))?,
    );
    check(shared, caller, Need::Publish(envelope.topic().as_str()))?;
    if let Some(source) = source {
        envelope = envelope.with_source(source);
    }
    // A durable topic is kept in the node's log first (its relay delivers it).
    if let Some(log) = shared
        .node
        .durable()
        .filter(|log| log.is_durable(envelope.topic()))
    {
        let id = envelope.id().to_string();
        let offset = log
            .append(envelope)
            .await
            .map_err(|e| service_error(METHOD, e))?;
        return Ok(json!({"id": id, "matched": 0, "enqueued": 0, "offset": offset}));
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

/// The JSON-RPC error for a durable log's refusal of `method`.
fn service_error(method: &str, e: plexus_core::ServiceError) -> RpcError {
    use plexus_core::ServiceError;
    match e {
        ServiceError::InvalidParams { field, reason } => invalid_params(method, &field, reason),
        ServiceError::Unavailable { reason } => RpcError::from(CallError::Unavailable {
            service: RESERVED_SERVICE.to_owned(),
            reason,
            instances: Vec::new(),
        }),
        other => RpcError::from(CallError::Failed {
            method: method.to_owned(),
            instance: None,
            message: other.to_string(),
            retryable: other.is_retryable(),
            detail: None,
        }),
    }
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

/// A `plexus.*` method that does not exist, with the ones that do.
pub(crate) fn unknown_own(method: &str) -> RpcError {
    let names: Vec<&str> = plexus_node::own::methods()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    RpcError::from(CallError::MethodNotFound {
        method: method.to_owned(),
        hint: Some(format!("`plexus` has: {}", names.join(", "))),
    })
}

/// What `/rpc` does with one request.
pub(crate) async fn http_request(
    shared: &Shared,
    caller: &Caller,
    request: Request,
) -> Result<Value, RpcError> {
    let own = request
        .method
        .strip_prefix(RESERVED_SERVICE)
        .and_then(|m| m.strip_prefix('.'));
    let Some(own) = own else {
        return call_service(shared, caller, request).await;
    };
    if own == "publish" {
        return publish(shared, caller, request, None).await;
    }
    match plexus_node::own::methods().iter().find(|m| m.name == own) {
        Some(m) if m.websocket_only => Err(needs_socket(&request.method)),
        // The rest (`plexus.replay`) are the node's own service, through the call path.
        Some(_) => call_service(shared, caller, request).await,
        None => Err(unknown_own(&request.method)),
    }
}
