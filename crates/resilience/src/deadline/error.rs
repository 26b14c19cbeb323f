//! The error of a call that ran out of time.

use tokio::time::Instant;

/// The call's deadline passed before it finished (or before it started).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded {
    /// The deadline that passed.
    pub deadline: Instant,
}

impl DeadlineExceeded {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self { deadline }
    }
}
