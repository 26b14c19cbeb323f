//! The rejection of a call over the rate limit.

use std::sync::Arc;
use std::time::Duration;

/// The call is over the rate limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {name} reached; retry after {retry_after:?}")]
pub struct RateLimited {
    /// The limiter's name.
    pub name: Arc<str>,
    /// How long until a call would be admitted.
    pub retry_after: Duration,
}
