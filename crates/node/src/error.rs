//! Why a call failed, one variant per cause, each with its JSON-RPC error code.
//!
//! Every front end turns a [`CallError`] into a JSON-RPC error object the same way,
//! through the one `From<CallError> for RpcError` here: [`CallError::code`], its
//! `Display` text as the message and [`CallError::data`] as the structured `data`;
//! `/rpc`, `/ws`, the MCP server and the CLI show the same. The table:
//!
//! | variant | code | `data` |
//! | --- | --- | --- |
//! | [`MethodNotFound`](CallError::MethodNotFound) | -32601 (spec: method not found) | `{method}` |
//! | [`InvalidParams`](CallError::InvalidParams) | -32602 (spec: invalid params) | `{method, field, reason}` |
//! | [`Internal`](CallError::Internal) | -32603 (spec: internal error) | `{message}` |
//! | [`Failed`](CallError::Failed) | -32000, or the service's own code (see [`ServiceCode`]) | `{method, instance, retryable, detail}` |
//! | [`CircuitOpen`](CallError::CircuitOpen) | -32003 | `{service, retry_after_ms}` |
//! | [`Timeout`](CallError::Timeout) | -32004 | `{method, timeout_ms}` |
//! | [`RateLimited`](CallError::RateLimited) | -32005 | `{service, retry_after_ms}` |
//! | [`Unavailable`](CallError::Unavailable) | -32006 | `{service, reason, instances}` |
//! | [`Overloaded`](CallError::Overloaded) | -32007 | `{service, max_concurrent}` |
//! | [`Forbidden`](CallError::Forbidden) | -32002 | `{token, needed}` |
//!
//! The gateway owns the codes that arise before a call exists: -32700 parse error,
//! -32600 invalid request, -32001 unauthorized (missing or wrong token), -32002
//! forbidden (the token lacks the scope), -32008 request too large. They are listed in
//! [`codes`] so that every front end uses the same numbers.
//!
//! A code outside the range the specification reserves (-32768 to -32000) belongs to
//! the service that sent it: an external service answering `1001` is answered to its
//! caller as `1001`. It travels through [`ServiceError::Failed`] attached to the
//! service's data by [`ServiceCode`].

use std::time::Duration;

use plexus_core::ServiceError;
use plexus_jsonrpc::RpcError;
use serde_json::{Map, Value, json};

/// The JSON-RPC error codes Plexus uses, in one place (defined in `plexus-jsonrpc`).
pub use plexus_jsonrpc::codes;

/// Why a call through the node failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No such service, or the service has no such method.
    #[error("method `{method}` not found{}", hint_suffix(.hint))]
    MethodNotFound {
        /// The method as asked for (`service.method`).
        method: String,
        /// What to try instead, if anything.
        hint: Option<String>,
    },
    /// The params do not match the method's schema.
    #[error("invalid params for `{method}`: {}{reason}", field_prefix(.field))]
    InvalidParams {
        /// The method.
        method: String,
        /// The offending field as a JSON pointer (`/user/age`), empty for the whole.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The service answered with an error.
    #[error("`{method}` failed: {message}")]
    Failed {
        /// The method.
        method: String,
        /// The instance that answered, if known.
        instance: Option<String>,
        /// The service's message.
        message: String,
        /// Whether the service said a retry may succeed.
        retryable: bool,
        /// The service's structured detail (with the service's own error code
        /// attached when it sent one: [`ServiceCode::detach`] reads it).
        detail: Option<Value>,
    },
    /// Every instance that could take the call has its breaker open.
    #[error("circuit open for `{service}`{}", retry_suffix(.retry_after))]
    CircuitOpen {
        /// The service.
        service: String,
        /// When a trial call will be allowed, if known.
        retry_after: Option<Duration>,
    },
    /// The deadline passed.
    #[error("`{method}` timed out after {timeout:?}")]
    Timeout {
        /// The method.
        method: String,
        /// The time the call was given.
        timeout: Duration,
    },
    /// The service's rate limit refused the call.
    #[error("rate limited by `{service}`; retry in {retry_after:?}")]
    RateLimited {
        /// The service.
        service: String,
        /// When a call will be admitted again.
        retry_after: Duration,
    },
    /// No instance can take the call.
    #[error("`{service}` is unavailable: {reason}")]
    Unavailable {
        /// The service.
        service: String,
        /// Why, in words.
        reason: String,
        /// Each instance and why it was skipped.
        instances: Vec<(String, String)>,
    },
    /// The service's bulkhead is full.
    #[error("`{service}` is overloaded: {max_concurrent} calls in flight and the queue is full")]
    Overloaded {
        /// The service.
        service: String,
        /// Its concurrency limit.
        max_concurrent: usize,
    },
    /// The caller's scopes do not allow the call (see [`plexus_core::scope`]).
    #[error("forbidden: token `{caller}` lacks scope `{needed}`")]
    Forbidden {
        /// The caller (a token's name).
        caller: String,
        /// The scope the call needed (`call:storage.put`).
        needed: String,
    },
    /// A fault of the node itself.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("`{field}` ")
    }
}

