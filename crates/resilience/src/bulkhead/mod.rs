//! Bulkhead: a cap on concurrent calls, with an optional bounded wait queue.
//!
//! At most `max_concurrent` calls run at once. A call over the cap waits in a queue
//! of at most `max_queue` calls for at most `max_wait`; a call that finds the queue
//! full, or waits too long, fails at once with [`BulkheadFull`] instead of piling up.
//! Built on tokio's semaphore (fair, first come first served).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use plexus_resilience::{Bulkhead, BulkheadFull};
//!
//! let bulkhead = Bulkhead::builder("storage").max_concurrent(1).max_queue(0).build().unwrap();
//! let held = bulkhead.try_acquire().unwrap();
//! let err = bulkhead.run(async { Ok::<_, std::io::Error>(()) }).await.unwrap_err();
//! assert!(err.downcast_ref::<BulkheadFull>().is_some());
//! drop(held);
//! # }
//! ```

mod error;
mod future;
mod layer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

pub use error::BulkheadFull;
pub use future::ResponseFuture;
pub use layer::BulkheadLayer;

use crate::error::check_positive;
use crate::{BoxError, ConfigError};

/// The bulkhead's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkheadConfig {
    /// The name carried by rejections.
    pub name: String,
    /// Calls allowed to run at once.
    pub max_concurrent: usize,
    /// Calls allowed to wait for a slot (0: reject at once when full).
    pub max_queue: usize,
    /// The longest a call waits for a slot, in milliseconds; `None` waits as long as
    /// it takes.
    pub max_wait_ms: Option<u64>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            max_concurrent: 25,
            max_queue: 0,
            max_wait_ms: None,
        }
    }
}

impl BulkheadConfig {
    /// Rejects nonsense, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        check_positive("max_concurrent", self.max_concurrent as u64)?;
        if self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new("max_concurrent", "is too large"));
        }
        if self.max_wait_ms == Some(0) {
            return Err(ConfigError::new(
                "max_wait_ms",
                "must be at least 1 (use max_queue = 0 to never wait)",
            ));
        }
        Ok(())
    }
}

/// Counters and gauges of a bulkhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BulkheadMetrics {
    /// Calls running now.
    pub in_flight: usize,
    /// Calls waiting now.
    pub queued: usize,
    /// Calls admitted since it was built.
    pub admitted_total: u64,
    /// Calls rejected since it was built.
    pub rejected_total: u64,
}

struct Shared {
    config: BulkheadConfig,
    name: Arc<str>,
    semaphore: Arc<Semaphore>,
    max_wait: Option<Duration>,
    queued: AtomicUsize,
    admitted: AtomicU64,
    rejected: AtomicU64,
}

/// A bulkhead; clones share the cap.
#[derive(Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("config", &self.shared.config)
            .finish()
    }
}

/// Builds a [`Bulkhead`].
#[derive(Debug)]
#[must_use]
pub struct BulkheadBuilder {
    config: BulkheadConfig,
}

impl BulkheadBuilder {
    /// Calls allowed to run at once.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.config.max_concurrent = n;
        self
    }
    /// Calls allowed to wait.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.config.max_queue = n;
        self
    }
    /// The longest wait.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait_ms = Some(wait.as_millis() as u64);
        self
    }
    /// Validates and builds.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        Bulkhead::new(self.config)
    }
}

/// A slot in the bulkhead, released when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

impl Bulkhead {
    /// A builder from the defaults (25 concurrent calls, no queue), named `name`.
    pub fn builder(name: impl Into<String>) -> BulkheadBuilder {
        BulkheadBuilder {
            config: BulkheadConfig {
                name: name.into(),
                ..BulkheadConfig::default()
            },
        }
    }

    /// A bulkhead from a configuration, after validating it.
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                name: Arc::from(config.name.as_str()),
                semaphore: Arc::new(Semaphore::new(config.max_concurrent)),
                max_wait: config.max_wait_ms.map(Duration::from_millis),
                queued: AtomicUsize::new(0),
                admitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                config,
            }),
        })
    }

    /// The counters and gauges.
    pub fn metrics(&self) -> BulkheadMetrics {
        let s = &self.shared;
        BulkheadMetrics {
            in_flight: s.config.max_concurrent - s.semaphore.available_permits(),
            queued: s.queued.load(Ordering::Acquire),
            admitted_total: s.admitted.load(Ordering::Acquire),
            rejected_total: s.rejected.load(Ordering::Acquire),
        }
    }

    /// A slot now, or the rejection (never waits).
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match self.shared.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                self.shared.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(BulkheadPermit { _permit: permit })
            }
            Err(_) => Err(self.reject(false)),
        }
    }

    /// A slot, waiting in the queue if there is room in it.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if let Ok(permit) = self.shared.semaphore.clone().try_acquire_owned() {
            self.shared.admitted.fetch_add(1, Ordering::Relaxed);
            return Ok(BulkheadPermit { _permit: permit });
        }
        self.wait().await
    }

    async fn wait(&self) -> Result<BulkheadPermit, BulkheadFull> {
        let s = &self.shared;
        let max_queue = s.config.max_queue;
        let queued = s
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max_queue).then_some(q + 1)
            });
        if queued.is_err() {
            return Err(self.reject(false));
        }
        let _leave = LeaveQueue(&s.queued);
        let acquire = s.semaphore.clone().acquire_owned();
        let permit = match s.max_wait {
            Some(wait) => match tokio::time::timeout(wait, acquire).await {
                Ok(permit) => permit,
                Err(_) => return Err(self.reject(true)),
            },
            None => acquire.await,
        };
        match permit {
            Ok(permit) => {
                s.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(BulkheadPermit { _permit: permit })
            }
            // The semaphore is never closed; treat it as full all the same.
            Err(_) => Err(self.reject(false)),
        }
    }

    fn reject(&self, waited: bool) -> BulkheadFull {
        let s = &self.shared;
        s.rejected.fetch_add(1, Ordering::Relaxed);
        BulkheadFull {
            name: s.name.clone(),
            max_concurrent: s.config.max_concurrent,
            max_queue: s.config.max_queue,
            waited: waited.then_some(s.max_wait).flatten(),
        }
    }

    /// Runs `call` in a slot: a plain async wrapper.
    pub async fn run<T, E>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, BoxError>
    where
        E: Into<BoxError>,
    {
        let _permit = self.acquire().await?;
        call.await.map_err(Into::into)
    }

    /// Wraps `service`; it must be `Clone` so a call can wait for a slot.
    pub fn layer<S>(&self, service: S) -> BulkheadService<S> {
        BulkheadService {
            inner: service,
            bulkhead: self.clone(),
        }
    }
}

struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A service behind a [`Bulkhead`].
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.bulkhead.shared.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                self.bulkhead
                    .shared
                    .admitted
                    .fetch_add(1, Ordering::Relaxed);
                ResponseFuture::running(self.inner.call(req), BulkheadPermit { _permit: permit })
            }
            Err(_) => {
                let fresh = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, fresh);
                let bulkhead = self.bulkhead.clone();
                ResponseFuture::waiting(Box::pin(async move { bulkhead.wait().await }), ready, req)
            }
        }
    }
}
