//! Rate limiter: GCRA (on `governor`) or an exact sliding window, with typed
//! rejection carrying when to retry.
//!
//! - [`RateLimitConfig::Gcra`]: the generic cell rate algorithm, which behaves as a
//!   token bucket of `burst` tokens refilled at `per_second`; one atomic
//!   compare-and-swap per call (governor's in-memory state, on tokio's clock).
//! - [`RateLimitConfig::SlidingWindow`]: at most `limit` calls in any `window_ms`
//!   span, kept exactly as a log of admission times.
//!
//! A call over the limit is not queued: it fails at once with [`RateLimited`] and
//! `retry_after`, the time until a call would be admitted.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use plexus_resilience::{RateLimitConfig, RateLimiter};
//!
//! let limiter = RateLimiter::new("api", RateLimitConfig::Gcra { per_second: 10.0, burst: 2 }).unwrap();
//! assert!(limiter.check().is_ok());
//! assert!(limiter.check().is_ok());
//! let limited = limiter.check().unwrap_err();
//! assert_eq!(limited.retry_after, std::time::Duration::from_millis(100));
//! # }
//! ```

mod error;
mod future;
mod layer;
mod window;

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Governor};
use serde::{Deserialize, Serialize};
use tower::Service;

pub use error::RateLimited;
pub use future::ResponseFuture;
pub use layer::RateLimitLayer;

use crate::clock::Origin;
use crate::{BoxError, ConfigError};
use window::SlidingLog;

/// The largest sliding-window limit (the log keeps one entry per admitted call).
pub const MAX_WINDOW_LIMIT: u32 = 1_000_000;

/// The algorithm and its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum RateLimitConfig {
    /// A token bucket of `burst` tokens refilled at `per_second` (GCRA).
    Gcra {
        /// The sustained rate, in calls per second.
        per_second: f64,
        /// The calls that may arrive at once.
        burst: u32,
    },
    /// At most `limit` calls in any span of `window_ms` milliseconds.
    SlidingWindow {
        /// Calls allowed per window.
        limit: u32,
        /// The window, in milliseconds.
        window_ms: u64,
    },
}

impl RateLimitConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            RateLimitConfig::Gcra { per_second, burst } => {
                if !(per_second.is_finite() && *per_second > 0.0 && *per_second <= 1e9) {
                    return Err(ConfigError::new(
                        "per_second",
                        format!("{per_second} is not a rate in (0, 1e9]"),
                    ));
                }
                crate::error::check_positive("burst", (*burst).into())
            }
            RateLimitConfig::SlidingWindow { limit, window_ms } => {
                crate::error::check_positive("limit", (*limit).into())?;
                if *limit > MAX_WINDOW_LIMIT {
                    return Err(ConfigError::new(
                        "limit",
                        format!("{limit} is over the maximum {MAX_WINDOW_LIMIT}"),
                    ));
                }
                crate::error::check_positive("window_ms", *window_ms)
            }
        }
    }
}

/// Governor's clock, read from tokio's so that paused time drives it.
#[derive(Clone, Copy, Debug)]
struct TokioClock(Origin);

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_nanos())
    }
}

type Gcra = Governor<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

enum Algorithm {
    Gcra(Gcra, TokioClock),
    Window(SlidingLog),
}

struct Shared {
    name: Arc<str>,
    config: RateLimitConfig,
    algorithm: Algorithm,
    admitted: AtomicU64,
    rejected: AtomicU64,
}

/// A rate limiter; clones share the limit.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.shared.name)
            .field("config", &self.shared.config)
            .finish()
    }
}

/// Counters of a rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimitMetrics {
    /// Calls admitted.
    pub admitted_total: u64,
    /// Calls rejected.
    pub rejected_total: u64,
}

impl RateLimiter {
    /// A limiter named `name`, after validating `config`.
    pub fn new(name: impl Into<String>, config: RateLimitConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let origin = Origin::new();
        let algorithm = match &config {
            RateLimitConfig::Gcra { per_second, burst } => {
                let period = Duration::from_secs_f64(1.0 / per_second);
                let quota = Quota::with_period(period)
                    .ok_or_else(|| ConfigError::new("per_second", "is too high"))?
                    .allow_burst(
                        NonZeroU32::new(*burst)
                            .ok_or_else(|| ConfigError::new("burst", "must be at least 1"))?,
                    );
                let clock = TokioClock(origin);
                Algorithm::Gcra(Governor::direct_with_clock(quota, clock), clock)
            }
            RateLimitConfig::SlidingWindow { limit, window_ms } => Algorithm::Window(
                SlidingLog::new(*limit, Duration::from_millis(*window_ms), origin),
            ),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                name: Arc::from(name.into().as_str()),
                config,
                algorithm,
                admitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// Admits one call now, or says when to retry.
    pub fn check(&self) -> Result<(), RateLimited> {
        let s = &self.shared;
        let verdict = match &s.algorithm {
            Algorithm::Gcra(limiter, clock) => limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(clock.now())),
            Algorithm::Window(log) => log.check(),
        };
        match verdict {
            Ok(()) => {
                s.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(retry_after) => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                Err(RateLimited {
                    name: s.name.clone(),
                    retry_after,
                })
            }
        }
    }

    /// The counters.
    pub fn metrics(&self) -> RateLimitMetrics {
        RateLimitMetrics {
            admitted_total: self.shared.admitted.load(Ordering::Acquire),
            rejected_total: self.shared.rejected.load(Ordering::Acquire),
        }
    }

    /// Runs `call` if the limit allows it now: a plain async wrapper.
    pub async fn run<T, E>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, BoxError>
    where
        E: Into<BoxError>,
    {
        self.check()?;
        call.await.map_err(Into::into)
    }

    /// Wraps `service`.
    pub fn layer<S>(&self, service: S) -> RateLimitService<S> {
        RateLimitService {
            inner: service,
            limiter: self.clone(),
        }
    }
}

/// A service behind a [`RateLimiter`].
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S, Req> Service<Req> for RateLimitService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(limited) => ResponseFuture::rejected(limited),
        }
    }
}
