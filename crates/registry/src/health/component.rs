//! Components: what is checked ([`ComponentSpec`]), what is known about it
//! ([`ComponentHealth`]), and the threshold logic that moves its status.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use plexus_core::{HealthReport, HealthState, InstanceId, Service, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::clock::micros;
use crate::health::{
    CheckPolicy, Criticality, FailureResponse, HealAction, HealthCheck, ServiceCheck,
};
use strum::{Display as StrumDisplay, IntoStaticStr};

/// What kind of thing a component is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A service instance (bound to its registration when it has one).
    Service,
    /// A client of something outside: a database pool, a Redis or NATS connection.
    Client,
    /// Something the system depends on and does not control.
    Dependency,
    /// Anything else.
    Custom,
}

/// A component's status as its checks have established it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// No threshold reached yet (just added, or only ignored failures so far).
    Unknown,
    /// Working.
    Healthy,
    /// Working with reduced capacity or quality.
    Degraded,
    /// Not working.
    Unhealthy,
}

impl ComponentStatus {
    /// The status as lower-case text.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What one check produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The component answered with its own view of its health.
    Reported {
        /// What it said.
        state: HealthState,
    },
    /// The check could not run.
    CheckFailed {
        /// How it failed.
        failure: CheckFailure,
    },
}

impl CheckOutcome {
    /// Whether the check itself failed (error or timeout), as opposed to the
    /// component answering.
    pub fn is_check_failure(&self) -> bool {
        matches!(self, Self::CheckFailed { .. })
    }
}

/// How a check failed to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckFailure {
    /// The check returned an error (or panicked).
    Error {
        /// What it said.
        message: String,
    },
    /// The check did not end within the policy's timeout.
    Timeout {
        /// The timeout it ran past.
        #[serde(rename = "after_us", with = "micros")]
        after: Duration,
    },
}

/// What brought a component back from Unhealthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum RecoveryCause {
    /// A heal attempt reported success and the check after it passed.
    Healed {
        /// The action's name.
        action: String,
        /// The attempt's number since the component fell.
        attempt: u32,
    },
    /// A check passed with no successful heal before it: the component came back
    /// by itself (or by something the monitor did not do).
    CheckPassed,
}

impl RecoveryCause {
    /// The cause as a metric label: `healed` or `check_passed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Healed { .. } => "healed",
            Self::CheckPassed => "check_passed",
        }
    }
}

/// A recovery, as recorded: a component that was Unhealthy passing its checks again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// What caused it.
    #[serde(flatten)]
    pub cause: RecoveryCause,
    /// When the check that established it ended.
    pub at: Timestamp,
    /// How long the component had been Unhealthy.
    #[serde(rename = "down_for_us", with = "micros")]
    pub down_for: Duration,
    /// Heal attempts made while it was down.
    pub heal_attempts: u32,
}

/// A component to watch: its name, kind, check, policy, optional heal action and
/// optional registry instance.
#[derive(Clone)]
pub struct ComponentSpec {
    pub(crate) name: String,
    pub(crate) kind: ComponentKind,
    pub(crate) check: Arc<dyn HealthCheck>,
    pub(crate) policy: CheckPolicy,
    pub(crate) heal: Option<HealAction>,
    pub(crate) instance: Option<InstanceId>,
}

impl ComponentSpec {
    /// A component named `name` (unique in its monitor), checked by `check` with
    /// the default [`CheckPolicy`], no heal action.
    pub fn new(name: impl Into<String>, kind: ComponentKind, check: impl HealthCheck) -> Self {
        Self {
            name: name.into(),
            kind,
            check: Arc::new(check),
            policy: CheckPolicy::default(),
            heal: None,
            instance: None,
        }
    }

    /// An in-process service, named and bound by its instance id and checked through
    /// [`Service::health`]. Its status changes are written to the registry when the
    /// monitor has one.
    pub fn service(service: Arc<dyn Service>) -> Self {
        let instance = service.descriptor().instance;
        let mut spec = Self::new(
            instance.as_str(),
            ComponentKind::Service,
            ServiceCheck::new(service),
        );
        spec.instance = Some(instance);
        spec
    }

