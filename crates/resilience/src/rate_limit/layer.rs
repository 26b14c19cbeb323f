//! The rate limiter as a [`tower::Layer`].

use tower::Layer;

use super::{RateLimitService, RateLimiter};

/// Puts services behind one shared [`RateLimiter`].
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// A layer over `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.limiter.layer(inner)
    }
}
