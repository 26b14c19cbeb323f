//! Fallback: answer with a value, or from a function, when a call fails with
//! chosen errors.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use plexus_resilience::{CircuitOpen, Fallback};
//!
//! let cached = Fallback::value("cached answer").when(|e| e.is::<CircuitOpen>());
//! let out = cached.run(async { Err::<&str, _>("boom") }).await;
//! assert!(out.is_err()); // not a CircuitOpen: passed through
//! # }
//! ```

mod future;
mod layer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

pub use future::ResponseFuture;
pub use layer::FallbackLayer;

use crate::BoxError;

type Handler<T> = Arc<dyn Fn(BoxError) -> Result<T, BoxError> + Send + Sync>;
type Predicate = Arc<dyn Fn(&BoxError) -> bool + Send + Sync>;

/// What to answer instead of an error.
pub struct Fallback<T> {
    handler: Handler<T>,
    when: Option<Predicate>,
}

impl<T> Clone for Fallback<T> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            when: self.when.clone(),
        }
    }
}

impl<T> fmt::Debug for Fallback<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("conditional", &self.when.is_some())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Fallback<T> {
    /// Answers `value` instead of the error.
    pub fn value(value: T) -> Self {
        Self::with(move |_| Ok(value.clone()))
    }
}

impl<T> Fallback<T> {
    /// Answers what `handler` makes of the error (it may fail in turn).
    pub fn with(handler: impl Fn(BoxError) -> Result<T, BoxError> + Send + Sync + 'static) -> Self {
        Self {
            handler: Arc::new(handler),
            when: None,
        }
    }

    /// Only for errors for which `predicate` holds (every error by default).
    pub fn when(mut self, predicate: impl Fn(&BoxError) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(predicate));
        self
    }

    pub(crate) fn recover(&self, error: BoxError) -> Result<T, BoxError> {
        match &self.when {
            Some(when) if !when(&error) => Err(error),
            _ => (self.handler)(error),
        }
    }

    /// Runs `call`, falling back on its error: a plain async wrapper.
    pub async fn run<E>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, BoxError>
    where
        E: Into<BoxError>,
    {
        match call.await {
            Ok(v) => Ok(v),
            Err(e) => self.recover(e.into()),
        }
    }

    /// Wraps `service`.
    pub fn layer<S>(&self, service: S) -> FallbackService<S, T> {
        FallbackService {
            inner: service,
            fallback: self.clone(),
        }
    }
}

/// A service whose errors fall back.
pub struct FallbackService<S, T> {
    inner: S,
    fallback: Fallback<T>,
}

impl<S: Clone, T> Clone for FallbackService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for FallbackService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackService")
            .field("inner", &self.inner)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl<S, Req, T> Service<Req> for FallbackService<S, T>
where
    S: Service<Req, Response = T>,
    S::Error: Into<BoxError>,
{
    type Response = T;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), self.fallback.clone())
    }
}
