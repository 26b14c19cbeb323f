//! The response future of [`super::Balancer`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::Service;
use tower::util::Oneshot;

use super::{InFlight, NoInstanceAvailable};
use crate::BoxError;

pin_project! {
    /// The call on the chosen instance (readied, then called), counted as in flight
    /// until it ends or is dropped; or the reason no instance was chosen.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        inner: Option<Oneshot<S, Req>>,
        in_flight: Option<InFlight>,
        rejected: Option<NoInstanceAvailable>,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn called(inner: Oneshot<S, Req>, in_flight: InFlight) -> Self {
        Self {
            inner: Some(inner),
            in_flight: Some(in_flight),
            rejected: None,
        }
    }

    pub(super) fn rejected(none: NoInstanceAvailable) -> Self {
        Self {
            inner: None,
            in_flight: None,
            rejected: Some(none),
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let out = ready!(inner.poll(cx)).map_err(Into::into);
                this.in_flight.take();
                Poll::Ready(out)
            }
            None => Poll::Ready(Err(match this.rejected.take() {
                Some(none) => Box::new(none),
                None => "balancer future polled after completion".into(),
            })),
        }
    }
}
