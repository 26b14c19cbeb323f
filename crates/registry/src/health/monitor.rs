//! [`HealthMonitor`]: runs every component's check on its interval, moves statuses
//! by the thresholds, heals, records, and tells the registry, the bus and watchers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::{Mutex, RwLock};
use plexus_bus::Bus;
use plexus_core::{Envelope, Payload, ServiceStatus, Timestamp, Topic};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::clock::{Clock, micros};
use crate::health::component::ComponentState;
use crate::health::{
    CheckFailure, CheckOutcome, ComponentHealth, ComponentKind, ComponentSpec, ComponentStatus,
    HealAttempt, HealKind, HealOutcome, Recovery, SystemHealth, SystemStatus,
};
use crate::{Lagged, Registry};

/// Topic of [`HealthEvent::StatusChanged`].
pub const TOPIC_HEALTH_STATUS: Topic = Topic::from_static("plexus.health.status");
/// Topic of [`HealthEvent::HealStarted`].
pub const TOPIC_HEAL_STARTED: Topic = Topic::from_static("plexus.health.heal_started");
/// Topic of [`HealthEvent::HealAttempted`].
pub const TOPIC_HEAL: Topic = Topic::from_static("plexus.health.heal");
/// Topic of [`HealthEvent::Recovered`].
pub const TOPIC_RECOVERED: Topic = Topic::from_static("plexus.health.recovered");
/// Topic of [`HealthEvent::SystemChanged`].
pub const TOPIC_SYSTEM: Topic = Topic::from_static("plexus.health.system");
/// Header set on component events published on the bus: the component's name.
pub const COMPONENT_HEADER: &str = "plexus-component";

/// The monitor's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// The most components it watches; adding one more fails (default 1024).
    pub max_components: usize,
    /// How many events a watcher may fall behind before it is told it lagged
    /// (default 1024). The monitor never waits for a watcher.
    pub event_capacity: usize,
    /// How many heal attempts the history keeps, the oldest dropped first
    /// (default 256). Per-component counters count every attempt.
    pub heal_history: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            max_components: 1024,
            event_capacity: 1024,
            heal_history: 256,
        }
    }
}

/// The largest event capacity accepted.
const MAX_EVENT_CAPACITY: usize = 1 << 20;

impl MonitorConfig {
    /// Checks every field, naming the first one out of range.
    pub fn validate(&self) -> Result<(), HealthError> {
        let invalid = |field: &'static str, value: usize, range: String| {
            Err(HealthError::InvalidConfig {
                field,
                reason: format!("is {value}; it must be {range}"),
            })
        };
        if self.max_components == 0 {
            return invalid("max_components", 0, "at least 1".to_owned());
        }
        if self.event_capacity == 0 || self.event_capacity > MAX_EVENT_CAPACITY {
            return invalid(
                "event_capacity",
                self.event_capacity,
                format!("between 1 and {MAX_EVENT_CAPACITY}"),
            );
        }
        if self.heal_history == 0 {
            return invalid("heal_history", 0, "at least 1".to_owned());
        }
        Ok(())
    }
}

/// Why a monitor operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// A component of that name is already watched.
    #[error("component `{component}` is already watched")]
    DuplicateComponent {
        /// Its name.
        component: String,
    },
    /// No component of that name is watched.
    #[error("component `{component}` is not watched")]
    UnknownComponent {
        /// The name asked for.
        component: String,
    },
    /// The monitor watches [`MonitorConfig::max_components`] already.
    #[error(
        "the health monitor watches {limit} components already (MonitorConfig::max_components)"
    )]
    TooManyComponents {
        /// The limit.
        limit: usize,
    },
    /// A component's policy has a field out of range.
    #[error("invalid check policy of component `{component}`: `{field}` {reason}")]
    InvalidPolicy {
        /// The component.
        component: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The monitor's configuration has a field out of range.
    #[error("invalid health monitor configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The component name is empty.
    #[error("a component name must not be empty")]
    EmptyName,
}