fn retry_suffix(after: &Option<Duration>) -> String {
    after
        .map(|a| format!("; next trial in {a:?}"))
        .unwrap_or_default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl CallError {
    /// The JSON-RPC error code (see the table in the module docs).
    pub fn code(&self) -> i64 {
        match self {
            Self::MethodNotFound { .. } => codes::METHOD_NOT_FOUND,
            Self::InvalidParams { .. } => codes::INVALID_PARAMS,
            Self::Failed {
                detail: Some(detail),
                ..
            } => ServiceCode::detach(detail).map_or(codes::SERVICE_FAILED, |(c, _)| c.get()),
            Self::Failed { .. } => codes::SERVICE_FAILED,
            Self::CircuitOpen { .. } => codes::CIRCUIT_OPEN,
            Self::Timeout { .. } => codes::TIMEOUT,
            Self::RateLimited { .. } => codes::RATE_LIMITED,
            Self::Unavailable { .. } => codes::UNAVAILABLE,
            Self::Overloaded { .. } => codes::OVERLOADED,
            Self::Forbidden { .. } => codes::FORBIDDEN,
            Self::Internal { .. } => codes::INTERNAL_ERROR,
        }
    }

    /// The outcome label used in metrics: `ok` is for successes, every error has one.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::MethodNotFound { .. } => "method_not_found",
            Self::InvalidParams { .. } => "invalid_params",
            Self::Failed { .. } => "failed",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Timeout { .. } => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::Forbidden { .. } => "forbidden",
            Self::Internal { .. } => "internal",
        }
    }

    /// The structured `data` of the JSON-RPC error object.
    pub fn data(&self) -> Value {
        match self {
            Self::MethodNotFound { method, hint } => json!({"method": method, "hint": hint}),
            Self::InvalidParams {
                method,
                field,
                reason,
            } => json!({"method": method, "field": field, "reason": reason}),
            Self::Failed {
                method,
                instance,
                retryable,
                detail,
                ..
            } => {
                let detail = match detail.as_ref().and_then(ServiceCode::detach) {
                    Some((_, data)) => Some(data.clone()),
                    None => detail.clone(),
                };
                json!({"method": method, "instance": instance, "retryable": retryable, "detail": detail})
            }
            Self::CircuitOpen {
                service,
                retry_after,
            } => json!({"service": service, "retry_after_ms": retry_after.map(millis)}),
            Self::Timeout { method, timeout } => {
                json!({"method": method, "timeout_ms": millis(*timeout)})
            }
            Self::RateLimited {
                service,
                retry_after,
            } => json!({"service": service, "retry_after_ms": millis(*retry_after)}),
            Self::Unavailable {
                service,
                reason,
                instances,
            } => json!({
                "service": service,
                "reason": reason,
                "instances": instances
                    .iter()
                    .map(|(id, why)| json!({"instance": id, "reason": why}))
                    .collect::<Vec<_>>(),
            }),
            Self::Overloaded {
                service,
                max_concurrent,
            } => json!({"service": service, "max_concurrent": max_concurrent}),
            Self::Forbidden { caller, needed } => json!({"token": caller, "needed": needed}),
            Self::Internal { message } => json!({"message": message}),
        }
    }

    /// The error as a service would report it, for a caller that is itself a service
    /// (a script, a remote hop).
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::MethodNotFound { method, .. } => ServiceError::MethodNotFound {
                method: method.clone(),
            },
            Self::InvalidParams { field, reason, .. } => {
                ServiceError::invalid_params(field.clone(), reason.clone())
            }
            Self::Timeout { .. } => ServiceError::Timeout,
            Self::Failed {
                message,
                retryable,
                detail,
                ..
            } => ServiceError::Failed {
                message: message.clone(),
                data: detail.clone(),
                retryable: *retryable,
            },
            other => ServiceError::unavailable(other.to_string()),
        }
    }
}

impl From<plexus_core::scope::Forbidden> for CallError {
    fn from(e: plexus_core::scope::Forbidden) -> Self {
        Self::Forbidden {
            caller: e.caller,
            needed: e.needed,
        }
    }
}

