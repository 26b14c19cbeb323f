//! Load balancer over a changing set of instances, skipping the unavailable ones.
//!
//! A [`Balancer`] holds instances (each a service with an [`InstanceId`], a weight,
//! a health flag and optionally the [`CircuitBreaker`] guarding it) and chooses one
//! per call by its [`Strategy`]: round-robin, weighted, least outstanding requests,
//! power of two choices, or consistent hashing on a request key. Every strategy is
//! health-aware: it skips an instance marked unhealthy or whose breaker does not let
//! calls through, and when none is left the call fails with [`NoInstanceAvailable`],
//! which says why for each instance.
//!
//! An instance may be a standby ([`Instance::standby`]): it takes calls only while
//! no other instance is available (the call path makes other nodes' instances
//! standbys of the local ones, so calls stay local until every local instance is
//! unhealthy or behind an open breaker).
//!
//! The set changes while calls run ([`Balancer::insert`], [`Balancer::remove`],
//! [`Balancer::set_healthy`]): a call reads one immutable snapshot of it without a
//! lock. A balancer is a `tower::Service` itself, and [`Balancer::pick`] chooses an
//! instance for callers that drive the service by hand.
//!
//! Instance services must be `Clone + Send + Sync` (a call clones the chosen one);
//! box them with `tower::util::BoxCloneSyncService` to mix kinds.
//!
//! tower's own p2c balancer needs a `Discover` stream and learns readiness only by
//! polling every instance; it neither explains an empty choice nor hashes on keys,
//! so the strategies here are written for Plexus.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use plexus_resilience::balance::{Balancer, Instance, Strategy};
//! use tower::{ServiceExt, service_fn};
//!
//! let echo = |name: &'static str| service_fn(move |_: ()| async move { Ok::<_, std::io::Error>(name) });
//! let balancer = Balancer::new("storage", Strategy::RoundRobin);
//! balancer.insert(Instance::new("a", echo("a")));
//! balancer.insert(Instance::new("b", echo("b")));
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "a");
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "b");
//! balancer.set_healthy(&"a".into(), false);
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "b");
//! # }
//! ```

mod config;
mod error;
mod future;

use std::any::Any;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use plexus_core::InstanceId;
use tower::Service;
use tower::util::Oneshot;

pub use config::{BalancerConfig, Strategy};
pub use error::{NoInstanceAvailable, Unavailable};
pub use future::ResponseFuture;

use crate::{BoxError, CircuitBreaker, CircuitBreakerService, ConfigError, rng};

/// One instance to balance over.
#[derive(Clone, Debug)]
pub struct Instance<S> {
    id: InstanceId,
    service: S,
    weight: u32,
    breaker: Option<CircuitBreaker>,
    standby: bool,
}

impl<S> Instance<S> {
    /// An instance of weight 1, healthy, with no breaker.
    pub fn new(id: impl Into<InstanceId>, service: S) -> Self {
        Self {
            id: id.into(),
            service,
            weight: 1,
            breaker: None,
            standby: false,
        }
    }

    /// Makes it a standby: chosen only while no instance that is not a standby is
    /// available.
    pub fn standby(mut self) -> Self {
        self.standby = true;
        self
    }

    /// Its weight, for the weighted and consistent-hash strategies (at least 1).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// Skip the instance while `breaker` does not let calls through. The breaker
    /// should guard this instance's service, as [`Instance::guarded`] arranges.
    pub fn watch_breaker(mut self, breaker: &CircuitBreaker) -> Self {
        self.breaker = Some(breaker.clone());
        self
    }
}

impl<S> Instance<CircuitBreakerService<S>> {
    /// An instance whose service is guarded by `breaker`, which the balancer watches.
    pub fn guarded(id: impl Into<InstanceId>, service: S, breaker: &CircuitBreaker) -> Self {
        Instance::new(id, breaker.layer(service)).watch_breaker(breaker)
    }
}

struct Entry<S> {
    id: InstanceId,
    service: S,
    weight: u32,
    breaker: Option<CircuitBreaker>,
    standby: bool,
    healthy: AtomicBool,
    outstanding: AtomicUsize,
}

impl<S> Entry<S> {
    fn unavailable(&self) -> Option<Unavailable> {
        if !self.healthy.load(Ordering::Acquire) {
            return Some(Unavailable::Unhealthy);
        }
        match &self.breaker {
            Some(b) if !b.is_call_permitted() => Some(Unavailable::BreakerOpen {
                retry_after: b.retry_after(),
            }),
            _ => None,
        }
    }

    fn available(&self) -> bool {
        self.unavailable().is_none()
    }
}

