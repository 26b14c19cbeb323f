//! Fallback as a [`tower::Layer`].

use std::fmt;

use tower::Layer;

use super::{Fallback, FallbackService};

/// Wraps services with a [`Fallback`].
pub struct FallbackLayer<T> {
    fallback: Fallback<T>,
}

impl<T> FallbackLayer<T> {
    /// A layer applying `fallback`.
    pub fn new(fallback: Fallback<T>) -> Self {
        Self { fallback }
    }
}

impl<T> Clone for FallbackLayer<T> {
    fn clone(&self) -> Self {
        Self {
            fallback: self.fallback.clone(),
        }
    }
}

impl<T> fmt::Debug for FallbackLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer").finish()
    }
}

impl<S, T> Layer<S> for FallbackLayer<T> {
    type Service = FallbackService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        self.fallback.layer(inner)
    }
}
