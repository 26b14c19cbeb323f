//! The error of a call for which no instance was left.

use std::fmt;
use std::time::Duration;

use plexus_core::InstanceId;

/// Why one instance could not take the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// It is marked unhealthy.
    Unhealthy,
    /// Its circuit breaker does not let calls through.
    BreakerOpen {
        /// When the breaker allows a trial, if it will by itself.
        retry_after: Option<Duration>,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Unhealthy => f.write_str("unhealthy"),
            Unavailable::BreakerOpen {
                retry_after: Some(after),
            } => write!(f, "breaker open (trial in {after:?})"),
            Unavailable::BreakerOpen { retry_after: None } => f.write_str("breaker open"),
        }
    }
}

/// No instance could take the call; says why for each one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NoInstanceAvailable {
    /// The balancer's name.
    pub name: String,
    /// Each instance and why it was skipped (empty: none is registered).
    pub reasons: Vec<(InstanceId, Unavailable)>,
}

impl fmt::Display for NoInstanceAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            return write!(
                f,
                "no instance available for {}: none registered",
                self.name
            );
        }
        write!(f, "no instance available for {}:", self.name)?;
        for (i, (id, why)) in self.reasons.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{id} {why}")?;
        }
        Ok(())
    }
}