struct Set<S> {
    entries: Vec<Arc<Entry<S>>>,
    /// The entries that are not standbys, when some are (else empty).
    preferred: Vec<Arc<Entry<S>>>,
    /// Hash ring: (point, entry index), sorted by point.
    ring: Vec<(u64, usize)>,
}

type KeyFn = Arc<dyn Fn(&dyn Any) -> Option<u64> + Send + Sync>;
/// Whether a request should stay away from an instance (one it already tried).
type AvoidFn = Arc<dyn Fn(&dyn Any, &InstanceId) -> bool + Send + Sync>;

struct Shared<S> {
    name: String,
    config: BalancerConfig,
    set: ArcSwap<Set<S>>,
    edit: Mutex<()>,
    next: AtomicU64,
    key: Option<KeyFn>,
    avoid: std::sync::OnceLock<AvoidFn>,
}

/// A load balancer; clones share the set of instances.
pub struct Balancer<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for Balancer<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> fmt::Debug for Balancer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("name", &self.shared.name)
            .field("config", &self.shared.config)
            .field("instances", &self.instances())
            .finish()
    }
}

/// What the balancer knows about one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// Its id.
    pub id: InstanceId,
    /// Its weight.
    pub weight: u32,
    /// Calls in flight on it through this balancer.
    pub outstanding: usize,
    /// Why it would be skipped now, if it would.
    pub unavailable: Option<Unavailable>,
}

/// A call counted as in flight on an instance until dropped.
pub struct InFlight {
    entry: Arc<dyn Counted>,
}

trait Counted: Send + Sync {
    fn done(&self);
}

