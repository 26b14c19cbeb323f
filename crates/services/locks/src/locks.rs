//! [`Locks`]: the locks every backend is used through. It checks input (naming the
//! field as the `lock` service's params do), waits for a busy lock with backoff
//! bounded by the caller's wait, turns a refused token into
//! [`LockError::NotHolder`], counts, and hands out [`Guard`]s whose watchdog keeps
//! the lease alive.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::backend::{Attempt, LockBackend, millis};
use crate::guard::Guard;
use crate::metrics::TokenOp;
use crate::{LockError, LockMetrics, LocksConfig, MemoryBackend};

/// A lock granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Grant {
    /// The lock's name.
    pub name: String,
    /// The fencing token: greater than every earlier grant's of this lock. Pass it
    /// to `extend` and `release`, and to fenced writes of the data the lock guards.
    pub token: u64,
    /// The lease, in milliseconds: the lock is free after it unless extended.
    pub lease_ms: u64,
    /// How long the call waited for the lock, in milliseconds.
    pub waited_ms: u64,
}

/// Who holds a lock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// The lock's name.
    pub name: String,
    /// Whether it is held now.
    pub held: bool,
    /// The holder's label, when held (empty when the holder gave none).
    pub holder: Option<String>,
    /// The fencing token of the current grant, when held.
    pub token: Option<u64>,
    /// What is left of the lease in milliseconds, when held.
    pub remaining_ms: Option<u64>,
}

