//! [`ScriptError`]: why a script did not run to its end, where in its source, and
//! how a caller of the `script` service sees it.
//!
//! | error | caller sees | `data.kind` |
//! | --- | --- | --- |
//! | [`Compile`](ScriptError::Compile) | invalid params naming `/source` (or `/name`), with line:column | |
//! | [`Runtime`](ScriptError::Runtime) | failed, not retryable | `runtime` |
//! | [`Limit`](ScriptError::Limit) | failed, not retryable | `limit` (and `limit`: which) |
//! | [`Call`](ScriptError::Call) | forbidden when the caller's scopes refused it, else failed | `call` |
//! | [`NotFound`](ScriptError::NotFound) | invalid params naming `/name` | |
//! | [`Overloaded`](ScriptError::Overloaded) | failed, not retryable (a later try may succeed) | `overloaded` |
//! | [`Cancelled`](ScriptError::Cancelled) | failed, not retryable | `cancelled` |
//! | [`Unavailable`](ScriptError::Unavailable) | unavailable | |
//! | [`Store`](ScriptError::Store) | the DataStore's own error | |
//! | [`Internal`](ScriptError::Internal) | internal error | |
//!
//! Every failure of the script itself is a non-retryable `Failed`: an answer, not a
//! fault of the `script` instance, so bad scripts never open its circuit breaker.
//! An overloaded pool is not marked retryable either, so that a burst past it does
//! not open the breaker and refuse every script for its wait; `data.kind` says
//! `overloaded`, and a later try may succeed.
//! `data` holds `line` and `column` (1-based; null when rhai gives none).

use std::fmt;

use plexus_core::ServiceError;
use plexus_core::scope::Forbidden;
use plexus_node::CallError;
use serde_json::{Value, json};

/// A bound a run went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// `max_operations`.
    Operations,
    /// `max_call_levels`.
    CallLevels,
    /// `max_expr_depth` / `max_function_expr_depth`.
    ExprDepth,
    /// `max_string_bytes`.
    StringSize,
    /// `max_array_items`.
    ArraySize,
    /// `max_map_entries`.
    MapSize,
    /// `max_variables`.
    Variables,
    /// `max_functions`.
    Functions,
    /// `max_duration_ms`, or the caller's deadline.
    Duration,
    /// `max_calls`.
    Calls,
    /// `max_result_bytes`.
    ResultSize,
    /// `max_source_bytes`.
    SourceSize,
}

impl Limit {
    /// Its name in errors and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operations => "operations",
            Self::CallLevels => "call_levels",
            Self::ExprDepth => "expr_depth",
            Self::StringSize => "string_size",
            Self::ArraySize => "array_size",
            Self::MapSize => "map_size",
            Self::Variables => "variables",
            Self::Functions => "functions",
            Self::Duration => "duration",
            Self::Calls => "calls",
            Self::ResultSize => "result_size",
            Self::SourceSize => "source_size",
        }
    }
}

/// Where in the source: 1-based line and column, when known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct At {
    /// The line.
    pub line: Option<usize>,
    /// The column.
    pub column: Option<usize>,
}

impl At {
    /// Where rhai says.
    pub fn of(pos: rhai::Position) -> Self {
        Self {
            line: pos.line(),
            column: pos.position(),
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " at {l}:{c}"),
            (Some(l), None) => write!(f, " at line {l}"),
            _ => Ok(()),
        }
    }
}

