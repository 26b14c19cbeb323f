//! The errors: [`ProviderError`] (what one request to one deployment ended in) and
//! [`InferenceError`] (what a caller of the engine is told), with the one mapping
//! of each to a service error and to an OpenAI-style HTTP error.

use std::time::Duration;

use plexus_core::ServiceError;
use serde_json::{Value, json};

/// What one request to a provider ended in, when it was not an answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider answered with an error status.
    #[error("status {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// What `Retry-After` (or `retry-after-ms`) asked for, if anything.
        retry_after: Option<Duration>,
        /// The provider's message (its error body, shortened).
        message: String,
    },
    /// The connection failed or dropped (also mid-stream).
    #[error("connection: {0}")]
    Connection(String),
    /// No answer (or no next chunk) within the time allowed.
    #[error("timed out")]
    Timeout,
    /// An answer that is not what the wire format says, or larger than allowed.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The provider reported an error inside a stream it had begun with 200
    /// (Anthropic's `event: error`, an OpenAI `{"error": …}` chunk).
    #[error("error in stream: {0}")]
    InStream(String),
}

impl ProviderError {
    /// Whether the same request may succeed later on the same deployment.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Connection(_) | Self::Timeout | Self::InStream(_) => true,
            Self::Malformed(_) => false,
        }
    }

    /// Whether the request itself was refused (a 4xx other than 401, 403, 404, 408 and
    /// 429): no other deployment would take it either, so it goes back to the caller.
    pub fn is_caller_fault(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if (400..500).contains(status) && ![401, 403, 404, 408, 429].contains(status))
    }

    /// The wait the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Why the engine could not answer a chat or models request.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The request is not acceptable; `field` is a JSON pointer (`/messages`).
    #[error("invalid request: `{field}` {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No alias, deployment or provider model of that name.
    #[error("unknown model `{model}`")]
    UnknownModel {
        /// The model asked for.
        model: String,
    },
    /// The caller's token has spent its budget.
    #[error("budget exceeded: `{caller}` has spent {spent_usd:.6} of {budget_usd:.6} USD")]
    BudgetExceeded {
        /// The token's name.
        caller: String,
        /// Its budget.
        budget_usd: f64,
        /// What it has spent.
        spent_usd: f64,
    },
    /// A provider refused the request itself (a 400): another would too.
    #[error("`{deployment}` refused the request: {source}")]
    Refused {
        /// The deployment (`provider/model`).
        deployment: String,
        /// The provider's answer.
        source: ProviderError,
    },
    /// Every deployment failed, was open, or kept asking to wait too long.
    #[error("no deployment of `{model}` answered: {}", attempts.join("; "))]
    Exhausted {
        /// The model or alias.
        model: String,
        /// What each deployment did, in order.
        attempts: Vec<String>,
    },
    /// A stream failed after its first content: the answer is incomplete.
    #[error("stream from `{deployment}` failed after it began: {source}")]
    MidStream {
        /// The deployment (`provider/model`).
        deployment: String,
        /// What went wrong.
        source: ProviderError,
    },
}

impl InferenceError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// A short code for the error (the OpenAI body's `code`, the service error's
    /// `data.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_request",
            Self::UnknownModel { .. } => "model_not_found",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Refused { .. } => "provider_refused",
            Self::Exhausted { .. } => "no_deployment_available",
            Self::MidStream { .. } => "stream_failed",
        }
    }

    /// The HTTP status of the OpenAI-compatible endpoint for it.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::UnknownModel { .. } => 404,
            Self::BudgetExceeded { .. } => 429,
            Self::Refused { source, .. } => match source {
                ProviderError::Status { status, .. } => *status,
                _ => 502,
            },
            Self::Exhausted { .. } => 503,
            Self::MidStream { .. } => 502,
        }
    }

    /// The OpenAI error body: `{"error": {message, type, code, param}}`.
    pub fn openai_body(&self) -> Value {
        let kind = match self {
            Self::Invalid { .. } | Self::UnknownModel { .. } | Self::Refused { .. } => {
                "invalid_request_error"
            }
            Self::BudgetExceeded { .. } => "insufficient_quota",
            Self::Exhausted { .. } | Self::MidStream { .. } => "api_error",
        };
        let param = match self {
            Self::Invalid { field, .. } => Value::String(field.trim_start_matches('/').to_owned()),
            Self::UnknownModel { .. } => Value::String("model".to_owned()),
            _ => Value::Null,
        };
        json!({"error": {"message": self.to_string(), "type": kind, "code": self.code(), "param": param}})
    }
}

impl From<InferenceError> for ServiceError {
    fn from(e: InferenceError) -> Self {
        let data = Some(json!({"code": e.code()}));
        match e {
            InferenceError::Invalid { field, reason } => {
                ServiceError::invalid_params(field, reason)
            }
            InferenceError::UnknownModel { .. } => {
                ServiceError::invalid_params("/model", e.to_string())
            }
            // An answer of the service, not its failure: the deployments' own breakers
            // judge the providers, so the `inference` service's breaker must not open
            // for them (a retryable failure would count there).
            InferenceError::Exhausted { .. }
            | InferenceError::BudgetExceeded { .. }
            | InferenceError::Refused { .. }
            | InferenceError::MidStream { .. } => ServiceError::Failed {
                message: e.to_string(),
                data,
                retryable: false,
            },
        }
    }
}