    /// Its name, unique in its monitor.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy it is checked by.
    pub fn policy(&self) -> &CheckPolicy {
        &self.policy
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: CheckPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the heal action.
    pub fn with_heal(mut self, action: HealAction) -> Self {
        self.heal = Some(action);
        self
    }

    /// Binds the component to a registry instance: the monitor sets that instance's
    /// status when the component's changes.
    pub fn with_instance(mut self, instance: impl Into<InstanceId>) -> Self {
        self.instance = Some(instance.into());
        self
    }
}

impl fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("policy", &self.policy)
            .field("heal", &self.heal)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// Everything known about one component's health. Serializable for `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// Its name.
    pub component: String,
    /// Its kind.
    pub kind: ComponentKind,
    /// Critical or optional to the system.
    pub criticality: Criticality,
    /// The registry instance it is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    /// Its status.
    pub status: ComponentStatus,
    /// The last check's detail: the report's text, or why the check failed.
    pub detail: String,
    /// How long the last check took.
    #[serde(rename = "latency_us", with = "micros::option")]
    pub latency: Option<Duration>,
    /// Checks run.
    pub checks: u64,
    /// Checks that errored or timed out.
    pub check_failures: u64,
    /// Checks in which the component reported itself Unhealthy.
    pub unhealthy_reports: u64,
    /// Failing outcomes in a row (ignored ones not counted).
    pub consecutive_failures: u32,
    /// Passing outcomes in a row.
    pub consecutive_successes: u32,
    /// What the last check produced.
    pub last_outcome: Option<CheckOutcome>,
    /// When the last check ended.
    pub last_checked: Option<Timestamp>,
    /// When the status last changed (or the component was added).
    pub status_since: Timestamp,
    /// Whether a heal action runs now.
    pub healing: bool,
    /// The heal action's name, if it has one.
    pub heal_action: Option<String>,
    /// Heal attempts made in all.
    pub heal_attempts: u64,
    /// Heal attempts that failed or timed out.
    pub heal_failures: u64,
    /// Heal attempts since the component was last well.
    pub heals_since_recovery: u32,
    /// Whether [`crate::health::HealPolicy::max_attempts`] is used up.
    pub heal_exhausted: bool,
    /// Recoveries from Unhealthy that a successful heal brought about.
    #[serde(default)]
    pub recoveries_healed: u64,
    /// Recoveries from Unhealthy with no successful heal before them.
    #[serde(default)]
    pub recoveries_unaided: u64,
    /// The last recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recovery: Option<Recovery>,
}

/// A component's record and its heal schedule, changed by one check at a time.
pub(crate) struct ComponentState {
    pub(crate) health: ComponentHealth,
    next_heal_at: Option<Instant>,
    /// The last heal attempt since the component fell, when it reported success
    /// (action and number): a recovery after it is the heal's.
    healed_by: Option<(String, u32)>,
}

/// What recording one outcome did.
pub(crate) struct Recorded {
    /// What the check produced.
    pub(crate) outcome: CheckOutcome,
    /// The status before and after, when it changed.
    pub(crate) changed: Option<(ComponentStatus, ComponentStatus)>,
    /// Whether a heal attempt is due now.
    pub(crate) heal_due: bool,
    /// The recovery this check established, if it did.
    pub(crate) recovered: Option<Recovery>,
}

impl ComponentState {
    pub(crate) fn new(spec: &ComponentSpec, at: Timestamp) -> Self {
        Self {
            health: ComponentHealth {
                component: spec.name.clone(),
                kind: spec.kind,
                criticality: spec.policy.criticality,
                instance: spec.instance.clone(),
                status: ComponentStatus::Unknown,
                detail: "not checked yet".to_owned(),
                latency: None,
                checks: 0,
                check_failures: 0,
                unhealthy_reports: 0,
                consecutive_failures: 0,
                consecutive_successes: 0,
                last_outcome: None,
                last_checked: None,
                status_since: at,
                healing: false,
                heal_action: spec.heal.as_ref().map(|a| a.name().to_owned()),
                heal_attempts: 0,
                heal_failures: 0,
                heals_since_recovery: 0,
                heal_exhausted: false,
                recoveries_healed: 0,
                recoveries_unaided: 0,
                last_recovery: None,
            },
            next_heal_at: None,
            healed_by: None,
        }
    }

