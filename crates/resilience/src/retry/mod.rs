//! Retry: call again after a backoff, within attempts, elapsed time, the caller's
//! deadline and a retry budget.
//!
//! A [`Retry`] policy decides, after each attempt, whether to try again: the error
//! (or the result) must match its predicate, attempts must remain, the next attempt
//! must start before `max_elapsed` and before the caller's deadline
//! ([`crate::deadline::current`]), and the retry budget (tower's `TpsBudget`: every
//! call deposits, every retry withdraws) must allow it. When it stops, the caller
//! gets the last attempt's outcome unchanged. A [`crate::RateLimited`] or
//! [`crate::CircuitOpen`] rejection that says when to come back is not retried
//! sooner than that.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use plexus_resilience::{Backoff, Retry};
//!
//! let retry = Retry::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::Fixed(Duration::from_millis(10)))
//!     .build()
//!     .unwrap();
//! let tries = AtomicU32::new(0);
//! let out = retry
//!     .run(|| async {
//!         match tries.fetch_add(1, Ordering::SeqCst) {
//!             0 | 1 => Err("busy"),
//!             n => Ok(n),
//!         }
//!     })
//!     .await;
//! assert_eq!(out.unwrap(), 2);
//! # }
//! ```

mod future;
mod layer;
mod policy;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tower::Service;
use tower::retry::budget::{Budget, TpsBudget};

pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{Backoff, BackoffConfig, BudgetConfig, Jitter, RetryConfig};

use crate::{BoxError, ConfigError};

type ErrorPredicate = Arc<dyn Fn(&BoxError) -> bool + Send + Sync>;
type ResultPredicate = Arc<dyn Fn(&dyn Any) -> bool + Send + Sync>;

/// Counters of a retry policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryMetrics {
    /// Calls made through the policy (first attempts).
    pub calls_total: u64,
    /// Retries made.
    pub retries_total: u64,
    /// Retries refused by the budget.
    pub budget_exhausted_total: u64,
    /// Retries given up because the deadline or `max_elapsed` would pass first.
    pub deadline_stops_total: u64,
    /// Calls that used every attempt and still wanted another.
    pub attempts_exhausted_total: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    retries: AtomicU64,
    budget: AtomicU64,
    deadline: AtomicU64,
    exhausted: AtomicU64,
}

struct Shared {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    budget: Option<TpsBudget>,
    on_error: Option<ErrorPredicate>,
    on_result: Option<ResultPredicate>,
    counters: Counters,
}

/// A retry policy; clones share counters and budget.
#[derive(Clone)]
pub struct Retry {
    shared: Arc<Shared>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.shared.max_attempts)
            .field("max_elapsed", &self.shared.max_elapsed)
            .field("backoff", &self.shared.backoff)
            .field("budget", &self.shared.budget)
            .finish()
    }
}

/// Builds a [`Retry`].
#[must_use]
pub struct RetryBuilder {
    config: RetryConfig,
    backoff: Option<Backoff>,
    on_error: Option<ErrorPredicate>,
    on_result: Option<ResultPredicate>,
}

impl fmt::Debug for RetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl RetryBuilder {
    /// Attempts in all, the first included.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }
    /// No retry starts later than this after the first attempt.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.config.max_elapsed_ms = Some(elapsed.as_millis() as u64);
        self
    }
    /// The wait between attempts (overrides the configured one).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
    /// The retry budget.
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config.budget = Some(budget);
        self
    }
    /// No retry budget.
    pub fn no_budget(mut self) -> Self {
        self.config.budget = None;
        self
    }
    /// Retry only errors for which `predicate` holds (every error by default).
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&BoxError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(predicate));
        self
    }
    /// Also retry successful results of type `T` for which `predicate` holds.
    pub fn retry_if_result<T: 'static>(
        mut self,
        predicate: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.on_result = Some(Arc::new(move |any: &dyn Any| {
            any.downcast_ref::<T>().is_some_and(&predicate)
        }));
        self
    }
    /// Validates and builds.
    pub fn build(self) -> Result<Retry, ConfigError> {
        self.config.validate()?;
        if let Some(Backoff::Exponential { multiplier, .. }) = &self.backoff
            && !(multiplier.is_finite() && *multiplier >= 1.0)
        {
            return Err(ConfigError::new(
                "backoff.multiplier",
                format!("{multiplier} must be a finite number of at least 1"),
            ));
        }
        let budget = self.config.budget.as_ref().map(|b| {
            TpsBudget::new(
                Duration::from_secs(b.ttl_secs),
                b.min_per_sec,
                b.retry_ratio,
            )
        });
        Ok(Retry {
            shared: Arc::new(Shared {
                max_attempts: self.config.max_attempts,
                max_elapsed: self.config.max_elapsed_ms.map(Duration::from_millis),
                backoff: self.backoff.unwrap_or_else(|| self.config.backoff()),
                budget,
                on_error: self.on_error,
                on_result: self.on_result,
                counters: Counters::default(),
            }),
        })
    }
}

