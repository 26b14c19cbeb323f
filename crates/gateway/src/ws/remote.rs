//! An external service's instance as the call path sees it: a [`Service`] whose calls
//! travel as JSON-RPC requests over the service's WebSocket.
//!
//! Each call gets an id `n-<k>` unique on its connection and waits in a bounded map of
//! pending calls until the matching response arrives, the call's deadline passes
//! ([`ServiceError::Timeout`]) or the socket drops ([`ServiceError::Unavailable`],
//! which the call path retries on another instance when the method is idempotent).
//!
//! A service's error object is read back as a [`ServiceError`]: -32601 method not
//! found, -32602 invalid params (`data.field` names the field), -32006 unavailable,
//! -32004 timeout; -32603 internal error and the server errors -32099 to -32000 are
//! [`ServiceError::Internal`] (a failure of the instance, counted by its breaker);
//! any other code is a failure of the service's own, retryable when
//! `data.retryable` is `true`. A code outside the reserved range (-32768 to -32000)
//! is the service's own and reaches the caller unchanged: it travels attached to the
//! failure's data ([`ServiceCode`]); a reserved code Plexus has no meaning for is
//! answered as -32000 (service failed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::ws::Message;
use parking_lot::{Mutex, RwLock};
use plexus_core::{CallContext, CallResult, Service, ServiceDescriptor, ServiceError, async_trait};
use plexus_jsonrpc::{ResponseBody, codes};
use plexus_node::ServiceCode;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

/// The node's side of one WebSocket: where to send, and the calls awaiting answers.
pub(crate) struct Link {
    /// The connection's id, unique for the gateway's life.
    pub(crate) conn: u64,
    out: mpsc::Sender<Message>,
    pending: Mutex<HashMap<u64, oneshot::Sender<ResponseBody>>>,
    next: AtomicU64,
    closed: AtomicBool,
    max_pending: usize,
}

impl Link {
    pub(crate) fn new(conn: u64, out: mpsc::Sender<Message>, max_pending: usize) -> Self {
        Self {
            conn,
            out,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            max_pending,
        }
    }

    /// The sending end of the connection's bounded queue.
    pub(crate) fn sender(&self) -> &mpsc::Sender<Message> {
        &self.out
    }

    /// Hands the body of a response to pending call `call` (the number in its id,
    /// see [`super::inbound::call_number`]). Returns false when nobody waits for that
    /// call (it timed out, or never was).
    pub(crate) fn complete(&self, call: u64, body: ResponseBody) -> bool {
        match self.pending.lock().remove(&call) {
            Some(waiter) => waiter.send(body).is_ok(),
            None => false,
        }
    }

    /// Marks the connection gone: every waiting call fails as unavailable.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pending.lock().clear();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.out.is_closed()
    }
}

/// Removes a pending call when its future ends early (deadline, cancellation).
struct Pending<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.link.pending.lock().remove(&self.id);
    }
}

/// Where an external instance is reached now: the link of the connection that last
/// registered it. One per instance id for as long as the gateway knows the instance,
/// so a reconnect swaps the link under the transport the call path already holds.
pub(crate) struct Endpoint {
    link: RwLock<Arc<Link>>,
}

impl Endpoint {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Self {
            link: RwLock::new(link),
        }
    }

    /// Points the instance at `link`, returning the link it had.
    pub(crate) fn replace(&self, link: Arc<Link>) -> Arc<Link> {
        std::mem::replace(&mut *self.link.write(), link)
    }
}

/// An instance served over a WebSocket.
pub(crate) struct RemoteService {
    endpoint: Arc<Endpoint>,
    descriptor: ServiceDescriptor,
}

impl RemoteService {
    pub(crate) fn new(endpoint: Arc<Endpoint>, descriptor: ServiceDescriptor) -> Self {
        Self {
            endpoint,
            descriptor,
        }
    }
}

fn lost() -> ServiceError {
    ServiceError::unavailable("connection lost")
}

