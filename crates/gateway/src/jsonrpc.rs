//! JSON-RPC 2.0 framing: decoding requests (single and batch), encoding responses,
//! and the error objects, shared by `/rpc` and `/ws`.
//!
//! The rules of the specification (<https://www.jsonrpc.org/specification>):
//! - text that is not JSON gets one `-32700 Parse error` with `id: null`;
//! - anything that is not a request object (wrong `jsonrpc`, no string `method`,
//!   `params` neither array nor object, an `id` that is not a string, number or null)
//!   gets `-32600 Invalid Request`, with the request's `id` when it could be read and
//!   `null` otherwise;
//! - a request without `id` is a notification: it runs, and nothing is answered;
//! - a batch is answered with an array of the responses in request order,
//!   notifications left out; a batch of notifications only is answered with nothing;
//!   an empty batch gets one `-32600` (not an array).
//!
//! Plexus adds: a batch larger than the configured `max_batch` gets one `-32600`
//! naming the limit; every error object carries `data` with detail.

use std::future::Future;

use futures::future::join_all;
use plexus_node::{CallError, codes};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::auth::{AuthFailure, Forbidden};

/// One valid request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `None` for a notification (no answer).
    pub id: Option<Value>,
    /// The method, such as `storage.get` or `plexus.publish`.
    pub method: String,
    /// The params, `Value::Null` when absent.
    pub params: Value,
}

/// A JSON-RPC error object, with the metrics outcome it counts as.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// The code (see `plexus_node::codes`).
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Structured detail.
    pub data: Option<Value>,
    /// The `outcome` label it is counted under.
    pub outcome: &'static str,
}

impl RpcError {
    /// An error of the specification or the gateway.
    pub fn new(code: i64, message: impl Into<String>, outcome: &'static str) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
            outcome,
        }
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// -32700, with what the JSON parser said.
    pub fn parse_error(reason: impl Into<String>) -> Self {
        Self::new(codes::PARSE_ERROR, "Parse error", "parse_error")
            .with_data(json!({"reason": reason.into()}))
    }

    /// -32600, with why the request is invalid.
    pub fn invalid_request(reason: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, "Invalid Request", "invalid_request")
            .with_data(json!({"reason": reason.into()}))
    }

    /// -32602 for a method of the gateway's own (`plexus.*`).
    pub fn invalid_params(method: &str, field: &str, reason: impl Into<String>) -> Self {
        Self::from(CallError::InvalidParams {
            method: method.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        })
    }

    /// -32601 for a method the gateway does not know.
    pub fn method_not_found(method: &str, hint: impl Into<String>) -> Self {
        Self::from(CallError::MethodNotFound {
            method: method.to_owned(),
            hint: Some(hint.into()),
        })
    }

    /// -32008: the request is larger than `limit` bytes.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            codes::TOO_LARGE,
            format!("{what} is larger than the limit of {limit} bytes"),
            "too_large",
        )
        .with_data(json!({"limit_bytes": limit}))
    }

    /// The error as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut error = Map::with_capacity(3);
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            error.insert("data".into(), data.clone());
        }
        Value::Object(error)
    }
}

impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            data: Some(e.data()),
            outcome: e.outcome(),
        }
    }
}

impl From<Forbidden> for RpcError {
    fn from(e: Forbidden) -> Self {
        Self::new(codes::FORBIDDEN, e.to_string(), "forbidden")
            .with_data(json!({"token": e.caller, "needed": e.needed}))
    }
}

impl From<AuthFailure> for RpcError {
    fn from(e: AuthFailure) -> Self {
        Self::new(codes::UNAUTHORIZED, e.to_string(), "unauthorized")
            .with_data(json!({"reason": e.reason()}))
    }
}

#[derive(Serialize)]
struct Success<'a> {
    jsonrpc: &'static str,
    result: &'a Value,
    id: &'a Value,
}

#[derive(Serialize)]
struct Failure<'a> {
    jsonrpc: &'static str,
    error: Value,
    id: &'a Value,
}

/// A response as a JSON value.
pub fn response(id: &Value, outcome: &Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err(e) => json!({"jsonrpc": "2.0", "error": e.to_value(), "id": id}),
    }
}

/// A response encoded as JSON text.
pub fn encode(id: &Value, outcome: &Result<Value, RpcError>) -> Vec<u8> {
    let written = match outcome {
        Ok(result) => serde_json::to_vec(&Success {
            jsonrpc: "2.0",
            result,
            id,
        }),
        Err(e) => serde_json::to_vec(&Failure {
            jsonrpc: "2.0",
            error: e.to_value(),
            id,
        }),
    };
    // Values built by serde_json always serialize.
    written.unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"encoding failed"},"id":null}"#
            .to_vec()
    })
}

/// An error response to a request whose id is unknown.
pub fn error_body(error: &RpcError) -> Vec<u8> {
    encode(&Value::Null, &Err(error.clone()))
}

