//! Deadlines: a per-call time limit carried with the call, never extended.
//!
//! A [`Deadline`] layer gives each call the instant by which it must finish: now plus
//! its timeout, or the caller's deadline if that comes first, so an inner layer can
//! only shorten it. The deadline travels with the call as a task-local value that
//! every layer underneath reads with [`current`] (retries stop before it) and that a
//! transport writes into [`plexus_core::Headers`] with [`to_headers`] so the next hop
//! keeps it ([`from_headers`]). When it passes, the call fails with
//! [`DeadlineExceeded`]; a call whose deadline has already passed is not started.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use plexus_resilience::{DeadlineExceeded, deadline};
//!
//! let slow = async {
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     Ok::<_, std::io::Error>(())
//! };
//! let err = deadline::within(Duration::from_secs(1), slow).await.unwrap_err();
//! assert!(err.downcast_ref::<DeadlineExceeded>().is_some());
//! # }
//! ```

mod error;
mod future;
mod layer;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use plexus_core::Headers;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tower::Service;

pub use error::DeadlineExceeded;
pub use future::ResponseFuture;
pub use layer::DeadlineLayer;

use crate::{BoxError, ConfigError};

/// The header that carries the time left, in milliseconds, across a hop.
pub const HEADER: &str = "plexus-deadline-ms";

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline of the call being made on this task, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The time left before the current deadline, if any (zero once passed).
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The earlier of `deadline` and the current one: a deadline is never extended.
pub fn effective(deadline: Instant) -> Instant {
    match current() {
        Some(outer) if outer < deadline => outer,
        _ => deadline,
    }
}

/// Runs `f` with `deadline` (or the current one, if earlier) as the current deadline.
pub fn scope_sync<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    DEADLINE.sync_scope(effective(deadline), f)
}

/// Writes the time left into `headers` for the next hop (no-op without a deadline).
pub fn to_headers(headers: &mut Headers) {
    if let Some(left) = remaining() {
        headers.insert(HEADER, left.as_millis().to_string());
    }
}

/// The deadline a caller sent in `headers`, as an instant on this node's clock.
pub fn from_headers(headers: &Headers) -> Option<Instant> {
    let ms: u64 = headers.get(HEADER)?.trim().parse().ok()?;
    Some(Instant::now() + Duration::from_millis(ms))
}

/// Runs `call` with a deadline `timeout` from now (or the caller's, if earlier): a
/// plain async wrapper.
pub async fn within<T, E>(
    timeout: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError>
where
    E: Into<BoxError>,
{
    until(Instant::now() + timeout, call).await
}

/// Runs `call` with `deadline` (or the current one, if earlier) as the current
/// deadline, without enforcing it: for a caller whose last step enforces the
/// deadline it reads with [`current`] (one timer per call instead of two).
pub async fn scoped<F: Future>(deadline: Instant, call: F) -> F::Output {
    DEADLINE.scope(effective(deadline), call).await
}

/// Runs `call` with the deadline `deadline` (or the caller's, if earlier).
pub async fn until<T, E>(
    deadline: Instant,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError>
where
    E: Into<BoxError>,
{
    let deadline = effective(deadline);
    if Instant::now() >= deadline {
        return Err(DeadlineExceeded::new(deadline).into());
    }
    match DEADLINE
        .scope(deadline, tokio::time::timeout_at(deadline, call))
        .await
    {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(DeadlineExceeded::new(deadline).into()),
    }
}

/// The deadline layer's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineConfig {
    /// The time a call may take, in milliseconds.
    pub timeout_ms: u64,
}

impl DeadlineConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::error::check_positive("timeout_ms", self.timeout_ms)
    }
}

/// A per-call time limit: see the [module](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    timeout: Duration,
}

impl Deadline {
    /// Calls must finish within `timeout` (or their caller's deadline, if earlier).
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// From a configuration, after validating it.
    pub fn from_config(config: &DeadlineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::new(Duration::from_millis(config.timeout_ms)))
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Wraps `service`.
    pub fn layer<S>(&self, service: S) -> DeadlineService<S> {
        DeadlineService {
            inner: service,
            timeout: self.timeout,
        }
    }
}

/// A service whose calls carry a deadline.
#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    timeout: Duration,
}

impl<S, Req> Service<Req> for DeadlineService<S>
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
        let now = Instant::now();
        let deadline = effective(now + self.timeout);
        if now >= deadline {
            return ResponseFuture::expired(deadline);
        }
        let inner = DEADLINE.sync_scope(deadline, || self.inner.call(req));
        ResponseFuture::new(inner, deadline)
    }
}