/// Something that happened in the monitor.
///
/// Watchers ([`HealthMonitor::watch`]) get every event; the bus gets all but
/// [`CheckCompleted`](Self::CheckCompleted), on the topics `plexus.health.*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HealthEvent {
    /// A check ended.
    CheckCompleted {
        /// The component.
        component: String,
        /// What it produced.
        outcome: CheckOutcome,
        /// The component's check count, this one included.
        checks: u64,
        /// How long it took.
        #[serde(rename = "latency_us", with = "micros")]
        latency: Duration,
    },
    /// A component's status changed.
    StatusChanged {
        /// The component.
        component: String,
        /// Its kind.
        kind: ComponentKind,
        /// The status before.
        from: ComponentStatus,
        /// The status now.
        to: ComponentStatus,
        /// The last check's detail.
        detail: String,
        /// When.
        at: Timestamp,
    },
    /// A heal action started.
    HealStarted {
        /// The component.
        component: String,
        /// The action's name.
        action: String,
        /// The action's kind.
        kind: HealKind,
        /// Its number since the component was last well.
        attempt: u32,
        /// When.
        at: Timestamp,
    },
    /// A heal action ended.
    HealAttempted {
        /// The attempt, as recorded.
        attempt: HealAttempt,
    },
    /// A component that was Unhealthy passes its checks again (sent after its
    /// [`StatusChanged`](Self::StatusChanged)).
    Recovered {
        /// The component.
        component: String,
        /// What caused it, when, after how long down and how many heal attempts.
        recovery: Recovery,
    },
    /// The system's status changed.
    SystemChanged {
        /// The status before.
        from: SystemStatus,
        /// The status now.
        to: SystemStatus,
        /// The whole picture.
        health: SystemHealth,
    },
}

impl HealthEvent {
    fn topic(&self) -> Option<Topic> {
        match self {
            Self::CheckCompleted { .. } => None,
            Self::StatusChanged { .. } => Some(TOPIC_HEALTH_STATUS),
            Self::HealStarted { .. } => Some(TOPIC_HEAL_STARTED),
            Self::HealAttempted { .. } => Some(TOPIC_HEAL),
            Self::Recovered { .. } => Some(TOPIC_RECOVERED),
            Self::SystemChanged { .. } => Some(TOPIC_SYSTEM),
        }
    }

    fn component(&self) -> Option<&str> {
        match self {
            Self::CheckCompleted { component, .. }
            | Self::StatusChanged { component, .. }
            | Self::HealStarted { component, .. }
            | Self::Recovered { component, .. } => Some(component),
            Self::HealAttempted { attempt } => Some(&attempt.component),
            Self::SystemChanged { .. } => None,
        }
    }
}

/// The stream [`HealthMonitor::watch`] returns.
pub type HealthWatch = BoxStream<'static, Result<HealthEvent, Lagged>>;

/// Counters of the monitor, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorStats {
    /// Events published on the bus.
    pub published: u64,
    /// Events the bus refused.
    pub publish_failures: u64,
    /// Registry status updates that failed (the instance was gone, most often).
    pub registry_failures: u64,
}

/// Watches components, heals them and aggregates the system's health. Cheap to
/// clone: clones share one monitor. Dropping the last clone (or
/// [`shutdown`](Self::shutdown)) stops every check.
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

struct Component {
    spec: ComponentSpec,
    /// Held for a whole round (check, then heal), so rounds never overlap.
    round: tokio::sync::Mutex<()>,
    state: Mutex<ComponentState>,
    /// Wakes the component's task when a heal changed when the next retry is due.
    wake: tokio::sync::Notify,
}

struct Inner {
    config: MonitorConfig,
    bus: Bus,
    registry: Option<Registry>,
    clock: Clock,
    components: RwLock<BTreeMap<String, Arc<Component>>>,
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
    events: broadcast::Sender<HealthEvent>,
    heals: Mutex<VecDeque<HealAttempt>>,
    system: Mutex<SystemStatus>,
    stats: Mutex<MonitorStats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, task) in self.tasks.get_mut().drain() {
            task.abort();
        }
    }
}

