//! [`RpcError`]: a JSON-RPC error object, with the metrics outcome it counts as.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::codes;

/// A JSON-RPC error object (`code`, `message`, `data`) and the `outcome` label it
/// is counted under in metrics.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} (JSON-RPC error {code})")]
pub struct RpcError {
    /// The code (see [`codes`]).
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Structured detail.
    pub data: Option<Value>,
    /// The `outcome` label it is counted under.
    pub outcome: &'static str,
}

impl RpcError {
    /// An error with `code` and `message`, counted as `outcome`.
    pub fn new(code: i64, message: impl Into<String>, outcome: &'static str) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
            outcome,
        }
    }

    /// Adds `data`.
    #[must_use]
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

    /// -32008: `what` is larger than `limit` bytes.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            codes::TOO_LARGE,
            format!("{what} is larger than the limit of {limit} bytes"),
            "too_large",
        )
        .with_data(json!({"limit_bytes": limit}))
    }

    /// -32603: a fault of the server itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message, "internal")
    }

    /// The error object as a JSON value.
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

impl Serialize for RpcError {
    /// The error object: `code`, `message`, and `data` when there is any.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + usize::from(self.data.is_some())))?;
        map.serialize_entry("code", &self.code)?;
        map.serialize_entry("message", &self.message)?;
        if let Some(data) = &self.data {
            map.serialize_entry("data", data)?;
        }
        map.end()
    }
}
