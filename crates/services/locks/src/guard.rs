//! [`Guard`]: a lock held by this process, kept alive by a watchdog task.
//!
//! The watchdog extends the lease every third of it. When an extension is refused
//! (the token no longer holds the lock) or the backend stays out of reach until
//! less than a third of the lease is left, the guard reports the lock **lost**
//! ([`Guard::lost`], [`Guard::is_lost`], [`Guard::watch`]) so the holder stops
//! acting on what the lock guards; fenced writes refuse it anyway once another
//! holder has written. Dropping the guard stops the watchdog and releases the lock
//! in the background; [`Guard::release`] releases it and says how that went.
//!
//! A remote caller (JSON-RPC) has no watchdog: it calls `lock.extend` with its
//! token before the lease ends (every third of the lease is a good rhythm) and
//! treats a `not_holder` error as having lost the lock.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Grant, LockError, Locks};

/// A lock held with a watchdog extending its lease. Releases it when dropped.
#[derive(Debug)]
pub struct Guard {
    locks: Locks,
    grant: Grant,
    lost: watch::Receiver<bool>,
    watchdog: Option<JoinHandle<()>>,
}

impl Guard {
    pub(crate) fn start(locks: Locks, grant: Grant, lease: Duration) -> Self {
        let (tx, lost) = watch::channel(false);
        let watchdog = tokio::spawn(watchdog(
            locks.clone(),
            grant.name.clone(),
            grant.token,
            lease,
            tx,
        ));
        Self {
            locks,
            grant,
            lost,
            watchdog: Some(watchdog),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.grant.name
    }

    /// The fencing token of this grant.
    pub fn token(&self) -> u64 {
        self.grant.token
    }

    /// The grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Whether the lock has been lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// A receiver that turns `true` when the lock is lost.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Completes when the lock is lost (at once if it already is).
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        // A closed channel means the watchdog is gone: the lease is not kept either.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Stops the watchdog and releases the lock. [`LockError::NotHolder`] when the
    /// lease had already been lost.
    pub async fn release(mut self) -> Result<(), LockError> {
        self.stop();
        let (name, token) = (self.grant.name.clone(), self.grant.token);
        self.locks.release(&name, token).await
    }

    /// Stops the watchdog and lets the lease run out without releasing, as a holder
    /// that died would: the lock is free once the lease is over.
    pub fn abandon(mut self) {
        self.stop();
    }

    /// Stops the watchdog; the guard no longer releases on drop.
    fn stop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(watchdog) = self.watchdog.take() else {
            return;
        };
        watchdog.abort();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (locks, name, token) = (
            self.locks.clone(),
            self.grant.name.clone(),
            self.grant.token,
        );
        runtime.spawn(async move {
            if let Err(e) = locks.release(&name, token).await {
                tracing::debug!(lock = %name, token, error = %e, "a dropped guard's release failed");
            }
        });
    }
}

/// Extends the lease every third of it until refused, or until the backend has
/// been out of reach so long that less than a third of the lease may be left;
/// then reports the lock lost.
async fn watchdog(
    locks: Locks,
    name: String,
    token: u64,
    lease: Duration,
    lost: watch::Sender<bool>,
) {
    let period = (lease / 3).max(Duration::from_millis(1));
    let mut until = Instant::now() + lease;
    let mut next = Instant::now() + period;
    loop {
        tokio::time::sleep_until(next).await;
        let at = Instant::now();
        match locks.extend(&name, token, lease).await {
            Ok(()) => {
                until = at + lease;
                next = at + period;
            }
            Err(LockError::NotHolder { .. }) => break,
            Err(e) => {
                let now = Instant::now();
                if until.saturating_duration_since(now) <= period {
                    tracing::warn!(lock = %name, token, error = %e, "lease could not be extended in time; the lock is lost");
                    break;
                }
                tracing::debug!(lock = %name, token, error = %e, "lease extension failed; trying again");
                next = now + (period / 4).max(Duration::from_millis(1));
            }
        }
    }
    locks.metrics().lost();
    lost.send_replace(true);
}
