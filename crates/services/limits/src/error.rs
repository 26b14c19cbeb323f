//! [`LimitError`]: why a limiter call failed, and how a caller of the `ratelimit`
//! service sees it. A refusal by the limit is not an error: it is a
//! [`Decision`](crate::Decision) with `allowed: false`.

use plexus_core::ServiceError;
use plexus_redis::RedisError;

/// Why a limiter call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Bad input: a key or cost out of bounds, a rule that is not configured.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field as a JSON pointer of the service's params (`/key`, `/cost`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A cost over what the rule allows at once: it would be refused forever.
    #[error("`/cost` {cost} can never be allowed: rule `{rule}` allows at most {capacity} at once")]
    NeverAllowed {
        /// The rule.
        rule: String,
        /// The cost asked for.
        cost: u64,
        /// The most the rule allows at once (its `limit`, or `burst` for GCRA).
        capacity: u64,
    },
    /// The backend failed: [`RedisError::Unavailable`] when Redis is out of reach.
    #[error(transparent)]
    Backend(#[from] RedisError),
}

impl LimitError {
    /// Bad input at `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field of bad input (`/cost` for a cost never allowed), if it is that.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::NeverAllowed { .. } => Some("/cost"),
            Self::Backend(_) => None,
        }
    }

    /// Whether the backend was out of reach.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Backend(e) if e.is_unavailable())
    }

    /// The `kind` label of `plexus_limits_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::NeverAllowed { .. } => "never_allowed",
            Self::Backend(e) if e.is_unavailable() => "unavailable",
            Self::Backend(_) => "backend",
        }
    }

    /// The service error a caller of the `ratelimit` service sees: invalid params
    /// naming the field, [`ServiceError::Unavailable`] when Redis is out of reach.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Invalid { field, reason } => ServiceError::invalid_params(field, reason),
            Self::NeverAllowed {
                rule,
                cost,
                capacity,
            } => ServiceError::invalid_params(
                "/cost",
                format!(
                    "{cost} can never be allowed: rule `{rule}` allows at most {capacity} at once"
                ),
            ),
            Self::Backend(e) => e.to_service_error(),
        }
    }
}

impl From<LimitError> for ServiceError {
    fn from(e: LimitError) -> Self {
        e.to_service_error()
    }
}
