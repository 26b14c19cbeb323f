//! Why a call failed, one variant per cause, each with its JSON-RPC error code.
//!
//! The gateway turns a [`CallError`] into a JSON-RPC error object with
//! [`CallError::code`], its `Display` text as the message and [`CallError::data`] as
//! the structured `data`; the MCP server and the CLI show the same. The table:
//!
//! | variant | code | `data` |
//! | --- | --- | --- |
//! | [`MethodNotFound`](CallError::MethodNotFound) | -32601 (spec: method not found) | `{method}` |
//! | [`InvalidParams`](CallError::InvalidParams) | -32602 (spec: invalid params) | `{method, field, reason}` |
//! | [`Internal`](CallError::Internal) | -32603 (spec: internal error) | `{message}` |
//! | [`Failed`](CallError::Failed) | -32000 | `{method, instance, retryable, detail}` |
//! | [`CircuitOpen`](CallError::CircuitOpen) | -32003 | `{service, retry_after_ms}` |
//! | [`Timeout`](CallError::Timeout) | -32004 | `{method, timeout_ms}` |
//! | [`RateLimited`](CallError::RateLimited) | -32005 | `{service, retry_after_ms}` |
//! | [`Unavailable`](CallError::Unavailable) | -32006 | `{service, reason, instances}` |
//! | [`Overloaded`](CallError::Overloaded) | -32007 | `{service, max_concurrent}` |
//!
//! The gateway owns the codes that arise before a call exists: -32700 parse error,
//! -32600 invalid request, -32001 unauthorized (missing or wrong token), -32002
//! forbidden (the token lacks the scope), -32008 request too large. They are listed in
//! [`codes`] so that every front end uses the same numbers.

use std::time::Duration;

use plexus_core::ServiceError;
use serde_json::{Value, json};

/// The JSON-RPC error codes Plexus uses, in one place.
pub mod codes {
    /// Invalid JSON was received (JSON-RPC 2.0).
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object (JSON-RPC 2.0).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist (JSON-RPC 2.0).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters (JSON-RPC 2.0).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error (JSON-RPC 2.0).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The service answered with an error of its own.
    pub const SERVICE_FAILED: i64 = -32000;
    /// No token, or a token the node does not know.
    pub const UNAUTHORIZED: i64 = -32001;
    /// The token lacks the scope the request needs.
    pub const FORBIDDEN: i64 = -32002;
    /// Every instance's circuit breaker is open.
    pub const CIRCUIT_OPEN: i64 = -32003;
    /// The deadline passed before an answer came.
    pub const TIMEOUT: i64 = -32004;
    /// The service's rate limit refused the call.
    pub const RATE_LIMITED: i64 = -32005;
    /// No instance can take the call (none registered, all unhealthy, or down).
    pub const UNAVAILABLE: i64 = -32006;
    /// The service's bulkhead is full.
    pub const OVERLOADED: i64 = -32007;
    /// The request is larger than the configured limit.
    pub const TOO_LARGE: i64 = -32008;
}

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
        /// The service's structured detail.
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
            Self::Failed { .. } => codes::SERVICE_FAILED,
            Self::CircuitOpen { .. } => codes::CIRCUIT_OPEN,
            Self::Timeout { .. } => codes::TIMEOUT,
            Self::RateLimited { .. } => codes::RATE_LIMITED,
            Self::Unavailable { .. } => codes::UNAVAILABLE,
            Self::Overloaded { .. } => codes::OVERLOADED,
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
}
