//! Mock services and helpers shared by the tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_resilience::{BoxError, CircuitBreaker, StateTransition};
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};

/// The error mocks fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mock failure: {0}")]
pub(crate) struct MockError(pub(crate) &'static str);

/// Counts calls; each call's behaviour is chosen by its index (from 0).
#[derive(Clone)]
pub(crate) struct Mock {
    pub(crate) calls: Arc<AtomicUsize>,
}

impl Mock {
    pub(crate) fn new() -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A service whose call number `n` sleeps `delay(n)` then answers `outcome(n)`.
    pub(crate) fn service<Req: Send + 'static>(
        &self,
        delay: impl Fn(usize) -> Duration + Clone + Send + Sync + 'static,
        outcome: impl Fn(usize) -> Result<usize, MockError> + Clone + Send + Sync + 'static,
    ) -> BoxCloneService<Req, usize, BoxError> {
        let calls = self.calls.clone();
        BoxCloneService::new(tower::service_fn(move |_req: Req| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let (delay, outcome) = (delay.clone(), outcome.clone());
            async move {
                let d = delay(n);
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                outcome(n).map_err(BoxError::from)
            }
        }))
    }

    /// Answers `Ok(n)` after `fast`, except call number `slow_call`, which takes `slow`.
    pub(crate) fn slow_at<Req: Send + 'static>(
        &self,
        slow_call: usize,
        slow: Duration,
        fast: Duration,
    ) -> BoxCloneService<Req, usize, BoxError> {
        self.service(move |n| if n == slow_call { slow } else { fast }, Ok)
    }

    /// Answers at once, always `Ok(n)`.
    pub(crate) fn healthy<Req: Send + 'static>(&self) -> BoxCloneService<Req, usize, BoxError> {
        self.service(|_| Duration::ZERO, Ok)
    }

    /// Fails at once, always.
    pub(crate) fn failing<Req: Send + 'static>(&self) -> BoxCloneService<Req, usize, BoxError> {
        self.service(|_| Duration::ZERO, |_| Err(MockError("down")))
    }

    /// Never answers within any test's deadline.
    pub(crate) fn hanging<Req: Send + 'static>(&self) -> BoxCloneService<Req, usize, BoxError> {
        self.service(|_| Duration::from_secs(3600), Ok)
    }
}

/// Calls `service` once, readying it first.
pub(crate) async fn call<S, Req>(service: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
{
    service.ready().await?.call(req).await
}

/// A boxed call future that is `Send`.
pub(crate) type SendCall<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A boxed `Send` future of one call on a clone of `service`, for `tokio::spawn`.
///
/// Spawning an `async` block that awaits a service future whose error is
/// `BoxError` trips rustc's "implementation of `From` is not general enough"
/// (the same happens with tower's own layers); coercing to `dyn Future + Send` in
/// a generic function checks the concrete type instead.
pub(crate) fn spawnable<S, Req>(service: &S, req: Req) -> SendCall<S::Response, S::Error>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    Req: Send + 'static,
{
    Box::pin(service.clone().oneshot(req))
}

/// Records a breaker's transitions.
pub(crate) fn record_transitions(breaker: &CircuitBreaker) -> Arc<Mutex<Vec<StateTransition>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    breaker.on_state_change(move |t| sink.lock().expect("lock").push(t.clone()));
    seen
}
