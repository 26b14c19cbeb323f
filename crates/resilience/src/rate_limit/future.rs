//! The response future of [`super::RateLimitService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::RateLimited;
use crate::BoxError;

pin_project! {
    /// The inner call, or the rejection.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        rejected: Option<RateLimited>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F) -> Self {
        Self {
            inner: Some(inner),
            rejected: None,
        }
    }

    pub(super) fn rejected(limited: RateLimited) -> Self {
        Self {
            inner: None,
            rejected: Some(limited),
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
        match this.inner.as_pin_mut() {
            Some(inner) => Poll::Ready(ready!(inner.poll(cx)).map_err(Into::into)),
            None => Poll::Ready(Err(match this.rejected.take() {
                Some(limited) => Box::new(limited),
                None => "rate limit future polled after completion".into(),
            })),
        }
    }
}
