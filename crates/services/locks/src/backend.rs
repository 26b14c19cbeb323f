//! [`LockBackend`]: what a backend of the locks does. [`Locks`](crate::Locks) in
//! front of it checks input, waits for a busy lock, turns a refused token into a
//! typed error and counts; a backend only grants, extends, releases and reads one
//! lock at a time, each in one step (one Lua script, one SQL statement, one
//! critical section).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::LockError;

/// What one attempt to take a lock did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Granted with this fencing token.
    Granted(u64),
    /// Held by another for about this much longer (zero when unknown).
    Busy(Duration),
}

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The holder's label (empty when none was given).
    pub holder: String,
    /// The fencing token of the grant.
    pub token: u64,
    /// What is left of the lease.
    pub remaining: Duration,
}

/// A backend of the locks. Every grant's token is greater than every earlier
/// grant's token of the same lock name.
#[plexus_core::async_trait]
pub trait LockBackend: Send + Sync + 'static {
    /// Its name: `memory`, `redis` or `postgres`.
    fn name(&self) -> &'static str;

    /// Takes `lock` for `lease` if it is free (never held, released, or its lease
    /// over).
    async fn try_acquire(
        &self,
        lock: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Attempt, LockError>;

    /// Sets the lease of the grant `token` to `lease` from now; `false` when
    /// `token` does not hold the lock (expired, released, or another's).
    async fn extend(&self, lock: &str, token: u64, lease: Duration) -> Result<bool, LockError>;

    /// Frees the lock if `token` holds it; `false` when it does not.
    async fn release(&self, lock: &str, token: u64) -> Result<bool, LockError>;

    /// Who holds `lock` now, if anyone.
    async fn status(&self, lock: &str) -> Result<Option<Held>, LockError>;
}

/// The floor of a token taken now: microseconds since the Unix epoch. A backend
/// that loses its counter (a process restart) starts again from the clock, above
/// every token it gave before as long as the clock did not go back and it gave
/// fewer than one token per microsecond.
pub(crate) fn clock_floor() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A lease or remaining time in whole milliseconds, at least 1 for a non-zero
/// duration.
pub(crate) fn millis(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() { 1 } else { ms }
}