/// Reads one element of a request (or batch) as a request.
pub fn parse_request(value: Value) -> Result<Request, (Value, RpcError)> {
    let Value::Object(mut object) = value else {
        return Err((
            Value::Null,
            RpcError::invalid_request("a request must be a JSON object"),
        ));
    };
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("`id` must be a string, a number or null"),
            ));
        }
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    let invalid = |reason: &str| Err((answer_id.clone(), RpcError::invalid_request(reason)));
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return invalid("`jsonrpc` must be exactly \"2.0\""),
    }
    let method = match object.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return invalid("`method` must be a string"),
        None => return invalid("`method` is missing"),
    };
    let params = match object.remove("params") {
        None => Value::Null,
        Some(p @ (Value::Array(_) | Value::Object(_))) => p,
        Some(_) => return invalid("`params` must be an array or an object"),
    };
    Ok(Request { id, method, params })
}

/// What a payload turned out to be.
pub enum Payload {
    /// One element (valid or not).
    Single(Result<Request, (Value, RpcError)>),
    /// A batch of elements.
    Batch(Vec<Result<Request, (Value, RpcError)>>),
    /// An answer that is final before anything runs: parse error, empty or oversized
    /// batch.
    Refused(RpcError),
}

/// Decodes a payload, holding batches to `max_batch` elements.
pub fn decode(bytes: &[u8], max_batch: usize) -> Payload {
    match serde_json::from_slice(bytes) {
        Ok(value) => classify(value, max_batch),
        Err(e) => Payload::Refused(RpcError::parse_error(e.to_string())),
    }
}

/// Sorts parsed JSON into a single request, a batch, or a refusal.
pub fn classify(value: Value, max_batch: usize) -> Payload {
    match value {
        Value::Array(items) if items.is_empty() => {
            Payload::Refused(RpcError::invalid_request("a batch must not be empty"))
        }
        Value::Array(items) if items.len() > max_batch => Payload::Refused(
            RpcError::invalid_request(format!(
                "a batch holds at most {max_batch} requests; this one has {}",
                items.len()
            ))
            .with_data(json!({
                "reason": format!("a batch holds at most {max_batch} requests"),
                "max_batch": max_batch,
                "batch": items.len(),
            })),
        ),
        Value::Array(items) => Payload::Batch(items.into_iter().map(parse_request).collect()),
        single => Payload::Single(parse_request(single)),
    }
}

/// Runs a decoded payload: every valid request through `run` (a batch's requests
/// concurrently), counting each outcome with `count`. Returns the JSON text to send,
/// or `None` when nothing is to be answered (notifications only).
pub async fn execute<F, Fut>(
    payload: Payload,
    run: F,
    count: impl Fn(&'static str),
) -> Option<Vec<u8>>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Value, RpcError>>,
{
    let one = |element: Result<Request, (Value, RpcError)>| {
        let run = &run;
        let count = &count;
        async move {
            match element {
                Ok(request) => {
                    let id = request.id.clone();
                    let outcome = run(request).await;
                    count(match &outcome {
                        Ok(_) => "ok",
                        Err(e) => e.outcome,
                    });
                    id.map(|id| (id, outcome))
                }
                Err((id, error)) => {
                    count(error.outcome);
                    Some((id, Err(error)))
                }
            }
        }
    };
    match payload {
        Payload::Refused(error) => {
            count(error.outcome);
            Some(error_body(&error))
        }
        Payload::Single(element) => one(element).await.map(|(id, r)| encode(&id, &r)),
        Payload::Batch(elements) => {
            let answers: Vec<Value> = join_all(elements.into_iter().map(one))
                .await
                .into_iter()
                .flatten()
                .map(|(id, r)| response(&id, &r))
                .collect();
            if answers.is_empty() {
                return None;
            }
            Some(serde_json::to_vec(&answers).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let ok = parse_request(json!({"jsonrpc": "2.0", "method": "a.b", "params": [1], "id": 3}))
            .unwrap();
        assert_eq!(ok.id, Some(json!(3)));
        let note = parse_request(json!({"jsonrpc": "2.0", "method": "a.b"})).unwrap();
        assert_eq!((note.id, note.params), (None, Value::Null));
        let cases = [
            (json!({"jsonrpc": "1.0", "method": "a", "id": 1}), json!(1)),
            (
                json!({"jsonrpc": "2.0", "method": 1, "id": "x"}),
                json!("x"),
            ),
            (json!({"jsonrpc": "2.0", "id": 2}), json!(2)),
            (
                json!({"jsonrpc": "2.0", "method": "a", "params": 3, "id": 4}),
                json!(4),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "a", "id": {}}),
                Value::Null,
            ),
            (json!(7), Value::Null),
        ];
        for (input, id) in cases {
            let (got, error) = parse_request(input.clone()).unwrap_err();
            assert_eq!(got, id, "{input}");
            assert_eq!(error.code, codes::INVALID_REQUEST, "{input}");
        }
    }

    #[test]
    fn oversized_and_empty_batches_are_refused_whole() {
        assert!(
            matches!(decode(b"[]", 2), Payload::Refused(e) if e.code == codes::INVALID_REQUEST)
        );
        let three = br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"}]"#;
        assert!(
            matches!(decode(three, 2), Payload::Refused(e) if e.data.as_ref().unwrap()["max_batch"] == 2)
        );
        assert!(matches!(decode(b"{", 2), Payload::Refused(e) if e.code == codes::PARSE_ERROR));
    }
}
