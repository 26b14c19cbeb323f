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
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<Permit>,
        rejected: Option<CircuitOpen>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F, permit: Permit) -> Self {
        Self {
            inner: Some(inner),
            permit: Some(permit),
            rejected: None,
        }
    }

    pub(super) fn rejected(open: CircuitOpen) -> Self {
        Self {
            inner: None,
            permit: None,
            rejected: Some(open),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
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
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(permit) = this.permit.take() {
            permit.record(&result);
        }
        Poll::Ready(result)
    }
}