impl<S: Send + Sync> Counted for Entry<S> {
    fn done(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    fn start<S: Send + Sync + 'static>(entry: Arc<Entry<S>>) -> Self {
        entry.outstanding.fetch_add(1, Ordering::AcqRel);
        Self { entry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.entry.done();
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InFlight")
    }
}

/// The instance chosen for one call.
#[derive(Debug)]
pub struct Picked<S> {
    /// Its id.
    pub id: InstanceId,
    /// A clone of its service, to call.
    pub service: S,
    /// Keeps the call counted as in flight; drop it when the call ends.
    pub in_flight: InFlight,
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    let mut h = hasher.finish();
    rng::mix(&mut h)
}

impl<S: Clone + Send + Sync + 'static> Balancer<S> {
    /// An empty balancer with `strategy`.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Self {
        Self::build(
            name.into(),
            BalancerConfig {
                strategy,
                ..BalancerConfig::default()
            },
            None,
        )
    }

    /// An empty balancer from a configuration, after validating it.
    pub fn from_config(
        name: impl Into<String>,
        config: BalancerConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(name.into(), config, None))
    }

    /// An empty consistent-hash balancer keyed by `key` of each request.
    pub fn consistent_hash<Req: 'static, K: Hash>(
        name: impl Into<String>,
        key: impl Fn(&Req) -> K + Send + Sync + 'static,
    ) -> Self {
        let key: KeyFn =
            Arc::new(move |any: &dyn Any| any.downcast_ref::<Req>().map(|r| hash_of(key(r))));
        Self::build(
            name.into(),
            BalancerConfig {
                strategy: Strategy::ConsistentHash,
                ..BalancerConfig::default()
            },
            Some(key),
        )
    }

    fn build(name: String, config: BalancerConfig, key: Option<KeyFn>) -> Self {
        Self {
            shared: Arc::new(Shared {
                name,
                config,
                set: ArcSwap::from_pointee(Set {
                    entries: Vec::new(),
                    preferred: Vec::new(),
                    ring: Vec::new(),
                }),
                edit: Mutex::new(()),
                next: AtomicU64::new(0),
                key,
                avoid: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Makes a request stay away from the instances `avoid` names for it, while
    /// another available instance is left: a retry then goes to an instance the call
    /// has not tried yet (a hung or failing one is not tried twice). With no other
    /// instance left, the strategy's choice stands. Set once; later calls are ignored.
    pub fn avoiding<Req: 'static>(
        &self,
        avoid: impl Fn(&Req, &InstanceId) -> bool + Send + Sync + 'static,
    ) {
        let avoid: AvoidFn = Arc::new(move |any: &dyn Any, id: &InstanceId| {
            any.downcast_ref::<Req>().is_some_and(|r| avoid(r, id))
        });
        let _ = self.shared.avoid.set(avoid);
    }

    /// Another available instance than `chosen` that `avoided` does not exclude,
    /// looked for from a rotating start so the turns stay shared.
    fn instead(
        &self,
        chosen: Arc<Entry<S>>,
        avoided: impl Fn(&InstanceId) -> bool,
    ) -> Arc<Entry<S>> {
        if !avoided(&chosen.id) {
            return chosen;
        }
        let set = self.shared.set.load();
        let n = set.entries.len();
        let start = (self.shared.next.fetch_add(1, Ordering::Relaxed) % n.max(1) as u64) as usize;
        (0..n)
            .map(|i| &set.entries[(start + i) % n])
            .find(|e| e.available() && !avoided(&e.id))
            .cloned()
            .unwrap_or(chosen)
    }

    /// Adds an instance, or replaces the one with the same id.
    pub fn insert(&self, instance: Instance<S>) {
        self.edit(|entries| {
            entries.retain(|e| e.id != instance.id);
            entries.push(Arc::new(Entry {
                id: instance.id,
                service: instance.service,
                weight: instance.weight,
                breaker: instance.breaker,
                standby: instance.standby,
                healthy: AtomicBool::new(true),
                outstanding: AtomicUsize::new(0),
            }));
        });
    }

    /// Removes an instance; calls in flight on it finish normally.
    pub fn remove(&self, id: &InstanceId) -> bool {
        let mut found = false;
        self.edit(|entries| {
            let before = entries.len();
            entries.retain(|e| e.id != *id);
            found = entries.len() != before;
        });
        found
    }

    /// Marks an instance healthy or not; returns whether it exists.
    pub fn set_healthy(&self, id: &InstanceId, healthy: bool) -> bool {
        let set = self.shared.set.load();
        match set.entries.iter().find(|e| e.id == *id) {
            Some(e) => {
                e.healthy.store(healthy, Ordering::Release);
                true
            }
            None => false,
        }
    }

    fn edit(&self, change: impl FnOnce(&mut Vec<Arc<Entry<S>>>)) {
        let _guard = self.shared.edit.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = self.shared.set.load().entries.clone();
        change(&mut entries);
        let ring = if self.shared.config.strategy == Strategy::ConsistentHash {
            let vnodes = u64::from(self.shared.config.virtual_nodes);
            let mut ring: Vec<(u64, usize)> = entries
                .iter()
                .enumerate()
                .flat_map(|(i, e)| {
                    let points = vnodes * u64::from(e.weight);
                    (0..points).map(move |p| (hash_of((e.id.as_str(), p)), i))
                })
                .collect();
            ring.sort_unstable();
            ring
        } else {
            Vec::new()
        };
        let preferred = if entries.iter().any(|e| e.standby) {
            entries.iter().filter(|e| !e.standby).cloned().collect()
        } else {
            Vec::new()
        };
        self.shared.set.store(Arc::new(Set {
            entries,
            preferred,
            ring,
        }));
    }

    /// The instances and their state.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.shared
            .set
            .load()
            .entries
            .iter()
            .map(|e| InstanceInfo {
                id: e.id.clone(),
                weight: e.weight,
                outstanding: e.outstanding.load(Ordering::Acquire),
                unavailable: e.unavailable(),
            })
            .collect()
    }

    /// Chooses an instance for a call with no key.
    pub fn pick(&self) -> Result<Picked<S>, NoInstanceAvailable> {
        self.pick_hashed(None)
    }

    /// Chooses an instance for a call whose key is `key` (used by consistent hashing).
    pub fn pick_for(&self, key: impl Hash) -> Result<Picked<S>, NoInstanceAvailable> {
        self.pick_hashed(Some(hash_of(key)))
    }

    fn pick_hashed(&self, key: Option<u64>) -> Result<Picked<S>, NoInstanceAvailable> {
        let entry = self.choose(key)?;
        Ok(Picked {
            id: entry.id.clone(),
            service: entry.service.clone(),
            in_flight: InFlight::start(entry),
        })
    }

    fn choose(&self, key: Option<u64>) -> Result<Arc<Entry<S>>, NoInstanceAvailable> {
        let set = self.shared.set.load();
        // Standbys wait while an instance that is not one is available.
        let preferred = set.preferred.iter().any(|e| e.available());
        let entries = if preferred {
            &set.preferred
        } else {
            &set.entries
        };
        let chosen = if entries.is_empty() {
            None
        } else {
            match (self.shared.config.strategy, key) {
                (Strategy::RoundRobin, _) | (Strategy::ConsistentHash, None) => {
                    self.round_robin(entries).map(|i| &entries[i])
                }
                (Strategy::Weighted, _) => weighted(entries).map(|i| &entries[i]),
                (Strategy::LeastOutstanding, _) => {
                    self.least_outstanding(entries).map(|i| &entries[i])
                }
                (Strategy::PowerOfTwoChoices, _) => self.two_choices(entries).map(|i| &entries[i]),
                // The ring holds every entry.
                (Strategy::ConsistentHash, Some(k)) => {
                    on_ring(&set.ring, &set.entries, k, preferred).map(|i| &set.entries[i])
                }
            }
        };
        match chosen {
            Some(entry) => Ok(entry.clone()),
            None => Err(NoInstanceAvailable {
                name: self.shared.name.clone(),
                reasons: set
                    .entries
                    .iter()
                    .map(|e| {
                        let why = e.unavailable().unwrap_or(Unavailable::Unhealthy);
                        // The call is refused because of this breaker: it counts it.
                        if let (Unavailable::BreakerOpen { .. }, Some(b)) = (&why, &e.breaker) {
                            b.count_rejected();
                        }
                        (e.id.clone(), why)
                    })
                    .collect(),
            }),
        }
    }

    /// Each call takes the next turn; a turn that falls on an unavailable instance is
    /// used up and the next one taken, so the available instances keep an even share
    /// (with one of three out, the other two alternate rather than one taking its turns).
    /// The next available instance in turn. One turn is taken from the shared
    /// counter and the entries are probed from there: taking a turn per probe let
    /// concurrent callers' turns interleave, so a call could probe the same
    /// unavailable entry twice, never see the available one, and fail.
    /// The turns skipped are then taken too, so the instances left share the calls
    /// evenly.
    fn round_robin(&self, entries: &[Arc<Entry<S>>]) -> Option<usize> {
        let n = entries.len();
        let start = (self.shared.next.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
        let chosen = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| entries[i].available())?;
        let skipped = (chosen + n - start) % n;
        if skipped > 0 {
            self.shared
                .next
                .fetch_add(skipped as u64, Ordering::Relaxed);
        }
        Some(chosen)
    }

    fn least_outstanding(&self, entries: &[Arc<Entry<S>>]) -> Option<usize> {
        let n = entries.len();
        let start = (self.shared.next.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|&i| entries[i].available())
            .min_by_key(|&i| entries[i].outstanding.load(Ordering::Acquire))
    }

    fn two_choices(&self, entries: &[Arc<Entry<S>>]) -> Option<usize> {
        let n = entries.len();
        if n == 1 {
            return entries[0].available().then_some(0);
        }
        let a = rng::below(n as u64) as usize;
        let b = (a + 1 + rng::below(n as u64 - 1) as usize) % n;
        match (entries[a].available(), entries[b].available()) {
            (true, true) => {
                let load = |i: usize| entries[i].outstanding.load(Ordering::Acquire);
                Some(if load(b) < load(a) { b } else { a })
            }
            (true, false) => Some(a),
            (false, true) => Some(b),
            (false, false) => self.least_outstanding(entries),
        }
    }
}

fn weighted<S>(entries: &[Arc<Entry<S>>]) -> Option<usize> {
    let total: u64 = entries
        .iter()
        .filter(|e| e.available())
        .map(|e| u64::from(e.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut point = rng::below(total);
    for (i, e) in entries.iter().enumerate() {
        if !e.available() {
            continue;
        }
        let w = u64::from(e.weight);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    // The set of available instances changed between the two passes.
    entries.iter().position(|e| e.available())
}

/// The first available entry on the ring from `key` on (not a standby when
/// `skip_standbys`).
fn on_ring<S>(
    ring: &[(u64, usize)],
    entries: &[Arc<Entry<S>>],
    key: u64,
    skip_standbys: bool,
) -> Option<usize> {
    if ring.is_empty() {
        return None;
    }
    let start = ring.partition_point(|&(point, _)| point < key);
    (0..ring.len())
        .map(|i| ring[(start + i) % ring.len()].1)
        .find(|&i| entries[i].available() && !(skip_standbys && entries[i].standby))
}

impl<S, Req> Service<Req> for Balancer<S>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    Req: 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Instances are readied one call at a time, after the choice.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = match (&self.shared.key, self.shared.config.strategy) {
            (Some(key), Strategy::ConsistentHash) => key(&req as &dyn Any),
            _ => None,
        };
        let chosen = self.choose(key).map(|entry| match self.shared.avoid.get() {
            Some(avoid) => self.instead(entry, |id| avoid(&req as &dyn Any, id)),
            None => entry,
        });
        match chosen {
            Ok(entry) => {
                let service = entry.service.clone();
                ResponseFuture::called(Oneshot::new(service, req), InFlight::start(entry))
            }
            Err(none) => ResponseFuture::rejected(none),
        }
    }
}
