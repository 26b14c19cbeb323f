//! The response future of [`super::DeadlineService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::{DEADLINE, DeadlineExceeded};
use crate::BoxError;

pin_project! {
    /// The inner call, polled with its deadline as the current one; the timer is
    /// only armed if the call does not finish on its first poll.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        deadline: Instant,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Instant) -> Self {
        Self {
            inner: Some(inner),
            deadline,
            sleep: None,
        }
    }

    pub(super) fn expired(deadline: Instant) -> Self {
        Self {
            inner: None,
            deadline,
            sleep: None,
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
        let mut this = self.project();
        let deadline = *this.deadline;
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(DeadlineExceeded::new(deadline).into()));
        };
        if let Poll::Ready(result) = DEADLINE.sync_scope(deadline, || inner.poll(cx)) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
            return Poll::Ready(Err(DeadlineExceeded::new(deadline).into()));
        }
        Poll::Pending
    }
}
