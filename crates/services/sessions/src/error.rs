//! [`SessionError`]: why a session operation failed, and how a caller of the
//! `session` service sees it.

use plexus_core::ServiceError;
use plexus_redis::RedisError;
use serde_json::json;

/// Why a session operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Bad input: a subject, TTL, data or id out of bounds.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field as a JSON pointer of the service's params (`/ttl_ms`, `/id`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No live session has this id: it never existed, expired or was revoked (the
    /// three are not told apart, so an id cannot be probed).
    #[error("session not found")]
    NotFound,
    /// `update` with a version that is no longer the session's.
    #[error("version conflict: expected {expected}, the session is at {actual}")]
    Conflict {
        /// The version the caller expected.
        expected: u64,
        /// The session's version.
        actual: u64,
    },
    /// The subject holds `max_per_subject` live sessions and `on_cap = "refuse"`.
    #[error("the subject already holds {max} sessions")]
    CapReached {
        /// `sessions.max_per_subject`.
        max: usize,
    },
    /// The memory backend holds `max_sessions` sessions.
    #[error("the session store is full ({max} sessions)")]
    Full {
        /// `sessions.max_sessions`.
        max: usize,
    },
    /// The backend failed: [`RedisError::Unavailable`] when Redis is out of reach.
    #[error(transparent)]
    Backend(#[from] RedisError),
    /// The SQLite backend failed, or a stored session could not be read.
    #[error("session storage: {reason}")]
    Storage {
        /// What went wrong.
        reason: String,
    },
}

impl SessionError {
    /// Bad input at `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the backend was out of reach.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Backend(e) if e.is_unavailable())
    }

    /// Its kind: the `kind` of the service error's data, and the label of
    /// `plexus_sessions_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::NotFound => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::CapReached { .. } => "cap_reached",
            Self::Full { .. } => "full",
            Self::Backend(e) if e.is_unavailable() => "unavailable",
            Self::Backend(_) => "backend",
            Self::Storage { .. } => "storage",
        }
    }

    /// The service error a caller of the `session` service sees: invalid params
    /// naming the field; [`ServiceError::Unavailable`] when Redis is out of reach;
    /// otherwise [`ServiceError::Failed`] whose `data` is `{"kind": …}` with the
    /// error's fields (`expected`/`actual` for a conflict).
    pub fn to_service_error(&self) -> ServiceError {
        let data = match self {
            Self::Invalid { field, reason } => {
                return ServiceError::invalid_params(field, reason);
            }
            Self::Backend(e) => return e.to_service_error(),
            Self::Conflict { expected, actual } => {
                json!({"kind": self.kind(), "expected": expected, "actual": actual})
            }
            Self::CapReached { max } | Self::Full { max } => {
                json!({"kind": self.kind(), "max": max})
            }
            Self::NotFound | Self::Storage { .. } => json!({"kind": self.kind()}),
        };
        ServiceError::Failed {
            message: self.to_string(),
            data: Some(data),
            retryable: matches!(self, Self::Full { .. }),
        }
    }
}

impl From<SessionError> for ServiceError {
    fn from(e: SessionError) -> Self {
        e.to_service_error()
    }
}