impl From<CallError> for RpcError {
    /// The one mapping of a failed call to a JSON-RPC error object, used by `/rpc`,
    /// `/ws` and the MCP server.
    fn from(e: CallError) -> Self {
        Self::from(&e)
    }
}

impl From<&CallError> for RpcError {
    fn from(e: &CallError) -> Self {
        RpcError {
            code: e.code(),
            message: e.to_string(),
            data: Some(e.data()),
            outcome: e.outcome(),
        }
    }
}

/// A service's own JSON-RPC error code: one outside the range the specification
/// reserves ([`codes::RESERVED`]), which reaches the caller unchanged.
///
/// [`ServiceError::Failed`] has no field for a code, so a transport that reads one
/// (the gateway's WebSocket transport for external services) attaches it to the
/// service's `data` with [`attach`](Self::attach): `{"plexus.service_code": 1001,
/// "plexus.service_data": <the service's data>}`. [`CallError::code`] and
/// [`CallError::data`] take it apart again, so the caller sees code 1001 and the
/// service's own data as `detail`; [`CallError::to_service_error`] keeps it attached,
/// so it survives another hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCode(i64);

impl ServiceCode {
    const CODE: &'static str = "plexus.service_code";
    const DATA: &'static str = "plexus.service_data";

    /// `code` as a service's own; `None` for a reserved code (those have meanings
    /// the transport maps).
    pub fn new(code: i64) -> Option<Self> {
        (!codes::is_reserved(code)).then_some(Self(code))
    }

    /// The code.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The service's `data` with this code attached, for [`ServiceError::Failed`].
    pub fn attach(self, data: Option<Value>) -> Value {
        let mut carrier = Map::with_capacity(2);
        carrier.insert(Self::CODE.into(), self.0.into());
        carrier.insert(Self::DATA.into(), data.unwrap_or(Value::Null));
        Value::Object(carrier)
    }

    /// The code and the service's own data, when `detail` carries them.
    pub fn detach(detail: &Value) -> Option<(Self, &Value)> {
        let carrier = detail.as_object().filter(|o| o.len() == 2)?;
        let code = carrier.get(Self::CODE)?.as_i64().and_then(Self::new)?;
        Some((code, carrier.get(Self::DATA)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_code_and_outcome() {
        let all = [
            CallError::MethodNotFound {
                method: "a.b".into(),
                hint: None,
            },
            CallError::InvalidParams {
                method: "a.b".into(),
                field: "/x".into(),
                reason: "r".into(),
            },
            CallError::Failed {
                method: "a.b".into(),
                instance: None,
                message: "m".into(),
                retryable: false,
                detail: None,
            },
            CallError::CircuitOpen {
                service: "a".into(),
                retry_after: None,
            },
            CallError::Timeout {
                method: "a.b".into(),
                timeout: Duration::from_secs(1),
            },
            CallError::RateLimited {
                service: "a".into(),
                retry_after: Duration::from_secs(1),
            },
            CallError::Unavailable {
                service: "a".into(),
                reason: "r".into(),
                instances: vec![],
            },
            CallError::Overloaded {
                service: "a".into(),
                max_concurrent: 1,
            },
            CallError::Internal {
                message: "m".into(),
            },
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(CallError::code).collect();
        let outcomes: std::collections::BTreeSet<_> = all.iter().map(CallError::outcome).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(outcomes.len(), all.len());
        assert_eq!(all[1].to_string(), "invalid params for `a.b`: `/x` r");
        assert_eq!(all[1].data()["field"], "/x");
    }

    #[test]
    fn a_service_code_outside_the_reserved_range_is_the_callers_code() {
        let failed = |detail| CallError::Failed {
            method: "calc.add".into(),
            instance: Some("calc-1".into()),
            message: "boom".into(),
            retryable: false,
            detail,
        };
        let code = ServiceCode::new(1001).unwrap();
        let own = failed(Some(code.attach(Some(json!({"x": 1})))));
        let rpc = RpcError::from(&own);
        assert_eq!(rpc.code, 1001);
        assert_eq!(rpc.data.unwrap()["detail"], json!({"x": 1}));
        assert_eq!(rpc.outcome, "failed");
        assert!(ServiceCode::new(-32099).is_none());
        assert_eq!(failed(Some(json!({"x": 1}))).code(), codes::SERVICE_FAILED);
        assert_eq!(failed(None).code(), codes::SERVICE_FAILED);
        // Another hop keeps it.
        let ServiceError::Failed { data, .. } = own.to_service_error() else {
            panic!("failed");
        };
        assert_eq!(ServiceCode::detach(&data.unwrap()).unwrap().0.get(), 1001);
    }
}
