//! The response future of [`super::RetryService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::{Limits, Retry, Verdict};
use crate::BoxError;

pin_project! {
    #[project = StepProj]
    enum Step<F> {
        Calling { #[pin] future: F },
        Waiting { sleep: Pin<Box<Sleep>> },
        Readying,
    }
}

pin_project! {
    /// One call and its retries.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        policy: Retry,
        service: S,
        request: Req,
        attempts: u32,
        limits: Limits,
        #[pin]
        step: Step<S::Future>,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn new(
        policy: Retry,
        service: S,
        request: Req,
        first: S::Future,
        limits: Limits,
    ) -> Self {
        Self {
            policy,
            service,
            request,
            attempts: 1,
            limits,
            step: Step::Calling { future: first },
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: 'static,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Calling { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    match this.policy.decide(*this.attempts, *this.limits, &result) {
                        Verdict::Done => return Poll::Ready(result),
                        Verdict::RetryAfter(delay) => {
                            let sleep = Box::pin(tokio::time::sleep(delay));
                            this.step.set(Step::Waiting { sleep });
                        }
                    }
                }
                StepProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.step.set(Step::Readying);
                }
                StepProj::Readying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    *this.attempts += 1;
                    let future = this.service.call(this.request.clone());
                    this.step.set(Step::Calling { future });
                }
            }
        }
    }
}
