//! Health checks, healing and system health.
//!
//! A [`HealthMonitor`] watches components ([`ComponentSpec`]: a name, a
//! [`ComponentKind`], a [`HealthCheck`], a [`CheckPolicy`], optionally a
//! [`HealAction`] and the registry instance it stands for). For each it runs the
//! check every [`CheckPolicy::interval`], the first at once, abandoning it after
//! [`CheckPolicy::timeout`], and keeps a [`ComponentHealth`]: status, detail,
//! latency, check count, consecutive failures and successes, last
//! [`CheckOutcome`].
//!
//! **Reported versus failed.** A check that answers reports the component's own
//! state ([`CheckOutcome::Reported`]); a check that errors, panics or times out is a
//! [`CheckOutcome::CheckFailed`]: the component could not be asked. The policy says
//! what each does ([`CheckPolicy::on_unhealthy`], [`CheckPolicy::on_check_error`],
//! each a [`FailureResponse`]); by default both count toward healing.
//!
//! **Thresholds.** The status changes only after
//! [`CheckPolicy::failure_threshold`] failing outcomes in a row (to Unhealthy, or
//! Degraded for [`FailureResponse::MarkDegraded`]) or
//! [`CheckPolicy::success_threshold`] passing ones in a row (to Healthy, or Degraded
//! when the component reports Degraded). A new component is Unknown until one
//! threshold is reached.
//!
//! **Healing.** When a failing outcome whose response is [`FailureResponse::Heal`]
//! finds the component Unhealthy, its heal action runs (restart, reconnect or
//! custom), within [`HealPolicy::timeout`], at most [`HealPolicy::max_attempts`]
//! times until the component is well again, with a backoff doubling from
//! [`HealPolicy::backoff`] between attempts. Every attempt is a [`HealAttempt`]
//! (action, start, duration, outcome) kept in [`HealthMonitor::heal_history`].
//! Checks wait while a heal runs. When the component's checks come less often than
//! the backoff allows (a 10 s interval, a 1 s backoff), a failed heal is retried
//! when its backoff ends rather than at the next check, so a component that comes
//! back is healed within the backoff; a retry that reports success is followed by
//! a check at once.
//!
//! **Recoveries.** A component that was Unhealthy and passes its checks again has
//! recovered: the [`Recovery`] says what caused it ([`RecoveryCause::Healed`]: the
//! last heal attempt reported success and the check after it passed; or
//! [`RecoveryCause::CheckPassed`]: a check passed with no successful heal), how long
//! it was down and after how many heal attempts. It is counted per cause in
//! [`ComponentHealth`] (`recoveries_healed`, `recoveries_unaided`, `last_recovery`),
//! marked on the heal attempt it is owed to ([`HealAttempt::recovered`]) and sent as
//! [`HealthEvent::Recovered`] (`plexus.health.recovered`).
//!
//! **Telling others.** Status changes, heal attempts and system changes go to
//! watchers ([`HealthMonitor::watch`]) and on the bus (`plexus.health.status`,
//! `plexus.health.heal_started`, `plexus.health.heal`, `plexus.health.recovered`,
//! `plexus.health.system`); a
//! component bound to a registry instance sets that instance's status.
//!
//! **System health** ([`SystemHealth`]) aggregates the components by the rules in
//! the [`system`] module docs: Healthy, Degraded, Critical, Transitioning, Unknown,
//! with the reason per component.

mod check;
mod component;
mod heal;
mod monitor;
mod policy;
pub mod system;

pub use check::{CheckError, FnCheck, HealthCheck, ServiceCheck, check_fn};
pub use component::{
    CheckFailure, CheckOutcome, ComponentHealth, ComponentKind, ComponentSpec, ComponentStatus,
    Recovery, RecoveryCause,
};
pub use heal::{HealAction, HealAttempt, HealKind, HealOutcome};
pub use monitor::{
    COMPONENT_HEADER, HealthError, HealthEvent, HealthMonitor, HealthWatch, MonitorConfig,
    MonitorStats, TOPIC_HEAL, TOPIC_HEAL_STARTED, TOPIC_HEALTH_STATUS, TOPIC_RECOVERED,
    TOPIC_SYSTEM, WeakHealthMonitor,
};
pub use policy::{CheckPolicy, Criticality, FailureResponse, HealPolicy};
pub use system::{ComponentVerdict, SystemHealth, SystemStatus};
