//! [`CacheError`]: why a cache operation failed, and how a caller of the `cache`
//! service sees it.

use plexus_core::ServiceError;
use plexus_redis::RedisError;

/// Why a cache operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Bad input: a key, value, TTL or namespace out of bounds.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field as a JSON pointer of the service's params (`/key`, `/keys/3`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed: [`RedisError::Unavailable`] when Redis is out of reach.
    #[error(transparent)]
    Backend(#[from] RedisError),
    /// The loader failed; nothing was cached.
    #[error("loading failed: {0}")]
    Load(ServiceError),
}

impl CacheError {
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

    /// The `kind` label of `plexus_cache_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Backend(e) if e.is_unavailable() => "unavailable",
            Self::Backend(_) => "backend",
            Self::Load(_) => "load",
        }
    }

    /// The service error a caller of the `cache` service sees: invalid params naming
    /// the field, [`ServiceError::Unavailable`] when Redis is out of reach, the
    /// loader's own error when loading failed.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Invalid { field, reason } => ServiceError::invalid_params(field, reason),
            Self::Backend(e) => e.to_service_error(),
            Self::Load(e) => e.clone(),
        }
    }
}

impl From<CacheError> for ServiceError {
    fn from(e: CacheError) -> Self {
        e.to_service_error()
    }
}
