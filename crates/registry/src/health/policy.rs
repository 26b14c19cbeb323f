//! [`CheckPolicy`]: how often a component is checked and what a failure triggers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a failing outcome does: a check that could not run
/// ([`CheckPolicy::on_check_error`]) or a component that reports itself unhealthy
/// ([`CheckPolicy::on_unhealthy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureResponse {
    /// Counts toward the failure threshold; at the threshold the component becomes
    /// Unhealthy and its heal action runs (again on later failures, within the
    /// [`HealPolicy`]).
    Heal,
    /// Counts toward the threshold; at the threshold the component becomes
    /// Unhealthy. Nothing is healed.
    MarkUnhealthy,
    /// Counts toward the threshold; at the threshold the component becomes Degraded
    /// (never better than it already is). Nothing is healed.
    MarkDegraded,
    /// Recorded and counted in the component's counters, but it changes neither the
    /// status nor the consecutive counts.
    Ignore,
}

/// Whether a component's failure takes the system down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// Unhealthy makes the system Critical.
    Critical,
    /// Unhealthy makes the system Degraded.
    Optional,
}

/// Limits on healing, so a heal loop cannot spin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealPolicy {
    /// Heal attempts allowed until the component recovers (default 5). After that it
    /// stays Unhealthy with `heal_exhausted` set until a check passes.
    pub max_attempts: u32,
    /// The least time between the end of one attempt and the start of the next
    /// (default 1 s); it doubles after each attempt, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest time between attempts (default 60 s).
    pub max_backoff: Duration,
    /// An attempt that runs longer is abandoned and recorded as timed out
    /// (default 30 s).
    pub timeout: Duration,
}

impl Default for HealPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

impl HealPolicy {
    /// The wait after attempt number `attempt` (1 for the first).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// How one component is checked and what its failures trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckPolicy {
    /// Time between checks (default 10 s). The first check runs when the component
    /// is added; a check that runs long delays the next one rather than bunching them.
    pub interval: Duration,
    /// A check that takes longer is abandoned and recorded as a check failure
    /// (timeout) (default 5 s).
    pub timeout: Duration,
    /// Consecutive failing outcomes before the status changes (default 3).
    pub failure_threshold: u32,
    /// Consecutive passing outcomes before the status changes (default 1).
    pub success_threshold: u32,
    /// What a check that errors or times out does (default [`FailureResponse::Heal`]).
    pub on_check_error: FailureResponse,
    /// What a report of Unhealthy does (default [`FailureResponse::Heal`]).
    pub on_unhealthy: FailureResponse,
    /// Critical (default) or optional to the system.
    pub criticality: Criticality,
    /// Limits on healing.
    pub heal: HealPolicy,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            success_threshold: 1,
            on_check_error: FailureResponse::Heal,
            on_unhealthy: FailureResponse::Heal,
            criticality: Criticality::Critical,
            heal: HealPolicy::default(),
        }
    }
}

impl CheckPolicy {
    /// Sets the interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the failure and success thresholds.
    pub fn with_thresholds(mut self, failures: u32, successes: u32) -> Self {
        self.failure_threshold = failures;
        self.success_threshold = successes;
        self
    }

    /// Sets what a check error or timeout does.
    pub fn on_check_error(mut self, response: FailureResponse) -> Self {
        self.on_check_error = response;
        self
    }

    /// Sets what an Unhealthy report does.
    pub fn on_unhealthy(mut self, response: FailureResponse) -> Self {
        self.on_unhealthy = response;
        self
    }

    /// Marks the component optional: its failure degrades the system.
    pub fn optional(mut self) -> Self {
        self.criticality = Criticality::Optional;
        self
    }

    /// Marks the component critical: its failure makes the system Critical.
    pub fn critical(mut self) -> Self {
        self.criticality = Criticality::Critical;
        self
    }

    /// Sets the heal limits.
    pub fn with_heal(mut self, heal: HealPolicy) -> Self {
        self.heal = heal;
        self
    }

    /// Checks every field; returns the first one out of range and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let nonzero = [
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("heal.timeout", self.heal.timeout),
        ];
        for (field, value) in nonzero {
            if value.is_zero() {
                return Err((field, "must be longer than zero".to_owned()));
            }
        }
        let at_least_one = [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                return Err((field, "must be at least 1".to_owned()));
            }
        }
        if self.heal.backoff > self.heal.max_backoff {
            return Err((
                "heal.backoff",
                format!(
                    "is {:?}, longer than heal.max_backoff ({:?})",
                    self.heal.backoff, self.heal.max_backoff
                ),
            ));
        }
        Ok(())
    }
}
