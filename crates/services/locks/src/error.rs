//! [`LockError`]: why a lock operation failed, and how a caller of the `lock`
//! service sees it.

use plexus_core::ServiceError;
use plexus_redis::RedisError;
use plexus_store::StoreError;
use serde_json::json;

/// Why a lock operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Bad input: a name, holder, lease or wait out of bounds.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field as a JSON pointer of the service's params (`/name`, `/lease_ms`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lock is held by another, and stayed held for as long as the call was
    /// willing to wait.
    #[error("lock `{name}` is held by another (waited {waited_ms} ms)")]
    Busy {
        /// The lock.
        name: String,
        /// How long the call waited.
        waited_ms: u64,
    },
    /// `token` is not the lock's current grant: the lease expired (and maybe another
    /// holder took the lock) or it was released. The caller no longer holds it.
    #[error("lock `{name}` is not held with token {token}: its lease expired or it was released")]
    NotHolder {
        /// The lock.
        name: String,
        /// The token the caller gave.
        token: u64,
    },
    /// The in-process backend holds `locks.max_locks` locks already.
    #[error("too many locks held ({limit}, locks.max_locks)")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// The backend is out of reach (Redis or PostgreSQL down, a pool timeout).
    #[error("lock backend unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The backend refused the operation for another reason.
    #[error("lock backend failed: {reason}")]
    Backend {
        /// What happened.
        reason: String,
    },
}

impl LockError {
    /// Bad input at `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the backend was out of reach.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// A stable label for metrics and for the `kind` of service error data.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Busy { .. } => "busy",
            Self::NotHolder { .. } => "not_holder",
            Self::TooMany { .. } => "too_many",
            Self::Unavailable { .. } => "unavailable",
            Self::Backend { .. } => "backend",
        }
    }

    /// The service error a caller of the `lock` service sees: invalid params naming
    /// the field, [`ServiceError::Unavailable`] when the backend is out of reach,
    /// otherwise [`ServiceError::Failed`] whose `data` holds `{"kind": …}` with the
    /// lock's name and token (`busy` and `too_many` are retryable, `not_holder` is
    /// not).
    pub fn to_service_error(&self) -> ServiceError {
        let failed = |data: serde_json::Value, retryable: bool| ServiceError::Failed {
            message: self.to_string(),
            data: Some(data),
            retryable,
        };
        match self {
            Self::Invalid { field, reason } => ServiceError::invalid_params(field, reason),
            Self::Unavailable { .. } => ServiceError::unavailable(self.to_string()),
            Self::Busy { name, waited_ms } => failed(
                json!({"kind": self.kind(), "name": name, "waited_ms": waited_ms}),
                true,
            ),
            Self::NotHolder { name, token } => failed(
                json!({"kind": self.kind(), "name": name, "token": token}),
                false,
            ),
            Self::TooMany { limit } => failed(json!({"kind": self.kind(), "limit": limit}), true),
            Self::Backend { .. } => failed(json!({"kind": self.kind()}), false),
        }
    }
}

impl From<LockError> for ServiceError {
    fn from(e: LockError) -> Self {
        e.to_service_error()
    }
}

impl From<RedisError> for LockError {
    fn from(e: RedisError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable {
                reason: e.to_string(),
            }
        } else {
            Self::Backend {
                reason: e.to_string(),
            }
        }
    }
}

impl From<StoreError> for LockError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            Self::Unavailable {
                reason: e.to_string(),
            }
        } else {
            Self::Backend {
                reason: e.to_string(),
            }
        }
    }
}
