//! The response future of [`super::CircuitBreakerService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::{CircuitOpen, Permit};
use crate::BoxError;

pin_project! {
    /// Runs the inner call and records its outcome, or returns the rejection.
    #[project = Proj]
    pub struct ResponseFuture<F, E> {
        #[pin]
        inner: Option<F>,
        permit: Option<Permit>,
        rejected: Option<CircuitOpen>,
        convert: fn(E) -> BoxError,
    }
}

impl<F, E: Into<BoxError>> ResponseFuture<F, E> {
    pub(super) fn called(inner: F, permit: Permit) -> Self {
        Self {
            inner: Some(inner),
            permit: Some(permit),
            rejected: None,
            convert: Into::into,
        }
    }

    pub(super) fn rejected(open: CircuitOpen) -> Self {
        Self {
            inner: None,
            permit: None,
            rejected: Some(open),
            convert: Into::into,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(match this.rejected.take() {
                Some(open) => Box::new(open),
                None => "circuit breaker future polled after completion".into(),
            }));
        };
        let result = ready!(inner.poll(cx)).map_err(*this.convert);
        if let Some(permit) = this.permit.take() {
            permit.record(&result);
        }
        Poll::Ready(result)
    }
}
