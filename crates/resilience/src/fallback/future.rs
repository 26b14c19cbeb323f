//! The response future of [`super::FallbackService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::Fallback;
use crate::BoxError;

pin_project! {
    /// The inner call, its error replaced by the fallback's answer.
    pub struct ResponseFuture<F, T> {
        #[pin]
        inner: F,
        fallback: Fallback<T>,
    }
}

impl<F, T> ResponseFuture<F, T> {
    pub(super) fn new(inner: F, fallback: Fallback<T>) -> Self {
        Self { inner, fallback }
    }
}

impl<F, T, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(v) => Ok(v),
            Err(e) => this.fallback.recover(e.into()),
        })
    }
}