#[async_trait]
impl Service for RemoteService {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        let link = self.endpoint.link.read().clone();
        let link = &*link;
        if link.is_closed() {
            return Err(lost());
        }
        let id = link.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = link.pending.lock();
            if pending.len() >= link.max_pending {
                return Err(ServiceError::unavailable(format!(
                    "{} calls already wait for this connection (max_pending_calls)",
                    link.max_pending
                )));
            }
            pending.insert(id, tx);
        }
        let _pending = Pending { link, id };
        let mut meta = Map::new();
        meta.insert("instance".into(), self.descriptor.instance.as_str().into());
        meta.insert(
            "correlation_id".into(),
            ctx.correlation_id.to_string().into(),
        );
        if let Some(causation) = ctx.causation_id {
            meta.insert("causation_id".into(), causation.to_string().into());
        }
        if let Some(caller) = &ctx.caller {
            meta.insert("caller".into(), caller.as_str().into());
        }
        if let Some(left) = ctx.remaining() {
            meta.insert(
                "timeout_ms".into(),
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX).into(),
            );
        }
        // The call's headers (a job's `plexus-job-attempt`, …), so a service in
        // another process sees what an in-process one does.
        if !ctx.headers.is_empty() {
            let headers: Map<String, Value> = ctx
                .headers
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect();
            meta.insert("headers".into(), Value::Object(headers));
        }
        let request = json!({
            "jsonrpc": "2.0",
            "id": format!("n-{id}"),
            "method": format!("{}.{method}", self.descriptor.name),
            "params": params,
            "plexus": meta,
        });
        let exchange = async {
            link.out
                .send(Message::Text(request.to_string().into()))
                .await
                .map_err(|_| lost())?;
            rx.await.map_err(|_| lost())
        };
        let response = match ctx.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, exchange)
                .await
                .map_err(|_| ServiceError::Timeout)??,
            None => exchange.await?,
        };
        read_response(method, response)
    }
}

/// A service's JSON-RPC response as the call's outcome.
fn read_response(method: &str, body: ResponseBody) -> Result<Value, ServiceError> {
    let error = match body {
        ResponseBody::Result(result) => return Ok(result),
        ResponseBody::Error(error) => error,
        ResponseBody::Malformed(reason) => {
            return Err(ServiceError::failed(format!(
                "the service's response is not valid JSON-RPC: {reason}"
            )));
        }
    };
    let code = error.get("code").and_then(Value::as_i64);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the service reported an error without a message")
        .to_owned();
    let data = error.get("data").cloned();
    let field = || {
        data.as_ref()
            .and_then(|d| d.get("field"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Err(match code {
        Some(codes::METHOD_NOT_FOUND) => ServiceError::MethodNotFound {
            method: method.to_owned(),
        },
        Some(codes::INVALID_PARAMS) => ServiceError::invalid_params(field(), message),
        Some(codes::UNAVAILABLE) => ServiceError::unavailable(message),
        Some(codes::TIMEOUT) => ServiceError::Timeout,
        // A server error of the reserved range or an internal error: the instance
        // failed (its breaker counts it), whatever `data.retryable` says about a retry.
        Some(code @ (codes::INTERNAL_ERROR | -32099..=-32000)) => ServiceError::Internal {
            message: format!("{message} ({code})"),
            data,
        },
        code => {
            let retryable = data
                .as_ref()
                .and_then(|d| d.get("retryable"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let data = match code.and_then(ServiceCode::new) {
                Some(own) => Some(own.attach(data)),
                None => data,
            };
            ServiceError::Failed {
                message,
                data,
                retryable,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_objects_become_service_errors() {
        let r = |v: Value| {
            let body = match (v.get("result"), v.get("error")) {
                (Some(result), None) => ResponseBody::Result(result.clone()),
                (None, Some(error)) => ResponseBody::Error(error.clone()),
                _ => ResponseBody::Malformed("neither".into()),
            };
            read_response("say", body)
        };
        assert_eq!(r(json!({"result": 3})), Ok(json!(3)));
        assert_eq!(
            r(json!({"error": {"code": -32601, "message": "no"}})),
            Err(ServiceError::MethodNotFound {
                method: "say".into()
            })
        );
        assert_eq!(
            r(json!({"error": {"code": -32602, "message": "bad", "data": {"field": "/text"}}})),
            Err(ServiceError::invalid_params("/text", "bad"))
        );
        assert!(
            r(json!({"error": {"code": -32006, "message": "down"}}))
                .unwrap_err()
                .is_retryable()
        );
        let failed =
            r(json!({"error": {"code": 7, "message": "boom", "data": {"retryable": true}}}));
        assert!(failed.unwrap_err().is_retryable());
        assert!(r(json!({"id": "n-1"})).is_err());
        // A code of the service's own travels with its data; a reserved one does not.
        let Err(ServiceError::Failed { data, .. }) =
            r(json!({"error": {"code": 1001, "message": "no", "data": {"x": 1}}}))
        else {
            panic!("failed");
        };
        let (code, data) = ServiceCode::detach(data.as_ref().unwrap()).unwrap();
        assert_eq!((code.get(), data), (1001, &json!({"x": 1})));
        // A reserved server error or an internal error is a failure of the instance.
        for code in [-32099, -32000, -32603] {
            let Err(ServiceError::Internal { data, .. }) =
                r(json!({"error": {"code": code, "message": "no", "data": {"x": 1}}}))
            else {
                panic!("{code} is not internal");
            };
            assert_eq!(data, Some(json!({"x": 1})));
        }
    }
}
