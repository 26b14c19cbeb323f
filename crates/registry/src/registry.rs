//! [`Registry`]: the facade over a backend and the bus.
//!
//! Writes (register, deregister, heartbeat, status) are serialized by one async lock,
//! applied to the backend, mirrored in memory and turned into a new immutable
//! [`Snapshot`] that readers load without a lock ([`Registry::instances`] is what the
//! call path calls on every request). Each change then goes to the watchers and to
//! the bus, in the order the changes were made.
//!
//! A write future dropped while its backend call is in flight may leave the backend
//! changed and the snapshot not; with [`MemoryBackend`] a backend call never waits,
//! so this cannot happen. Remote backends should not be written through futures
//! that may be cancelled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use futures::StreamExt;
use parking_lot::Mutex;
use plexus_bus::Bus;
use plexus_core::{
    Envelope, InstanceId, Payload, ServiceDescriptor, ServiceName, ServiceStatus, Timestamp,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::change::INSTANCE_HEADER;
use crate::clock::{Clock, between};
use crate::{
    DeregisterReason, Lagged, MemoryBackend, Query, Registration, RegistryBackend, RegistryChange,
    RegistryConfig, RegistryError, STALE_REASON, StaleMark, StatusUpdate, Watch,
};

/// The reason recorded when a heartbeat revives a stale instance.
pub const HEARTBEAT_RESUMED_REASON: &str = "heartbeat resumed";

/// The service registry. Cheap to clone: clones share one registry.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use plexus_bus::Bus;
/// use plexus_core::{MethodDescriptor, ServiceDescriptor, ServiceStatus};
/// use plexus_registry::{Query, Registry, RegistryConfig};
///
/// let registry = Registry::new(RegistryConfig::default(), Bus::new())?;
/// let storage = ServiceDescriptor::new("storage", "persistence")
///     .with_instance("storage-1")
///     .with_method(MethodDescriptor::new("get").idempotent());
/// registry.register(storage).await?;
/// registry.set_status(&"storage-1".into(), ServiceStatus::Healthy, None).await?;
///
/// assert_eq!(registry.routable(&"storage".into()).len(), 1);
/// assert_eq!(registry.discover(&Query::new().method("get")).len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    backend: Arc<dyn RegistryBackend>,
    bus: Bus,
    clock: Clock,
    /// The mirror of the backend; holding it serializes writes.
    state: tokio::sync::Mutex<BTreeMap<InstanceId, Registration>>,
    /// The instances registered through this registry (not learnt from a shared
    /// backend): it is their authority, so another node's marks on them do not
    /// apply ([`Registry::apply_remote`]). Changed only while `state` is held.
    local: Mutex<HashSet<InstanceId>>,
    snapshot: ArcSwap<Snapshot>,
    changes: broadcast::Sender<RegistryChange>,
    published: AtomicU64,
    publish_failures: AtomicU64,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.get_mut().take() {
            sweeper.abort();
        }
    }
}

/// An immutable view of the registry, rebuilt on every change.
///
/// The per-service slices are rebuilt only for the service a change touched, and
/// not for heartbeats, so a reader can tell "unchanged" with `Arc::ptr_eq`.
/// A map on the call path: foldhash's fast hasher, seeded per map.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

struct Snapshot {
    /// Grows by one with every change other than a heartbeat ([`Registry::generation`]).
    generation: u64,
    all: Vec<Registration>,
    index: HashMap<InstanceId, usize>,
    /// Read on every call: hashed with foldhash (seeded per map), not SipHash.
    services: FastMap<ServiceName, ServiceInstances>,
    empty: Arc<[Registration]>,
}

#[derive(Clone)]
struct ServiceInstances {
    all: Arc<[Registration]>,
    routable: Arc<[Registration]>,
}

impl ServiceInstances {
    fn of(service: &ServiceName, state: &BTreeMap<InstanceId, Registration>) -> Option<Self> {
        let all: Arc<[Registration]> = state
            .values()
            .filter(|r| r.service() == service)
            .cloned()
            .collect();
        if all.is_empty() {
            return None;
        }
        let routable = all.iter().filter(|r| r.accepts_calls()).cloned().collect();
        Some(Self { all, routable })
    }
}

/// Which per-service slices a change replaces.
enum Touched<'a> {
    /// Every service's (the first snapshot).
    All,
    /// One service's.
    Service(&'a ServiceName),
    /// None: only a heartbeat time changed.
    Heartbeat,
}

