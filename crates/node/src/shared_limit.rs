//! [`SharedLimiter`]: a rate limit the call path can take from a store shared by
//! every node (the limits family installs its limiter, on Redis one limit for N
//! nodes), asked for by a service's policy:
//!
//! ```toml
//! [calls.services.search]
//! shared_rate_limit = { rule = "api" }   # a rule of [limits.rules]
//! ```
//!
//! Each call of the service takes one unit of the rule under the key
//! `calls:{service}`, before retries (a retried call takes one unit). Over the limit
//! the call fails with [`CallError::RateLimited`](crate::CallError::RateLimited) and
//! when to retry, as with the per-node `rate_limit`; a store out of reach (or no
//! limiter installed) is [`CallError::Unavailable`](crate::CallError::Unavailable):
//! the call path never lets a call through unlimited.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use plexus_resilience::{BoxError, RateLimited};
use serde_json::Value;
use tower::Service;

/// A limiter shared by every node on the same store.
#[plexus_core::async_trait]
pub trait SharedLimiter: Send + Sync + 'static {
    /// Takes one unit of `key` under `rule`: `None` when allowed, else how long
    /// until one would be.
    async fn acquire(&self, rule: &str, key: &str) -> Result<Option<Duration>, SharedLimitError>;
}

/// Why a shared limiter could not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedLimitError {
    /// Its store is out of reach, or no limiter is installed.
    #[error("the shared rate limiter is unavailable: {0}")]
    Unavailable(String),
    /// The policy names a rule the limiter does not have (or another mistake).
    #[error("shared rate limit: {0}")]
    Misconfigured(String),
}

/// Where the node keeps the limiter a family installs.
pub(crate) type SharedSlot = Arc<OnceLock<Arc<dyn SharedLimiter>>>;

/// A service stack behind a shared rate limit.
#[derive(Clone)]
pub(crate) struct SharedLimitService<S> {
    inner: S,
    slot: SharedSlot,
    rule: Arc<str>,
    key: Arc<str>,
    service: Arc<str>,
}

impl<S> SharedLimitService<S> {
    pub(crate) fn new(inner: S, slot: SharedSlot, rule: &str, service: &str) -> Self {
        Self {
            inner,
            slot,
            rule: Arc::from(rule),
            key: Arc::from(format!("calls:{service}").as_str()),
            service: Arc::from(service),
        }
    }
}

impl<S, Req> Service<Req> for SharedLimitService<S>
where
    S: Service<Req, Response = Value, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
    Req: Send + 'static,
{
    type Response = Value;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Value, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The ready inner service goes with the call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (slot, rule, key, service) = (
            self.slot.clone(),
            self.rule.clone(),
            self.key.clone(),
            self.service.clone(),
        );
        Box::pin(async move {
            let Some(limiter) = slot.get() else {
                return Err(SharedLimitError::Unavailable(
                    "no shared limiter is installed (the limits family is off)".to_owned(),
                )
                .into());
            };
            match limiter.acquire(&rule, &key).await? {
                None => inner.call(req).await,
                Some(retry_after) => Err(RateLimited {
                    name: service,
                    retry_after,
                }
                .into()),
            }
        })
    }
}