impl HealthMonitor {
    /// A monitor publishing on `bus` and, when given a registry, setting the status
    /// of the instances its components are bound to.
    pub fn new(
        config: MonitorConfig,
        bus: Bus,
        registry: Option<Registry>,
    ) -> Result<Self, HealthError> {
        config.validate()?;
        let (events, _) = broadcast::channel(config.event_capacity);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                bus,
                registry,
                clock: Clock::new(),
                components: RwLock::new(BTreeMap::new()),
                tasks: Mutex::new(HashMap::new()),
                events,
                heals: Mutex::new(VecDeque::new()),
                system: Mutex::new(SystemStatus::Unknown),
                stats: Mutex::new(MonitorStats::default()),
            }),
        })
    }

    /// Starts watching a component: its first check runs at once, then one every
    /// [`interval`](crate::health::CheckPolicy::interval). Must be called inside a
    /// tokio runtime.
    pub fn add(&self, spec: ComponentSpec) -> Result<(), HealthError> {
        if spec.name.is_empty() {
            return Err(HealthError::EmptyName);
        }
        spec.policy
            .validate()
            .map_err(|(field, reason)| HealthError::InvalidPolicy {
                component: spec.name.clone(),
                field,
                reason,
            })?;
        let name = spec.name.clone();
        let component = {
            let mut components = self.inner.components.write();
            if components.contains_key(&name) {
                return Err(HealthError::DuplicateComponent { component: name });
            }
            if components.len() >= self.inner.config.max_components {
                return Err(HealthError::TooManyComponents {
                    limit: self.inner.config.max_components,
                });
            }
            let state = ComponentState::new(&spec, self.inner.clock.now());
            let component = Arc::new(Component {
                spec,
                round: tokio::sync::Mutex::new(()),
                state: Mutex::new(state),
                wake: tokio::sync::Notify::new(),
            });
            components.insert(name.clone(), Arc::clone(&component));
            component
        };
        let task = tokio::spawn(run(Arc::downgrade(&self.inner), component));
        self.inner.tasks.lock().insert(name, task);
        self.inner.update_system();
        Ok(())
    }

    /// Stops watching a component and returns its last record.
    pub fn remove(&self, component: &str) -> Result<ComponentHealth, HealthError> {
        let removed = self.inner.components.write().remove(component);
        let removed = removed.ok_or_else(|| HealthError::UnknownComponent {
            component: component.to_owned(),
        })?;
        if let Some(task) = self.inner.tasks.lock().remove(component) {
            task.abort();
        }
        self.inner.update_system();
        let health = removed.state.lock().health.clone();
        Ok(health)
    }

    /// Runs one round for `component` now (its check, then a heal if one is due), as
    /// the scheduled rounds do, and returns its record after. Waits if a round is
    /// running.
    pub async fn check_now(&self, component: &str) -> Result<ComponentHealth, HealthError> {
        let found = self.inner.components.read().get(component).cloned();
        let found = found.ok_or_else(|| HealthError::UnknownComponent {
            component: component.to_owned(),
        })?;
        self.inner.round(&found).await;
        let health = found.state.lock().health.clone();
        Ok(health)
    }

    /// The record of `component`.
    pub fn component(&self, component: &str) -> Option<ComponentHealth> {
        let found = self.inner.components.read().get(component).cloned();
        found.map(|c| c.state.lock().health.clone())
    }

    /// Every component's record, sorted by name.
    pub fn components(&self) -> Vec<ComponentHealth> {
        self.inner.records()
    }

    /// The system's health now.
    pub fn system(&self) -> SystemHealth {
        SystemHealth::aggregate(&self.inner.records(), self.inner.clock.now())
    }

    /// The most recent heal attempts, oldest first (at most
    /// [`MonitorConfig::heal_history`]).
    pub fn heal_history(&self) -> Vec<HealAttempt> {
        self.inner.heals.lock().iter().cloned().collect()
    }

    /// Every event from now on. Bounded by [`MonitorConfig::event_capacity`]: a
    /// watcher that falls further behind gets [`Lagged`]; the monitor never waits.
    pub fn watch(&self) -> HealthWatch {
        let receiver = self.inner.events.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Err(Lagged { missed }), receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    /// The monitor's counters.
    pub fn stats(&self) -> MonitorStats {
        self.inner.stats.lock().clone()
    }

    /// Stops every scheduled check. Records stay readable; [`check_now`](Self::check_now)
    /// still works.
    pub fn shutdown(&self) {
        for (_, task) in self.inner.tasks.lock().drain() {
            task.abort();
        }
    }
}