/// Why a script did not run to its end.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The source does not compile (a syntax error, a disabled keyword such as
    /// `eval` or `import`, an expression nested too deep).
    #[error("syntax error{at}: {message}")]
    Compile {
        /// The param that held the source: `/source`, or `/name` for a stored one.
        field: &'static str,
        /// Where.
        at: At,
        /// What rhai said.
        message: String,
    },
    /// The script failed while running (a `throw`, a type mismatch, an unknown
    /// function or variable).
    #[error("runtime error{at}: {message}")]
    Runtime {
        /// Where.
        at: At,
        /// What rhai said.
        message: String,
    },
    /// The script went over one of its limits.
    #[error("script over its {} limit{at}: {message}", limit.as_str())]
    Limit {
        /// Which.
        limit: Limit,
        /// Where.
        at: At,
        /// What was over it.
        message: String,
    },
    /// A host `call` (or `publish`) failed and the script did not catch it.
    #[error("`{method}` called{at} failed: {error}")]
    Call {
        /// The method called.
        method: String,
        /// Where.
        at: At,
        /// Why, as the call path said.
        error: Box<CallError>,
    },
    /// No stored script has this name.
    #[error("no stored script `{name}`")]
    NotFound {
        /// The name.
        name: String,
    },
    /// Every thread of the pool is busy and the queue is full.
    #[error("overloaded: {max_concurrent} scripts running and {max_queued} waiting")]
    Overloaded {
        /// `script.max_concurrent`.
        max_concurrent: usize,
        /// `script.max_queued`.
        max_queued: usize,
    },
    /// The caller went away before the script ended; it was stopped.
    #[error("cancelled: the caller went away")]
    Cancelled,
    /// The service cannot run scripts now (not attached to a running node, the pool
    /// is gone).
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// Reading or writing a stored script failed.
    #[error("stored scripts: {0}")]
    Store(ServiceError),
    /// The VM failed inside (a panic caught on the pool thread).
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

impl ScriptError {
    /// The `outcome` label of `plexus_script_runs_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Compile { .. } => "compile_error",
            Self::Runtime { .. } => "runtime_error",
            Self::Limit { .. } => "limit",
            Self::Call { .. } => "call_failed",
            Self::NotFound { .. } => "not_found",
            Self::Overloaded { .. } => "overloaded",
            Self::Cancelled => "cancelled",
            Self::Unavailable { .. } | Self::Store(_) => "unavailable",
            Self::Internal { .. } => "internal",
        }
    }

    /// The limit it went over, if that is why.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Self::Limit { limit, .. } => Some(*limit),
            _ => None,
        }
    }

    /// Where in the source, when it is about a place.
    fn at(&self) -> At {
        match self {
            Self::Compile { at, .. }
            | Self::Runtime { at, .. }
            | Self::Limit { at, .. }
            | Self::Call { at, .. } => *at,
            _ => At::default(),
        }
    }

    /// The structured `data` of the failure (`kind`, `line`, `column`, …).
    fn data(&self) -> Value {
        let at = self.at();
        let mut data = json!({"line": at.line, "column": at.column});
        let extra = match self {
            Self::Runtime { .. } => json!({"kind": "runtime"}),
            Self::Limit { limit, .. } => json!({"kind": "limit", "limit": limit.as_str()}),
            Self::Call { method, error, .. } => json!({
                "kind": "call",
                "method": method,
                "code": error.code(),
                "error": error.data(),
            }),
            Self::Overloaded {
                max_concurrent,
                max_queued,
            } => json!({
                "kind": "overloaded",
                "max_concurrent": max_concurrent,
                "max_queued": max_queued,
            }),
            Self::Cancelled => json!({"kind": "cancelled"}),
            _ => json!({}),
        };
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        data
    }

    /// The service error a caller of the `script` service sees, with `extra` (the
    /// operations used, the output captured) added to its `data`.
    pub fn to_service_error_with(&self, extra: serde_json::Map<String, Value>) -> ServiceError {
        let failed = || {
            let mut data = self.data();
            if let Some(map) = data.as_object_mut() {
                map.extend(extra.clone());
            }
            ServiceError::Failed {
                message: self.to_string(),
                data: Some(data),
                retryable: false,
            }
        };
        match self {
            Self::Compile { field, at, message } => {
                ServiceError::invalid_params(*field, format!("syntax error{at}: {message}"))
            }
            Self::NotFound { .. } => ServiceError::invalid_params("/name", self.to_string()),
            Self::Call { error, .. } => match &**error {
                CallError::Forbidden { caller, needed } => ServiceError::Forbidden(Forbidden {
                    caller: caller.clone(),
                    needed: needed.clone(),
                }),
                _ => failed(),
            },
            Self::Runtime { .. }
            | Self::Limit { .. }
            | Self::Overloaded { .. }
            | Self::Cancelled => failed(),
            Self::Unavailable { reason } => ServiceError::unavailable(reason.clone()),
            Self::Store(e) => e.clone(),
            Self::Internal { message } => ServiceError::Internal {
                message: message.clone(),
                data: None,
            },
        }
    }
}

impl From<ScriptError> for ServiceError {
    fn from(e: ScriptError) -> Self {
        e.to_service_error_with(serde_json::Map::new())
    }
}