impl Snapshot {
    fn build(
        state: &BTreeMap<InstanceId, Registration>,
        previous: Option<&Snapshot>,
        touched: Touched<'_>,
    ) -> Self {
        let all: Vec<Registration> = state.values().cloned().collect();
        let index = all
            .iter()
            .enumerate()
            .map(|(i, r)| (r.instance().clone(), i))
            .collect();
        let mut services = match touched {
            Touched::All => FastMap::default(),
            _ => previous.map(|p| p.services.clone()).unwrap_or_default(),
        };
        let mut rebuild = |name: &ServiceName| match ServiceInstances::of(name, state) {
            Some(entry) => {
                services.insert(name.clone(), entry);
            }
            None => {
                services.remove(name);
            }
        };
        match touched {
            Touched::All => {
                let names: std::collections::BTreeSet<&ServiceName> =
                    all.iter().map(Registration::service).collect();
                names.into_iter().for_each(&mut rebuild);
            }
            Touched::Service(name) => rebuild(name),
            Touched::Heartbeat => {}
        }
        let changed = u64::from(!matches!(touched, Touched::Heartbeat));
        Self {
            generation: previous.map_or(0, |p| p.generation + changed),
            all,
            index,
            services,
            empty: previous.map_or_else(|| Arc::from(Vec::new()), |p| Arc::clone(&p.empty)),
        }
    }
}

/// Counters of the registry, for metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// Registered instances.
    pub instances: usize,
    /// Instances per status; every status is present, with 0 where none.
    pub by_status: BTreeMap<ServiceStatus, usize>,
    /// Changes published on the bus.
    pub published: u64,
    /// Changes the bus refused (a full subscriber, a bus shutting down); watchers
    /// still received them.
    pub publish_failures: u64,
}

/// What the registry holds, for `/health` pages and the CLI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrySnapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// Every instance, sorted by instance id.
    pub instances: Vec<Registration>,
    /// Instances per status.
    pub by_status: BTreeMap<ServiceStatus, usize>,
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Instances marked stale (now Unhealthy with reason `"stale"`).
    pub marked_stale: Vec<InstanceId>,
    /// Instances deregistered after the grace period.
    pub deregistered: Vec<InstanceId>,
}

impl Registry {
    /// A registry on a [`MemoryBackend`], publishing on `bus`.
    ///
    /// The stale sweeper does not run until [`spawn_sweeper`](Self::spawn_sweeper).
    pub fn new(config: RegistryConfig, bus: Bus) -> Result<Self, RegistryError> {
        config.validate()?;
        Ok(Self::build(
            config,
            bus,
            Arc::new(MemoryBackend::new()),
            BTreeMap::new(),
        ))
    }

    /// A registry on `backend`, starting from what the backend already holds.
    pub async fn with_backend(
        config: RegistryConfig,
        bus: Bus,
        backend: Arc<dyn RegistryBackend>,
    ) -> Result<Self, RegistryError> {
        config.validate()?;
        let state = backend
            .list()
            .await?
            .into_iter()
            .map(|r| (r.instance().clone(), r))
            .collect();
        Ok(Self::build(config, bus, backend, state))
    }

