//! Retry as a [`tower::Layer`].

use tower::Layer;

use super::{Retry, RetryService};

/// Wraps services in a shared [`Retry`] policy.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    policy: Retry,
}

impl RetryLayer {
    /// A layer applying `policy`.
    pub fn new(policy: Retry) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.policy.layer(inner)
    }
}
