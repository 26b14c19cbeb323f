//! [`RegistryConfig`]: heartbeat TTL, grace period, sweep interval and every bound.

use std::time::Duration;

use crate::RegistryError;

/// How the registry ages instances and how much it holds. Every bound is here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// An instance whose last heartbeat is older than this is marked
    /// [`plexus_core::ServiceStatus::Unhealthy`] with reason `"stale"` (default 15 s).
    pub heartbeat_ttl: Duration,
    /// A stale instance is deregistered once its last heartbeat is older than
    /// `heartbeat_ttl + deregister_after` (default 60 s). A heartbeat before then
    /// restores the status it had.
    pub deregister_after: Duration,
    /// How often the sweeper looks for stale instances (default 1 s). Staleness is
    /// noticed at the first sweep after the TTL runs out, so at most this late.
    pub sweep_interval: Duration,
    /// How many changes a watcher may fall behind before it is told it lagged and
    /// loses the oldest ones (default 1024). The registry never waits for a watcher.
    pub watch_capacity: usize,
    /// The most instances the registry holds; registering one more fails with
    /// [`RegistryError::Full`] (default 10,000).
    pub max_instances: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            heartbeat_ttl: Duration::from_secs(15),
            deregister_after: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            watch_capacity: 1024,
            max_instances: 10_000,
        }
    }
}

/// The largest watch capacity accepted (tokio's broadcast channel limit is far above).
const MAX_WATCH_CAPACITY: usize = 1 << 20;

impl RegistryConfig {
    /// Checks every field, naming the first one out of range.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let invalid = |field, reason: &str| {
            Err(RegistryError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.heartbeat_ttl.is_zero() {
            return invalid("heartbeat_ttl", "must be longer than zero");
        }
        if self.sweep_interval.is_zero() {
            return invalid("sweep_interval", "must be longer than zero");
        }
        if self.watch_capacity == 0 || self.watch_capacity > MAX_WATCH_CAPACITY {
            return Err(RegistryError::InvalidConfig {
                field: "watch_capacity",
                reason: format!(
                    "is {}; it must be between 1 and {MAX_WATCH_CAPACITY}",
                    self.watch_capacity
                ),
            });
        }
        if self.max_instances == 0 {
            return invalid("max_instances", "must be at least 1");
        }
        Ok(())
    }
}