    /// Records one check's result and moves the status when a threshold is reached.
    pub(crate) fn record(
        &mut self,
        result: Result<HealthReport, CheckFailure>,
        latency: Duration,
        at: Timestamp,
        policy: &CheckPolicy,
        can_heal: bool,
    ) -> Recorded {
        let h = &mut self.health;
        h.checks += 1;
        h.latency = Some(latency);
        h.last_checked = Some(at);
        let (outcome, response, passing) = match result {
            Ok(report) => {
                h.detail = report.detail;
                let response = match report.state {
                    HealthState::Unhealthy => {
                        h.unhealthy_reports += 1;
                        Some(policy.on_unhealthy)
                    }
                    HealthState::Healthy | HealthState::Degraded => None,
                };
                let passing = match report.state {
                    HealthState::Healthy => Some(ComponentStatus::Healthy),
                    HealthState::Degraded => Some(ComponentStatus::Degraded),
                    HealthState::Unhealthy => None,
                };
                let outcome = CheckOutcome::Reported {
                    state: report.state,
                };
                (outcome, response, passing)
            }
            Err(failure) => {
                h.check_failures += 1;
                h.detail = match &failure {
                    CheckFailure::Error { message } => format!("check failed: {message}"),
                    CheckFailure::Timeout { after } => {
                        format!("check timed out after {after:?}")
                    }
                };
                let outcome = CheckOutcome::CheckFailed { failure };
                (outcome, Some(policy.on_check_error), None)
            }
        };
        h.last_outcome = Some(outcome.clone());
        let mut target = None;
        match (passing, response) {
            (Some(status), _) => {
                h.consecutive_successes = h.consecutive_successes.saturating_add(1);
                h.consecutive_failures = 0;
                if h.consecutive_successes >= policy.success_threshold {
                    target = Some(status);
                }
            }
            (None, Some(FailureResponse::Ignore) | None) => {}
            (None, Some(response)) => {
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                h.consecutive_successes = 0;
                if h.consecutive_failures >= policy.failure_threshold {
                    target = match response {
                        // A failure never makes a status better.
                        FailureResponse::MarkDegraded if h.status == ComponentStatus::Unhealthy => {
                            None
                        }
                        FailureResponse::MarkDegraded => Some(ComponentStatus::Degraded),
                        _ => Some(ComponentStatus::Unhealthy),
                    };
                }
            }
        }
        let mut changed = None;
        let mut recovered = None;
        if let Some(to) = target.filter(|to| *to != h.status) {
            if passing.is_some() && h.status == ComponentStatus::Unhealthy {
                let cause = match self.healed_by.take() {
                    Some((action, attempt)) => {
                        h.recoveries_healed += 1;
                        RecoveryCause::Healed { action, attempt }
                    }
                    None => {
                        h.recoveries_unaided += 1;
                        RecoveryCause::CheckPassed
                    }
                };
                let recovery = Recovery {
                    cause,
                    at,
                    down_for: crate::clock::between(h.status_since, at),
                    heal_attempts: h.heals_since_recovery,
                };
                h.last_recovery = Some(recovery.clone());
                recovered = Some(recovery);
            }
            changed = Some((h.status, to));
            h.status = to;
            h.status_since = at;
        }
        if passing.is_some() && target.is_some() {
            // Well again: healing starts afresh next time.
            h.heals_since_recovery = 0;
            h.heal_exhausted = false;
            self.next_heal_at = None;
            self.healed_by = None;
        }
        let heal_due = can_heal
            && response == Some(FailureResponse::Heal)
            && self.health.status == ComponentStatus::Unhealthy
            && self.health.heals_since_recovery < policy.heal.max_attempts
            && self.next_heal_at.is_none_or(|t| Instant::now() >= t);
        Recorded {
            outcome,
            changed,
            heal_due,
            recovered,
        }
    }

    /// Marks a heal attempt started; returns its number since the last recovery.
    pub(crate) fn heal_started(&mut self) -> u32 {
        self.health.healing = true;
        self.health.heals_since_recovery.saturating_add(1)
    }

    /// Records how a heal attempt ended and schedules the earliest next one.
    pub(crate) fn heal_finished(&mut self, action: &str, succeeded: bool, policy: &CheckPolicy) {
        let h = &mut self.health;
        h.healing = false;
        h.heal_attempts += 1;
        if !succeeded {
            h.heal_failures += 1;
        }
        h.heals_since_recovery = h.heals_since_recovery.saturating_add(1);
        self.healed_by = succeeded.then(|| (action.to_owned(), h.heals_since_recovery));
        h.heal_exhausted = h.heals_since_recovery >= policy.heal.max_attempts;
        self.next_heal_at =
            Some(Instant::now() + policy.heal.backoff_after(h.heals_since_recovery));
    }

    /// When a heal should be retried without waiting for a check: the component is
    /// Unhealthy, its last heal attempt failed (one that reported success waits for
    /// the next check to judge it), attempts are left, and its checks come less
    /// often than the backoff allows (when they come as often, each check that finds
    /// the backoff over heals, as before).
    pub(crate) fn heal_retry_at(&self, policy: &CheckPolicy) -> Option<Instant> {
        let h = &self.health;
        let retrying = h.status == ComponentStatus::Unhealthy
            && h.heals_since_recovery >= 1
            && self.healed_by.is_none()
            && h.heals_since_recovery < policy.heal.max_attempts
            && !h.healing
            && policy.interval > policy.heal.backoff_after(h.heals_since_recovery);
        self.next_heal_at.filter(|_| retrying)
    }

    /// Whether a retry that was due is due still (nothing changed meanwhile).
    pub(crate) fn heal_retry_due(&self, policy: &CheckPolicy) -> bool {
        self.heal_retry_at(policy)
            .is_some_and(|t| Instant::now() >= t)
    }
}