/// A handle on a [`HealthMonitor`] that does not keep it alive: for listeners owned
/// by something the monitor itself holds (a component's client), which would
/// otherwise keep each other alive.
#[derive(Clone, Debug)]
pub struct WeakHealthMonitor {
    inner: Weak<Inner>,
}

impl WeakHealthMonitor {
    /// The monitor, while it runs.
    pub fn upgrade(&self) -> Option<HealthMonitor> {
        self.inner.upgrade().map(|inner| HealthMonitor { inner })
    }
}

impl HealthMonitor {
    /// A handle that does not keep the monitor alive.
    pub fn downgrade(&self) -> WeakHealthMonitor {
        WeakHealthMonitor {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("components", &self.inner.components.read().len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A component's scheduled rounds: the first at once, then one per interval; and,
/// between them, heal retries whose backoff ends before the next check.
async fn run(monitor: Weak<Inner>, component: Arc<Component>) {
    let policy = &component.spec.policy;
    let mut ticks = tokio::time::interval(policy.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let retry_at = component.state.lock().heal_retry_at(policy);
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticks.tick() => {
                let Some(inner) = monitor.upgrade() else {
                    break;
                };
                inner.round(&component).await;
            }
            () = retry => {
                let Some(inner) = monitor.upgrade() else {
                    break;
                };
                inner.retry_heal(&component).await;
            }
            () = component.wake.notified() => {}
        }
    }
}

impl Inner {
    fn records(&self) -> Vec<ComponentHealth> {
        let components: Vec<Arc<Component>> = self.components.read().values().cloned().collect();
        components
            .iter()
            .map(|c| c.state.lock().health.clone())
            .collect()
    }

    /// One round: run the check within its timeout, record it, react to a status
    /// change, heal if due.
    async fn round(&self, component: &Component) {
        let _round = component.round.lock().await;
        self.round_locked(component).await;
    }

    /// A heal retry between checks: the heal, and when it reports success, a check
    /// at once to see whether the component is back.
    async fn retry_heal(&self, component: &Component) {
        let _round = component.round.lock().await;
        if !component
            .state
            .lock()
            .heal_retry_due(&component.spec.policy)
        {
            return;
        }
        if self.heal(component).await {
            self.round_locked(component).await;
        }
    }

    /// [`round`](Self::round) with the component's round lock held.
    async fn round_locked(&self, component: &Component) {
        let spec = &component.spec;
        let policy = &spec.policy;
        let started = Instant::now();
        let checked = tokio::time::timeout(
            policy.timeout,
            AssertUnwindSafe(spec.check.check()).catch_unwind(),
        )
        .await;
        let latency = started.elapsed();
        let result = match checked {
            Ok(Ok(Ok(report))) => Ok(report),
            Ok(Ok(Err(error))) => Err(CheckFailure::Error {
                message: error.message,
            }),
            Ok(Err(_panic)) => Err(CheckFailure::Error {
                message: "the check panicked".to_owned(),
            }),
            Err(_elapsed) => Err(CheckFailure::Timeout {
                after: policy.timeout,
            }),
        };
        let at = self.clock.now();
        let (recorded, health) = {
            let mut state = component.state.lock();
            let recorded = state.record(result, latency, at, policy, spec.heal.is_some());
            (recorded, state.health.clone())
        };
        self.emit(HealthEvent::CheckCompleted {
            component: spec.name.clone(),
            outcome: recorded.outcome,
            checks: health.checks,
            latency,
        });
        if let Some((from, to)) = recorded.changed {
            self.emit(HealthEvent::StatusChanged {
                component: spec.name.clone(),
                kind: spec.kind,
                from,
                to,
                detail: health.detail.clone(),
                at,
            });
            if let Some(recovery) = recorded.recovered {
                if let crate::health::RecoveryCause::Healed { attempt, .. } = &recovery.cause {
                    let mut heals = self.heals.lock();
                    if let Some(owed) = heals
                        .iter_mut()
                        .rev()
                        .find(|a| a.component == spec.name && a.attempt == *attempt)
                    {
                        owed.recovered = true;
                    }
                }
                tracing::info!(
                    component = %spec.name,
                    cause = recovery.cause.as_str(),
                    down_for = ?recovery.down_for,
                    heal_attempts = recovery.heal_attempts,
                    "component recovered"
                );
                self.emit(HealthEvent::Recovered {
                    component: spec.name.clone(),
                    recovery,
                });
            }
            self.update_registry(spec, to, &health.detail).await;
            self.update_system();
        }
        if recorded.heal_due {
            self.heal(component).await;
        }
    }

    /// Runs the component's heal action once, within its timeout, and records it;
    /// returns whether it reported success.
    async fn heal(&self, component: &Component) -> bool {
        let spec = &component.spec;
        let Some(action) = &spec.heal else {
            return false;
        };
        let policy = &spec.policy;
        let attempt = component.state.lock().heal_started();
        let at = self.clock.now();
        self.emit(HealthEvent::HealStarted {
            component: spec.name.clone(),
            action: action.name().to_owned(),
            kind: action.kind(),
            attempt,
            at,
        });
        self.update_system();
        let started = Instant::now();
        let ran = tokio::time::timeout(
            policy.heal.timeout,
            AssertUnwindSafe(action.run()).catch_unwind(),
        )
        .await;
        let duration = started.elapsed();
        let outcome = match ran {
            Ok(Ok(Ok(()))) => HealOutcome::Succeeded,
            Ok(Ok(Err(error))) => HealOutcome::Failed { error },
            Ok(Err(_panic)) => HealOutcome::Failed {
                error: "the heal action panicked".to_owned(),
            },
            Err(_elapsed) => HealOutcome::TimedOut,
        };
        let succeeded = outcome.succeeded();
        component
            .state
            .lock()
            .heal_finished(action.name(), succeeded, policy);
        // The next retry may now be due sooner than the task waits for.
        component.wake.notify_one();
        let record = HealAttempt {
            component: spec.name.clone(),
            action: action.name().to_owned(),
            kind: action.kind(),
            attempt,
            at,
            duration,
            outcome,
            recovered: false,
        };
        {
            let mut heals = self.heals.lock();
            while heals.len() >= self.config.heal_history {
                heals.pop_front();
            }
            heals.push_back(record.clone());
        }
        self.emit(HealthEvent::HealAttempted { attempt: record });
        self.update_system();
        succeeded
    }

    /// Writes a component's new status to the registry instance it is bound to.
    async fn update_registry(&self, spec: &ComponentSpec, to: ComponentStatus, detail: &str) {
        let (Some(registry), Some(instance)) = (&self.registry, &spec.instance) else {
            return;
        };
        let status = match to {
            ComponentStatus::Unknown => return,
            ComponentStatus::Healthy => ServiceStatus::Healthy,
            ComponentStatus::Degraded => ServiceStatus::Degraded,
            ComponentStatus::Unhealthy => ServiceStatus::Unhealthy,
        };
        let reason = (!detail.is_empty()).then(|| detail.to_owned());
        if let Err(error) = registry.set_status(instance, status, reason).await {
            tracing::warn!(%error, component = %spec.name, "health status not written to the registry");
            self.stats.lock().registry_failures += 1;
        }
    }

    /// Recomputes the system's health and announces a change of its status.
    fn update_system(&self) {
        let health = SystemHealth::aggregate(&self.records(), self.clock.now());
        let from = {
            let mut last = self.system.lock();
            if *last == health.status {
                return;
            }
            std::mem::replace(&mut *last, health.status)
        };
        self.emit(HealthEvent::SystemChanged {
            from,
            to: health.status,
            health,
        });
    }

    /// Sends an event to the watchers and, but for check results, to the bus; never
    /// waits for either.
    fn emit(&self, event: HealthEvent) {
        if let Some(topic) = event.topic() {
            let mut envelope = Envelope::new(topic, Payload::typed(event.clone()));
            if let Some(component) = event.component() {
                envelope = envelope.with_header(COMPONENT_HEADER, component);
            }
            let published = self.bus.try_publish(envelope);
            let mut stats = self.stats.lock();
            match published {
                Ok(_) => stats.published += 1,
                Err(error) => {
                    tracing::warn!(%error, "health event not published on the bus");
                    stats.publish_failures += 1;
                }
            }
        }
        // No watcher is not an error.
        let _ = self.events.send(event);
    }
}