/// The locks, on one backend. Cheap to clone; clones share the backend.
#[derive(Clone)]
pub struct Locks {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn LockBackend>,
    config: LocksConfig,
    metrics: LockMetrics,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks")
            .field("backend", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

impl Locks {
    /// Locks on `backend`, held to `config`, counting in `metrics`.
    pub fn new(backend: Arc<dyn LockBackend>, config: LocksConfig, metrics: LockMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                config,
                metrics,
            }),
        }
    }

    /// Locks in this process.
    pub fn in_memory(config: LocksConfig) -> Self {
        let backend = Arc::new(MemoryBackend::new(config.max_locks));
        Self::new(backend, config, LockMetrics::new())
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The configuration.
    pub fn config(&self) -> &LocksConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &LockMetrics {
        &self.inner.metrics
    }

    fn check_name(&self, name: &str) -> Result<(), LockError> {
        let max = self.inner.config.max_name_bytes;
        if name.is_empty() {
            return Err(LockError::invalid("/name", "must not be empty"));
        }
        if name.len() > max {
            return Err(LockError::invalid(
                "/name",
                format!("is {} bytes, over locks.max_name_bytes ({max})", name.len()),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(LockError::invalid(
                "/name",
                "must not hold control characters",
            ));
        }
        Ok(())
    }

    fn check_lease(&self, lease: Duration) -> Result<(), LockError> {
        let max = self.inner.config.max_lease();
        if lease.is_zero() {
            return Err(LockError::invalid("/lease_ms", "must be at least 1"));
        }
        if lease > max {
            return Err(LockError::invalid(
                "/lease_ms",
                format!("is over locks.max_lease_ms ({})", millis(max)),
            ));
        }
        Ok(())
    }

    /// Counts a failed operation's error.
    fn observe<T>(&self, result: Result<T, LockError>) -> Result<T, LockError> {
        if let Err(e) = &result {
            match e {
                LockError::Busy { .. } => self.inner.metrics.busy(),
                LockError::NotHolder { .. } => {}
                other => self.inner.metrics.error(other.kind()),
            }
        }
        result
    }

    /// Takes `name` for `lease`, waiting up to `wait` while another holds it (no
    /// wait: one attempt). `holder` labels the grant in `status` (may be empty).
    /// [`LockError::Busy`] when the lock stayed held.
    pub async fn grant(
        &self,
        name: &str,
        lease: Duration,
        wait: Duration,
        holder: &str,
    ) -> Result<Grant, LockError> {
        let result = self.grant_inner(name, lease, wait, holder).await;
        self.observe(result)
    }

    async fn grant_inner(
        &self,
        name: &str,
        lease: Duration,
        wait: Duration,
        holder: &str,
    ) -> Result<Grant, LockError> {
        let config = &self.inner.config;
        self.check_name(name)?;
        self.check_lease(lease)?;
        if wait > config.max_wait() {
            return Err(LockError::invalid(
                "/wait_ms",
                format!("is over locks.max_wait_ms ({})", config.max_wait_ms),
            ));
        }
        if holder.len() > config.max_holder_bytes {
            return Err(LockError::invalid(
                "/holder",
                format!(
                    "is {} bytes, over locks.max_holder_bytes ({})",
                    holder.len(),
                    config.max_holder_bytes
                ),
            ));
        }
        let start = Instant::now();
        let deadline = start + wait;
        let mut pause = Duration::from_millis(config.poll_min_ms);
        let max_pause = Duration::from_millis(config.poll_max_ms);
        let mut waited = false;
        loop {
            match self.inner.backend.try_acquire(name, holder, lease).await? {
                Attempt::Granted(token) => {
                    let elapsed = start.elapsed();
                    if waited {
                        self.inner.metrics.waited(elapsed);
                    }
                    self.inner.metrics.granted();
                    return Ok(Grant {
                        name: name.to_owned(),
                        token,
                        lease_ms: millis(lease),
                        waited_ms: if waited { millis(elapsed) } else { 0 },
                    });
                }
                Attempt::Busy(remaining) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let mut waited_ms = 0;
                        if waited {
                            self.inner.metrics.waited(start.elapsed());
                            waited_ms = millis(start.elapsed());
                        }
                        return Err(LockError::Busy {
                            name: name.to_owned(),
                            waited_ms,
                        });
                    }
                    waited = true;
                    // Wake when the lease ends if that is sooner than the next poll.
                    let mut nap = pause.min(deadline - now);
                    if !remaining.is_zero() {
                        nap = nap.min(remaining);
                    }
                    tokio::time::sleep(nap).await;
                    pause = (pause * 2).min(max_pause);
                }
            }
        }
    }

    /// Counts an extend or release `op` of `token`, done when `held`, refused
    /// otherwise.
    fn settle(&self, held: bool, op: TokenOp, name: &str, token: u64) -> Result<(), LockError> {
        let metrics = &self.inner.metrics;
        match (held, op) {
            (true, TokenOp::Extend) => metrics.extended(),
            (true, TokenOp::Release) => metrics.released(),
            (false, op) => {
                metrics.refused(op);
                return Err(LockError::NotHolder {
                    name: name.to_owned(),
                    token,
                });
            }
        }
        Ok(())
    }

    /// Sets the lease of the grant `token` of `name` to `lease` from now.
    /// [`LockError::NotHolder`] when `token` no longer holds the lock.
    pub async fn extend(&self, name: &str, token: u64, lease: Duration) -> Result<(), LockError> {
        let result = async {
            self.check_name(name)?;
            self.check_lease(lease)?;
            let held = self.inner.backend.extend(name, token, lease).await?;
            self.settle(held, TokenOp::Extend, name, token)
        }
        .await;
        self.observe(result)
    }

    /// Frees `name` if `token` holds it. [`LockError::NotHolder`] when it does not
    /// (its lease expired, or it was released already).
    pub async fn release(&self, name: &str, token: u64) -> Result<(), LockError> {
        let result = async {
            self.check_name(name)?;
            let held = self.inner.backend.release(name, token).await?;
            self.settle(held, TokenOp::Release, name, token)
        }
        .await;
        self.observe(result)
    }

    /// Who holds `name` now.
    pub async fn status(&self, name: &str) -> Result<Status, LockError> {
        let result = async {
            self.check_name(name)?;
            let held = self.inner.backend.status(name).await?;
            Ok(match held {
                Some(h) => Status {
                    name: name.to_owned(),
                    held: true,
                    holder: Some(h.holder),
                    token: Some(h.token),
                    remaining_ms: Some(millis(h.remaining)),
                },
                None => Status {
                    name: name.to_owned(),
                    ..Status::default()
                },
            })
        }
        .await;
        self.observe(result)
    }

    /// Takes `name` as [`grant`](Self::grant) does and returns a [`Guard`] whose
    /// watchdog extends the lease every third of it while the guard lives, and
    /// which releases the lock when dropped.
    pub async fn acquire(
        &self,
        name: &str,
        lease: Duration,
        wait: Duration,
        holder: &str,
    ) -> Result<Guard, LockError> {
        let grant = self.grant(name, lease, wait, holder).await?;
        Ok(Guard::start(self.clone(), grant, lease))
    }
}