/// What happens after an attempt.
pub(crate) enum Verdict {
    Done,
    RetryAfter(Duration),
}

/// When a call started and when it must end, for one call's retries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    started: Option<Instant>,
    deadline: Option<Instant>,
}

impl Retry {
    /// A builder from the defaults (3 attempts, exponential backoff from 50 ms with
    /// full jitter, the default budget).
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            config: RetryConfig::default(),
            backoff: None,
            on_error: None,
            on_result: None,
        }
    }

    /// A builder starting from `config`, to add what a configuration cannot hold
    /// (retry predicates).
    pub fn builder_from(config: RetryConfig) -> RetryBuilder {
        RetryBuilder {
            config,
            backoff: None,
            on_error: None,
            on_result: None,
        }
    }

    /// A policy from a configuration, after validating it.
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        RetryBuilder {
            config,
            backoff: None,
            on_error: None,
            on_result: None,
        }
        .build()
    }

    /// The counters.
    pub fn metrics(&self) -> RetryMetrics {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        RetryMetrics {
            calls_total: get(&c.calls),
            retries_total: get(&c.retries),
            budget_exhausted_total: get(&c.budget),
            deadline_stops_total: get(&c.deadline),
            attempts_exhausted_total: get(&c.exhausted),
        }
    }

    /// Wraps `service` in this policy.
    pub fn layer<S>(&self, service: S) -> RetryService<S> {
        RetryService {
            inner: service,
            policy: self.clone(),
        }
    }

    /// Runs `attempt` until it succeeds or the policy stops: a plain async wrapper.
    pub async fn run<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, BoxError>
    where
        T: 'static,
        E: Into<BoxError>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let limits = self.start();
        let mut attempts = 1;
        loop {
            let result = attempt().await.map_err(Into::into);
            match self.decide(attempts, limits, &result) {
                Verdict::Done => return result,
                Verdict::RetryAfter(delay) => {
                    tokio::time::sleep(delay).await;
                    attempts += 1;
                }
            }
        }
    }

    /// Notes a new call: deposits in the budget and reads the limits.
    pub(crate) fn start(&self) -> Limits {
        let s = &self.shared;
        s.counters.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(budget) = &s.budget {
            budget.deposit();
        }
        Limits {
            started: s.max_elapsed.map(|_| Instant::now()),
            deadline: crate::deadline::current(),
        }
    }

    /// Decides after `attempts` attempts whether to retry, and after how long.
    pub(crate) fn decide<T: 'static>(
        &self,
        attempts: u32,
        limits: Limits,
        result: &Result<T, BoxError>,
    ) -> Verdict {
        let s = &self.shared;
        let wanted = match result {
            Ok(value) => s.on_result.as_ref().is_some_and(|p| p(value as &dyn Any)),
            Err(error) => s.on_error.as_ref().is_none_or(|p| p(error)),
        };
        if !wanted {
            return Verdict::Done;
        }
        if attempts >= s.max_attempts {
            s.counters.exhausted.fetch_add(1, Ordering::Relaxed);
            return Verdict::Done;
        }
        let mut delay = s.backoff.delay(attempts);
        if let Err(error) = result {
            // A rejection that says when to come back is not retried any sooner.
            if let Some(after) = retry_after(error) {
                delay = delay.max(after);
            }
        }
        if limits.started.is_some() || limits.deadline.is_some() {
            let next = Instant::now() + delay;
            let too_late = limits.deadline.is_some_and(|d| next >= d)
                || matches!((limits.started, s.max_elapsed), (Some(st), Some(max)) if next > st + max);
            if too_late {
                s.counters.deadline.fetch_add(1, Ordering::Relaxed);
                return Verdict::Done;
            }
        }
        if let Some(budget) = &s.budget
            && !budget.withdraw()
        {
            s.counters.budget.fetch_add(1, Ordering::Relaxed);
            return Verdict::Done;
        }
        s.counters.retries.fetch_add(1, Ordering::Relaxed);
        Verdict::RetryAfter(delay)
    }
}

/// The wait a typed rejection asks for, if any.
fn retry_after(error: &BoxError) -> Option<Duration> {
    if let Some(limited) = error.downcast_ref::<crate::RateLimited>() {
        return Some(limited.retry_after);
    }
    error
        .downcast_ref::<crate::CircuitOpen>()
        .and_then(|open| open.retry_after)
}

/// A service whose calls are retried by a [`Retry`] policy. The request must be
/// `Clone` (each attempt takes a copy) and so must the inner service.
#[derive(Clone, Debug)]
pub struct RetryService<S> {
    inner: S,
    policy: Retry,
}

impl<S, Req> Service<Req> for RetryService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: 'static,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let limits = self.policy.start();
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let first = ready.call(req.clone());
        ResponseFuture::new(self.policy.clone(), ready, req, first, limits)
    }
}
