//! The hedging service: the first request, then after the delay a copy, and the
//! first answer that is not an error.

use std::task::{Context, Poll};

use futures::future::{BoxFuture, Either, select};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::Hedge;
use crate::BoxError;

/// A service wrapped by a [`Hedge`]: see the [module](super).
pub struct HedgeService<S, Req> {
    inner: S,
    hedge: Hedge<Req>,
}

impl<S: Clone, Req> Clone for HedgeService<S, Req> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hedge: self.hedge.clone(),
        }
    }
}

impl<S: std::fmt::Debug, Req> std::fmt::Debug for HedgeService<S, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("hedge", &self.hedge)
            .finish()
    }
}

impl<S, Req> HedgeService<S, Req> {
    pub(super) fn new(inner: S, hedge: Hedge<Req>) -> Self {
        Self { inner, hedge }
    }
}

type Attempt<R> = BoxFuture<'static, Result<R, BoxError>>;

impl<S, Req> Service<Req> for HedgeService<S, Req>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    Req: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Attempt<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let copy = self
            .hedge
            .delay(&req)
            .map(|delay| (delay, req.clone(), self.inner.clone()));
        let first = self.inner.call(req);
        let first: Attempt<S::Response> = Box::pin(async move { first.await.map_err(Into::into) });
        let hedge = self.hedge.clone();
        Box::pin(async move {
            let started = Instant::now();
            let answered = |result: Result<S::Response, BoxError>| {
                if result.is_ok() {
                    hedge.latencies.record(started.elapsed());
                }
                result
            };
            let Some((delay, req, spare)) = copy else {
                return answered(first.await);
            };
            let mut first = first;
            if let Ok(result) = tokio::time::timeout(delay, &mut first).await {
                return answered(result);
            }
            if let Some(on_hedge) = &hedge.on_hedge {
                on_hedge();
            }
            let second: Attempt<S::Response> =
                Box::pin(async move { spare.oneshot(req).await.map_err(Into::into) });
            let (result, slower) = match select(first, second).await {
                Either::Left(done) | Either::Right(done) => done,
            };
            match result {
                Ok(answer) => {
                    hedge.settle(slower);
                    answered(Ok(answer))
                }
                // The other one may still answer.
                Err(error) => answered(slower.await.map_err(|_| error)),
            }
        })
    }
}

impl<Req> Hedge<Req> {
    /// What becomes of the slower request once the other has answered.
    fn settle<R: Send + 'static>(&self, slower: Attempt<R>) {
        if !self.finish_slower {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(slower);
        }
    }
}
