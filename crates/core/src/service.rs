//! The contract between a node and a service that runs inside it.
//!
//! A Rust program implements [`Service`]: it describes itself, starts, stops, answers
//! method calls and, if it can tell, reports its own health. The node registers it,
//! watches it, restarts it under a supervisor and routes calls to it through the call
//! path. Services in other languages speak the same contract over a WebSocket.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::{CorrelationId, EventId, Headers, ServiceDescriptor};
use strum::{Display as StrumDisplay, IntoStaticStr};

/// What a [`Service`] call answers: a JSON result, or a typed error.
pub type CallResult = Result<Value, ServiceError>;

/// A service that runs in process.
///
/// Every method but [`descriptor`](Self::descriptor) and [`call`](Self::call) has a
/// default: starting and stopping do nothing, and a service that does not check itself
/// is healthy while it runs.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// What the service is and which methods it answers.
    fn descriptor(&self) -> ServiceDescriptor;

    /// Gets ready to serve: open connections, spawn tasks. Called again after a
    /// restart.
    async fn start(&self) -> Result<(), ServiceError> {
        Ok(())
    }

    /// Stops serving and releases what `start` took.
    async fn stop(&self) -> Result<(), ServiceError> {
        Ok(())
    }

    /// Answers one call of `method`. `params` were checked against the method's schema
    /// before this is called.
    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult;

    /// Reports the service's own view of its health. An `Err` means the check itself
    /// could not run, which the health policy treats apart from an `Unhealthy` report.
    async fn health(&self) -> Result<HealthReport, ServiceError> {
        Ok(HealthReport::healthy())
    }
}

/// What travels with a call: who asked, on whose behalf, and by when.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// Ties the call to the request, event or conversation it is part of.
    pub correlation_id: CorrelationId,
    /// The event that caused the call, if one did.
    pub causation_id: Option<EventId>,
    /// The instant after which the result is no longer wanted.
    pub deadline: Option<Instant>,
    /// The authenticated caller (a token's name), if any.
    pub caller: Option<String>,
    /// What the caller may do, when it was authenticated: the node refuses a call
    /// its `call:` scopes do not allow, and a service acting for it (a script, a
    /// program) passes this on. `None` is unrestricted: a call from inside the
    /// process, or through a gateway with auth off.
    pub scopes: Option<std::sync::Arc<[crate::scope::Scope]>>,
    /// Free text metadata.
    pub headers: Headers,
    /// 1 on the first attempt, 2 on the first retry, and so on.
    pub attempt: u32,
}

impl CallContext {
    /// A context with a new correlation id and no deadline.
    pub fn new() -> Self {
        Self {
            correlation_id: CorrelationId::new(),
            causation_id: None,
            deadline: None,
            caller: None,
            scopes: None,
            headers: Headers::new(),
            attempt: 1,
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: CorrelationId) -> Self {
        self.correlation_id = id;
        self
    }

    /// Sets the deadline to `timeout` from now (tokio's clock, so paused time applies).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Instant::now() + timeout);
        self
    }

    /// Sets the deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the caller.
    pub fn with_caller(mut self, caller: impl Into<String>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// Acts for `caller`: its name and, when it was authenticated, its scopes (an
    /// open caller, auth off, leaves the call unrestricted).
    pub fn acting_for(mut self, caller: &crate::scope::Caller) -> Self {
        if let Some(name) = caller.name() {
            self.caller = Some(name.to_owned());
            self.scopes = Some(caller.scopes().clone());
        }
        self
    }

    /// `Ok` when the caller's scopes allow `need` (always, when unrestricted), else
    /// the refusal naming the scope it lacks.
    pub fn check(&self, need: crate::scope::Need<'_>) -> Result<(), crate::scope::Forbidden> {
        let Some(scopes) = &self.scopes else {
            return Ok(());
        };
        if scopes.iter().any(|s| s.allows(need)) {
            return Ok(());
        }
        Err(crate::scope::Forbidden {
            caller: self
                .caller
                .clone()
                .unwrap_or_else(|| "anonymous".to_owned()),
            needed: need.to_string(),
        })
    }

    /// Time left before the deadline; `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

impl Default for CallContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a service could not answer a call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The service has no such method.
    #[error("method `{method}` not found")]
    MethodNotFound {
        /// The method asked for.
        method: String,
    },
    /// The params were not acceptable.
    #[error("invalid params: `{field}` {reason}")]
    InvalidParams {
        /// The offending field as a JSON pointer (`/user/age`), or empty for the whole.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The service cannot serve now (a dependency is down, it is stopping); worth a
    /// retry elsewhere or later.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The service ran out of time.
    #[error("timed out")]
    Timeout,
    /// The service failed inside (an external service's reserved server error
    /// -32000 to -32099 or internal error -32603, a crash while answering): unlike
    /// [`Failed`](Self::Failed), a failure of the instance rather than an answer,
    /// which its circuit breaker counts.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// Structured detail for the caller.
        data: Option<Value>,
    },
    /// The caller's scopes do not allow what the call asked for (a service that
    /// checks a scope of its own, as `plexus.publish` checks `publish:`).
    #[error("{0}")]
    Forbidden(crate::scope::Forbidden),
    /// The call failed for a reason of the service's own.
    #[error("{message}")]
    Failed {
        /// What went wrong, for the caller.
        message: String,
        /// Structured detail for the caller.
        data: Option<Value>,
        /// Whether the same call may succeed if tried again.
        retryable: bool,
    },
}

impl ServiceError {
    /// A failure that is not worth retrying.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            data: None,
            retryable: false,
        }
    }

    /// A transient failure: a retry may succeed.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            data: None,
            retryable: true,
        }
    }

    /// The service is unavailable.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
        }
    }

    /// Invalid params, naming the field.
    pub fn invalid_params(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParams {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether trying again (here or on another instance) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Timeout => true,
            Self::Failed { retryable, .. } => *retryable,
            Self::MethodNotFound { .. }
            | Self::InvalidParams { .. }
            | Self::Internal { .. }
            | Self::Forbidden(_) => false,
        }
    }
}

/// A component's own view of its health.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Working.
    Healthy,
    /// Working with reduced capacity or quality.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthState {
    /// The state as lower-case text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a health check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The state.
    pub state: HealthState,
    /// Detail for people: what is wrong, or what was checked.
    #[serde(default)]
    pub detail: String,
}

impl HealthReport {
    /// Healthy, with no detail.
    pub fn healthy() -> Self {
        Self {
            state: HealthState::Healthy,
            detail: String::new(),
        }
    }

    /// Degraded, with why.
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self {
            state: HealthState::Degraded,
            detail: detail.into(),
        }
    }

    /// Unhealthy, with why.
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        Self {
            state: HealthState::Unhealthy,
            detail: detail.into(),
        }
    }
}