    fn build(
        config: RegistryConfig,
        bus: Bus,
        backend: Arc<dyn RegistryBackend>,
        state: BTreeMap<InstanceId, Registration>,
    ) -> Self {
        let (changes, _) = broadcast::channel(config.watch_capacity);
        let snapshot = ArcSwap::from_pointee(Snapshot::build(&state, None, Touched::All));
        Self {
            inner: Arc::new(Inner {
                config,
                backend,
                bus,
                clock: Clock::new(),
                state: tokio::sync::Mutex::new(state),
                local: Mutex::new(HashSet::new()),
                snapshot,
                changes,
                published: AtomicU64::new(0),
                publish_failures: AtomicU64::new(0),
                sweeper: Mutex::new(None),
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The registry's wall-clock time (it follows tokio's clock, so paused time
    /// applies).
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Registers an instance, status [`ServiceStatus::Starting`].
    ///
    /// The descriptor is validated first ([`RegistryError::InvalidDescriptor`] names
    /// the field). Registering an instance id again replaces the registration when it
    /// is the same service (a restarted instance) and fails with
    /// [`RegistryError::DuplicateInstance`] when it is another.
    pub async fn register(
        &self,
        descriptor: ServiceDescriptor,
    ) -> Result<Registration, RegistryError> {
        descriptor.validate()?;
        let mut state = self.inner.state.lock().await;
        match state.get(&descriptor.instance) {
            Some(existing) if existing.service() != &descriptor.name => {
                return Err(RegistryError::DuplicateInstance {
                    instance: descriptor.instance.clone(),
                    existing: existing.service().clone(),
                    requested: descriptor.name.clone(),
                });
            }
            Some(_) => {}
            None if state.len() >= self.inner.config.max_instances => {
                return Err(RegistryError::Full {
                    limit: self.inner.config.max_instances,
                });
            }
            None => {}
        }
        let registration = Registration::new(descriptor, self.now());
        let previous = self.inner.backend.put(registration.clone()).await?;
        self.inner
            .local
            .lock()
            .insert(registration.instance().clone());
        state.insert(registration.instance().clone(), registration.clone());
        self.commit(&state, Touched::Service(registration.service()));
        self.emit(RegistryChange::Registered {
            registration: registration.clone(),
            replaced: previous.is_some(),
        });
        Ok(registration)
    }

    /// Returns once `service` has at least `count` instances that take calls,
    /// woken by the registry's own changes (wrap it in a timeout to bound it).
    pub async fn until_routable(&self, service: &ServiceName, count: usize) {
        let mut changes = self.watch();
        while self.routable(service).len() < count {
            if changes.next().await.is_none() {
                return;
            }
        }
    }

    /// Applies a change another node made to the backend this registry shares with
    /// it (a cluster's registry in NATS KV): `Some(registration)` is what the
    /// backend now holds for `instance`, `None` that it holds nothing. The backend
    /// is not written (it holds this already); the snapshot, the watchers and the
    /// bus see the change as they would a local one. An echo of this registry's own
    /// write, equal to what it holds, changes nothing.
    ///
    /// An instance registered through this registry is its own: another node's
    /// change to it (a stale mark from that node's sweeper, which saw its heartbeats
    /// late; an echo of an older write) does not apply here, and the next heartbeat
    /// puts the backend's entry right ([`Registry::heartbeat`]). If another node
    /// removed it from the backend, it is written back.
    pub async fn apply_remote(&self, instance: &InstanceId, registration: Option<Registration>) {
        let mut state = self.inner.state.lock().await;
        if self.inner.local.lock().contains(instance) {
            self.keep_local(&state, instance, registration.as_ref())
                .await;
            return;
        }
        let Some(registration) = registration else {
            if let Some(removed) = state.remove(instance) {
                self.commit(&state, Touched::Service(removed.service()));
                self.emit(RegistryChange::Deregistered {
                    instance: instance.clone(),
                    service: removed.service().clone(),
                    reason: DeregisterReason::Elsewhere,
                    at: self.now(),
                });
            }
            return;
        };
        if registration.instance() != instance {
            tracing::warn!(%instance, "a shared registry entry names another instance; ignored");
            return;
        }
        let previous = state.insert(instance.clone(), registration.clone());
        match previous {
            Some(previous) if previous == registration => {}
            Some(previous)
                if previous.descriptor == registration.descriptor
                    && previous.status == registration.status
                    && previous.reason == registration.reason
                    && previous.stale == registration.stale =>
            {
                self.commit(&state, Touched::Heartbeat);
            }
            Some(previous) if previous.descriptor == registration.descriptor => {
                self.commit(&state, Touched::Service(registration.service()));
                self.emit_status(previous.status, &registration);
            }
            previous => {
                if let Some(previous) = &previous
                    && previous.service() != registration.service()
                {
                    // The old service loses the instance too.
                    self.commit(&state, Touched::Service(previous.service()));
                }
                self.commit(&state, Touched::Service(registration.service()));
                self.emit(RegistryChange::Registered {
                    registration,
                    replaced: previous.is_some(),
                });
            }
        }
    }

    /// [`Registry::apply_remote`] for an instance registered here: what the backend
    /// now holds does not replace what this registry knows; a removal is undone.
    async fn keep_local(
        &self,
        state: &BTreeMap<InstanceId, Registration>,
        instance: &InstanceId,
        remote: Option<&Registration>,
    ) {
        let Some(current) = state.get(instance) else {
            return;
        };
        match remote {
            Some(remote) if remote == current => {}
            Some(remote) => tracing::debug!(
                %instance,
                status = %remote.status,
                stale = remote.stale.is_some(),
                "another node's change to an instance registered here is not applied"
            ),
            None => {
                tracing::warn!(%instance, "another node removed an instance registered here; writing it back");
                if let Err(error) = self.inner.backend.put(current.clone()).await {
                    tracing::warn!(%instance, %error, "could not write the instance back");
                }
            }
        }
    }

    /// Removes an instance and returns its last registration.
    pub async fn deregister(&self, instance: &InstanceId) -> Result<Registration, RegistryError> {
        let mut state = self.inner.state.lock().await;
        self.remove_locked(&mut state, instance, DeregisterReason::Requested)
            .await
    }

    /// Records a heartbeat. A heartbeat from an instance marked stale (within the
    /// grace period) restores the status it had before, with reason
    /// [`HEARTBEAT_RESUMED_REASON`].
    pub async fn heartbeat(&self, instance: &InstanceId) -> Result<Registration, RegistryError> {
        let mut state = self.inner.state.lock().await;
        let local = known(&state, instance)?;
        let (stale, status, reason) = (local.stale, local.status, local.reason.clone());
        let now = self.now();
        let mut registration = self.inner.backend.heartbeat(instance, now).await?;
        // Another node marked this registry's own instance in a shared backend (its
        // sweeper saw the heartbeats late): this registry knows better, and puts
        // back what it holds.
        let overruled = stale.is_none()
            && (registration.stale.is_some() || registration.status != status)
            && self.inner.local.lock().contains(instance);
        if overruled {
            let update = StatusUpdate {
                status,
                reason,
                at: now,
                stale: None,
            };
            registration = self
                .inner
                .backend
                .update_status(instance, update)
                .await?
                .registration;
            state.insert(instance.clone(), registration.clone());
            self.commit(&state, Touched::Heartbeat);
        } else if let Some(mark) = stale {
            let update = StatusUpdate {
                status: mark.previous,
                reason: Some(HEARTBEAT_RESUMED_REASON.to_owned()),
                at: now,
                stale: None,
            };
            let updated = self.inner.backend.update_status(instance, update).await?;
            registration = updated.registration;
            state.insert(instance.clone(), registration.clone());
            self.commit(&state, Touched::Service(registration.service()));
            self.emit_status(updated.previous, &registration);
        } else {
            state.insert(instance.clone(), registration.clone());
            self.commit(&state, Touched::Heartbeat);
        }
        Ok(registration)
    }

    /// Sets an instance's status, with why. Setting the status it already has with
    /// the same reason changes nothing and publishes nothing; setting it clears a
    /// stale mark (the sweeper marks the instance again if it stays silent).
    pub async fn set_status(
        &self,
        instance: &InstanceId,
        status: ServiceStatus,
        reason: Option<String>,
    ) -> Result<Registration, RegistryError> {
        let mut state = self.inner.state.lock().await;
        let current = known(&state, instance)?;
        if current.status == status && current.reason == reason && current.stale.is_none() {
            return Ok(current.clone());
        }
        let update = StatusUpdate {
            status,
            reason,
            at: self.now(),
            stale: None,
        };
        let updated = self.inner.backend.update_status(instance, update).await?;
        state.insert(instance.clone(), updated.registration.clone());
        self.commit(&state, Touched::Service(updated.registration.service()));
        self.emit_status(updated.previous, &updated.registration);
        Ok(updated.registration)
    }

    /// The instance's registration, if it is registered.
    pub fn get(&self, instance: &InstanceId) -> Option<Registration> {
        let snapshot = self.inner.snapshot.load();
        snapshot
            .index
            .get(instance)
            .and_then(|&i| snapshot.all.get(i))
            .cloned()
    }

    /// Every registration, sorted by instance id.
    pub fn list(&self) -> Vec<Registration> {
        self.inner.snapshot.load().all.clone()
    }

    /// The registrations `query` matches, sorted by instance id.
    pub fn discover(&self, query: &Query) -> Vec<Registration> {
        self.inner
            .snapshot
            .load()
            .all
            .iter()
            .filter(|r| query.matches(r))
            .cloned()
            .collect()
    }

    /// Every instance of `service`, in any status, sorted by instance id. Lock-free
    /// and allocation-free: a shared slice of the current snapshot.
    ///
    /// The slice is replaced only when that service's instances change (registered,
    /// deregistered, status): until then every call returns the same `Arc`, so
    /// `Arc::ptr_eq` tells a caller nothing changed. Heartbeats do not replace it:
    /// `last_heartbeat` in it may be older than [`get`](Self::get) says.
    pub fn instances(&self, service: &ServiceName) -> Arc<[Registration]> {
        self.instances_named(service.as_str())
    }

    /// [`instances`](Self::instances) by the service's name as text, without making
    /// a [`ServiceName`] (the call path's lookup).
    pub fn instances_named(&self, service: &str) -> Arc<[Registration]> {
        let snapshot = self.inner.snapshot.load();
        match snapshot.services.get(service) {
            Some(entry) => Arc::clone(&entry.all),
            None => Arc::clone(&snapshot.empty),
        }
    }

    /// The instances of `service` that accept calls (Healthy or Degraded), sorted by
    /// instance id. Lock-free and allocation-free, for the call path; replaced as
    /// [`instances`](Self::instances) is.
    pub fn routable(&self, service: &ServiceName) -> Arc<[Registration]> {
        let snapshot = self.inner.snapshot.load();
        match snapshot.services.get(service) {
            Some(entry) => Arc::clone(&entry.routable),
            None => Arc::clone(&snapshot.empty),
        }
    }

    /// A number that grows whenever an instance is registered, deregistered or
    /// changes (status, descriptor), and not on heartbeats: while it stays the same,
    /// so do the services and their instances, so what is derived from them (a
    /// catalog of methods) may be kept.
    pub fn generation(&self) -> u64 {
        self.inner.snapshot.load().generation
    }

    /// Every change from now on, in order. Bounded by
    /// [`RegistryConfig::watch_capacity`]: a watcher that falls further behind gets
    /// [`Lagged`] and the registry never waits for it.
    pub fn watch(&self) -> Watch {
        let receiver = self.inner.changes.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((Ok(change), receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Err(Lagged { missed }), receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    /// Instances per status; every status is present, with 0 where none.
    pub fn counts(&self) -> BTreeMap<ServiceStatus, usize> {
        count_by_status(&self.inner.snapshot.load().all)
    }

    /// The registry's counters.
    pub fn stats(&self) -> RegistryStats {
        let snapshot = self.inner.snapshot.load();
        RegistryStats {
            instances: snapshot.all.len(),
            by_status: count_by_status(&snapshot.all),
            published: self.inner.published.load(Ordering::Relaxed),
            publish_failures: self.inner.publish_failures.load(Ordering::Relaxed),
        }
    }

    /// A serializable view of every instance.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let snapshot = self.inner.snapshot.load();
        RegistrySnapshot {
            at: self.now(),
            instances: snapshot.all.clone(),
            by_status: count_by_status(&snapshot.all),
        }
    }

    /// Runs one sweep now: marks instances whose last heartbeat is older than
    /// [`RegistryConfig::heartbeat_ttl`] stale (status Unhealthy, reason `"stale"`;
    /// a [`RegistryChange::Stale`] then a [`RegistryChange::StatusChanged`]), and
    /// deregisters those whose last heartbeat is older than the TTL plus
    /// [`RegistryConfig::deregister_after`]. Stopped instances are not marked stale
    /// but are deregistered the same way.
    pub async fn sweep(&self) -> Result<SweepReport, RegistryError> {
        let mut state = self.inner.state.lock().await;
        let now = self.now();
        let ttl = self.inner.config.heartbeat_ttl;
        let limit = ttl.saturating_add(self.inner.config.deregister_after);
        let mut report = SweepReport::default();
        let silent: Vec<(InstanceId, std::time::Duration)> = state
            .values()
            .map(|r| (r.instance().clone(), between(r.last_heartbeat, now)))
            .filter(|(_, age)| *age > ttl)
            .collect();
        for (instance, age) in silent {
            // Another node's sweeper may have got there first (a shared backend):
            // its removal reaches this registry through the backend's watch, and the
            // sweep goes on with the others.
            if age > limit {
                match self
                    .remove_locked(&mut state, &instance, DeregisterReason::Stale)
                    .await
                {
                    Ok(_) => report.deregistered.push(instance),
                    Err(RegistryError::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
                continue;
            }
            let Some(current) = state.get(&instance) else {
                continue;
            };
            if current.stale.is_some() || current.status == ServiceStatus::Stopped {
                continue;
            }
            let last_heartbeat = current.last_heartbeat;
            let update = StatusUpdate {
                status: ServiceStatus::Unhealthy,
                reason: Some(STALE_REASON.to_owned()),
                at: now,
                stale: Some(StaleMark {
                    since: now,
                    previous: current.status,
                }),
            };
            let updated = match self.inner.backend.update_status(&instance, update).await {
                Ok(updated) => updated,
                Err(RegistryError::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            state.insert(instance.clone(), updated.registration.clone());
            self.commit(&state, Touched::Service(updated.registration.service()));
            self.emit(RegistryChange::Stale {
                instance: instance.clone(),
                service: updated.registration.service().clone(),
                last_heartbeat,
                at: now,
            });
            self.emit_status(updated.previous, &updated.registration);
            report.marked_stale.push(instance);
        }
        Ok(report)
    }

    /// Starts the sweeper: a task that runs [`sweep`](Self::sweep) every
    /// [`RegistryConfig::sweep_interval`], the first one interval from now. It stops
    /// when the registry is dropped or [`shutdown`](Self::shutdown) is called. Calling
    /// it while a sweeper runs does nothing. Must be called inside a tokio runtime.
    pub fn spawn_sweeper(&self) {
        let mut slot = self.inner.sweeper.lock();
        if slot.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.sweep_interval;
        *slot = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Err(error) = (Registry { inner }).sweep().await {
                    tracing::warn!(%error, "registry sweep failed");
                }
            }
        }));
    }

    /// Whether the sweeper task is running.
    pub fn sweeper_running(&self) -> bool {
        self.inner
            .sweeper
            .lock()
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Stops the sweeper. Registrations stay; writes and reads keep working.
    pub fn shutdown(&self) {
        if let Some(sweeper) = self.inner.sweeper.lock().take() {
            sweeper.abort();
        }
    }

    async fn remove_locked(
        &self,
        state: &mut BTreeMap<InstanceId, Registration>,
        instance: &InstanceId,
        reason: DeregisterReason,
    ) -> Result<Registration, RegistryError> {
        known(state, instance)?;
        let removed = self.inner.backend.remove(instance).await?;
        self.inner.local.lock().remove(instance);
        let removed = match (state.remove(instance), removed) {
            (_, Some(stored)) => stored,
            (Some(mirrored), None) => mirrored,
            (None, None) => {
                return Err(RegistryError::NotFound {
                    instance: instance.clone(),
                });
            }
        };
        self.commit(state, Touched::Service(removed.service()));
        self.emit(RegistryChange::Deregistered {
            instance: instance.clone(),
            service: removed.service().clone(),
            reason,
            at: self.now(),
        });
        Ok(removed)
    }

    /// Publishes a new snapshot after a change to `touched`.
    fn commit(&self, state: &BTreeMap<InstanceId, Registration>, touched: Touched<'_>) {
        let previous = self.inner.snapshot.load();
        let next = Snapshot::build(state, Some(&previous), touched);
        self.inner.snapshot.store(Arc::new(next));
    }

    fn emit_status(&self, from: ServiceStatus, registration: &Registration) {
        if from != registration.status {
            self.emit(RegistryChange::StatusChanged {
                instance: registration.instance().clone(),
                service: registration.service().clone(),
                from,
                to: registration.status,
                reason: registration.reason.clone(),
                at: registration.status_since,
            });
        }
    }

    /// Sends a change to the watchers and the bus, never waiting for either.
    fn emit(&self, change: RegistryChange) {
        let envelope = Envelope::new(change.topic(), Payload::typed(change.clone()))
            .with_header(INSTANCE_HEADER, change.instance().as_str());
        // No watcher is not an error.
        let _ = self.inner.changes.send(change);
        match self.inner.bus.try_publish(envelope) {
            Ok(_) => self.inner.published.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                tracing::warn!(%error, "registry change not published on the bus");
                self.inner.publish_failures.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("instances", &self.inner.snapshot.load().all.len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn known<'a>(
    state: &'a BTreeMap<InstanceId, Registration>,
    instance: &InstanceId,
) -> Result<&'a Registration, RegistryError> {
    state.get(instance).ok_or_else(|| RegistryError::NotFound {
        instance: instance.clone(),
    })
}

fn count_by_status(all: &[Registration]) -> BTreeMap<ServiceStatus, usize> {
    let mut counts: BTreeMap<ServiceStatus, usize> =
        ServiceStatus::ALL.into_iter().map(|s| (s, 0)).collect();
    for registration in all {
        *counts.entry(registration.status).or_default() += 1;
    }
    counts
}
