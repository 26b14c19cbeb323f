//! The response future of [`super::BulkheadService`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::Service;

use super::{BulkheadFull, BulkheadPermit};
use crate::BoxError;

type Wait = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

pin_project! {
    #[project = StepProj]
    enum Step<S, Req, F> {
        Waiting { wait: Wait, service: Option<S>, request: Option<Req> },
        Readying { permit: Option<BulkheadPermit>, service: Option<S>, request: Option<Req> },
        Running { #[pin] future: F, permit: Option<BulkheadPermit> },
    }
}

pin_project! {
    /// Waits for a slot if needed, then runs the call holding it.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        step: Step<S, Req, S::Future>,
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn running(future: S::Future, permit: BulkheadPermit) -> Self {
        Self {
            step: Step::Running {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(super) fn waiting(wait: Wait, service: S, request: Req) -> Self {
        Self {
            step: Step::Waiting {
                wait,
                service: Some(service),
                request: Some(request),
            },
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
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Waiting {
                    wait,
                    service,
                    request,
                } => {
                    let permit = ready!(wait.as_mut().poll(cx))?;
                    let (service, request) = (service.take(), request.take());
                    this.step.set(Step::Readying {
                        permit: Some(permit),
                        service,
                        request,
                    });
                }
                StepProj::Readying {
                    permit,
                    service,
                    request,
                } => {
                    let Some(svc) = service.as_mut() else {
                        return Poll::Ready(Err("bulkhead future polled after completion".into()));
                    };
                    // Readied before the call; readying again after the wait is allowed.
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e.into()));
                    }
                    let Some(req) = request.take() else {
                        return Poll::Ready(Err("bulkhead future polled after completion".into()));
                    };
                    let future = svc.call(req);
                    let permit = permit.take();
                    this.step.set(Step::Running { future, permit });
                }
                StepProj::Running { future, permit } => {
                    let out = ready!(future.poll(cx)).map_err(Into::into);
                    permit.take();
                    return Poll::Ready(out);
                }
            }
        }
    }
}
