//! One running node: its bus, registry, services, call path, configuration and metrics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use plexus_bus::Bus;
use plexus_config::{ConfigError, ConfigOptions, ConfigStore, STARTUP_AUTHOR, Section};
use plexus_core::HealthReport;
use plexus_core::scope::call_need;
use plexus_core::{
    CallContext, InstanceId, Service, ServiceDescriptor, ServiceName, ServiceStatus,
};
use plexus_registry::RegistryChange;
use plexus_registry::health::{
    CheckError, CheckPolicy, ComponentKind, ComponentSpec, FailureResponse, HealAction,
    HealthError, HealthMonitor, MonitorConfig, SystemHealth, check_fn,
};
use plexus_registry::{Registration, Registry, RegistryConfig, RegistryError};
use plexus_resilience::CircuitBreaker;
use plexus_supervisor::{
    ChildSpec, ChildState, ProcessSpec, Restart, Strategy, Supervisor, SupervisorError,
    SupervisorEvent, SupervisorHandle,
};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::CallError;
use crate::admin::NodeService;
use crate::audit::CallObserver;
use crate::callpath::{Resolver, ServiceRoute, Transport};
use crate::metrics::{
    BreakerCounts, Metrics, Snapshot, SnapshotFamily, breaker_families, bus_families,
    health_families, registry_families,
};
use crate::own::PlexusService;
use crate::policy::{CallsConfig, PolicyError};
use crate::schema::ParamsSchema;
use crate::shared_limit::{SharedLimiter, SharedSlot};
use crate::tap::{CallTap, Tap};
use plexus_core::DescriptorError;

/// The longest method name a call may ask for, in bytes (`service.method`).
pub const MAX_METHOD_LEN: usize = 257;

/// The routes by service name, read on every call (foldhash, seeded per map).
type Routes = HashMap<ServiceName, Arc<ServiceRoute>, foldhash::fast::RandomState>;

pub(crate) struct Core {
    pub(crate) bus: Bus,
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    transports: RwLock<HashMap<InstanceId, Transport>>,
    /// Read on every call: hashed with foldhash (seeded per map), not SipHash.
    routes: ArcSwap<Routes>,
    route_edit: Mutex<()>,
    calls: ArcSwap<CallsConfig>,
    /// Where new policies come from: the configuration's `calls` section.
    policies: Section<CallsConfig>,
    audit: Option<Arc<dyn CallObserver>>,
    /// Every ended call, for live views.
    pub(crate) tap: Tap,
    accepting: AtomicBool,
    /// The counts of breakers that were replaced (a policy change, a service that
    /// re-registered with other methods), by service and instance, so that breaker
    /// counters never go down while the process runs.
    retired: Mutex<HashMap<(String, String), BreakerCounts>>,
    /// The limiter `shared_rate_limit` policies take from, once a family installs it.
    pub(crate) shared_limiter: SharedSlot,
    /// The other nodes, when this one is part of a cluster.
    cluster: crate::cluster::Link,
}

impl Resolver for Core {
    fn transport(&self, registration: &Registration) -> Option<Transport> {
        let instance = registration.instance();
        let local = self.transports.read().get(instance).cloned();
        local.or_else(|| {
            // A node's own services (`node`, `plexus`: tagged `system`) answer for
            // their node only: never reached across nodes.
            if registration
                .descriptor
                .tags
                .contains(crate::cluster::LOCAL_TAG)
            {
                return None;
            }
            self.cluster.as_ref()?.remote(registration)
        })
    }

    fn is_local(&self, instance: &InstanceId) -> bool {
        self.transports.read().contains_key(instance)
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("routes", &self.routes.load().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Core {
    pub(crate) fn new(
        bus: Bus,
        registry: Registry,
        metrics: Metrics,
        policies: Section<CallsConfig>,
        audit: Option<Arc<dyn CallObserver>>,
        cluster: crate::cluster::Link,
    ) -> Arc<Self> {
        let calls = ArcSwap::new(policies.current());
        let core = Arc::new(Self {
            bus,
            registry,
            metrics,
            transports: RwLock::new(HashMap::new()),
            routes: ArcSwap::from_pointee(Routes::default()),
            route_edit: Mutex::new(()),
            calls,
            policies,
            audit,
            tap: Tap::default(),
            accepting: AtomicBool::new(true),
            retired: Mutex::new(HashMap::new()),
            shared_limiter: SharedSlot::default(),
            cluster,
        });
        core.register_collectors();
        core
    }

    fn register_collectors(self: &Arc<Self>) {
        let bus = self.bus.clone();
        self.metrics
            .register_collector(Snapshot::new(move || bus_families(&bus)));
        let registry = self.registry.clone();
        self.metrics
            .register_collector(Snapshot::new(move || registry_families(&registry)));
        let weak = Arc::downgrade(self);
        self.metrics.register_collector(Snapshot::new(move || {
            weak.upgrade()
                .map(|core| core.breaker_families())
                .unwrap_or_default()
        }));
    }

    /// Every instance's breaker, by service.
    pub(crate) fn breakers(&self) -> Vec<(ServiceName, InstanceId, CircuitBreaker)> {
        let routes = self.routes.load();
        let mut all = Vec::new();
        for route in routes.values() {
            for (id, breaker) in route.breakers() {
                all.push((route.name().clone(), id, breaker));
            }
        }
        all
    }

    fn breaker_families(&self) -> Vec<SnapshotFamily> {
        let mut rows = self.retired.lock().clone();
        for route in self.routes.load().values() {
            for (instance, breaker) in route.breakers() {
                let live = BreakerCounts::of(&breaker);
                let row = rows
                    .entry((route.name().to_string(), instance.to_string()))
                    .or_default();
                row.state = live.state;
                row.add(&live);
            }
        }
        let mut rows: Vec<_> = rows.into_iter().map(|((s, i), c)| (s, i, c)).collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        breaker_families(rows)
    }

    /// Keeps the counts of a route's breakers before the route is replaced.
    fn retire(&self, route: &ServiceRoute) {
        let mut retired = self.retired.lock();
        for (instance, breaker) in route.breakers() {
            let mut counts = BreakerCounts::of(&breaker);
            counts.state = None;
            retired
                .entry((route.name().to_string(), instance.to_string()))
                .or_default()
                .add(&counts);
        }
    }

    /// Makes an instance reachable through `transport`.
    pub(crate) fn add_transport(&self, instance: InstanceId, transport: Transport) {
        if let Some(cluster) = &self.cluster
            && !transport
                .descriptor()
                .tags
                .contains(crate::cluster::LOCAL_TAG)
        {
            cluster.serve(&instance, transport.clone());
        }
        self.transports.write().insert(instance, transport);
    }

    /// Forgets an instance's transport.
    pub(crate) fn remove_transport(&self, instance: &InstanceId) -> bool {
        if let Some(cluster) = &self.cluster {
            cluster.unserve(instance);
        }
        self.transports.write().remove(instance).is_some()
    }

    /// Picks up new call policies from the configuration: when the section's value
    /// is not the one the routes were built with, the routes are dropped and rebuilt
    /// on their next call. One pointer comparison when nothing changed.
    fn refresh_policies(&self) {
        let current = self.policies.current();
        if Arc::ptr_eq(&current, &self.calls.load()) {
            return;
        }
        let _edit = self.route_edit.lock();
        self.calls.store(current);
        let old = self.routes.swap(Arc::new(Routes::default()));
        for route in old.values() {
            self.retire(route);
        }
    }

    /// Stops or resumes taking calls.
    pub(crate) fn set_accepting(&self, on: bool) {
        self.accepting.store(on, Ordering::SeqCst);
    }

    /// The route of `service`, built on first use from the registry; `method` is the
    /// full name asked for, for errors.
    fn route(
        &self,
        service: &str,
        method: &str,
    ) -> Result<(Arc<ServiceRoute>, Arc<[Registration]>), CallError> {
        let instances = self.registry.instances_named(service);
        if let Some(route) = self.routes.load().get(service)
            && route.serves(&instances)
        {
            route.sync(instances.clone(), self);
            return Ok((route.clone(), instances));
        }
        let Some(source) = instances.iter().max_by_key(|r| r.registered_at) else {
            return Err(CallError::MethodNotFound {
                method: method.to_owned(),
                hint: Some(format!(
                    "no service `{service}` is registered; `plexus services` lists them"
                )),
            });
        };
        let descriptor: Arc<ServiceDescriptor> = source.descriptor.clone();
        let _edit = self.route_edit.lock();
        let policy = self
            .calls
            .load()
            .service(service)
            .map_err(|e| CallError::Internal {
                message: e.to_string(),
            })?;
        let route = Arc::new(ServiceRoute::build(
            &descriptor,
            policy,
            &self.metrics,
            &self.shared_limiter,
        )?);
        route.sync(instances.clone(), self);
        let mut routes = Routes::clone(&self.routes.load());
        if let Some(old) = routes.insert(ServiceName::new(service), route.clone()) {
            self.retire(&old);
        }
        self.routes.store(Arc::new(routes));
        Ok((route, instances))
    }

    /// The whole call path for one call, handed to the call tap when someone listens.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, CallError> {
        if !self.tap.active() {
            return self.call_path(method, params, ctx).await;
        }
        let (caller, correlation_id) = (ctx.caller.clone(), ctx.correlation_id);
        let at = plexus_core::Timestamp::now();
        let started = tokio::time::Instant::now();
        let result = self.call_path(method, params, ctx).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.tap.send(Tap::event(
            method,
            caller,
            correlation_id,
            at,
            started.elapsed(),
            outcome,
        ));
        result
    }

    async fn call_path(
        &self,
        method: &str,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, CallError> {
        if method.len() > MAX_METHOD_LEN {
            return Err(CallError::MethodNotFound {
                method: method.chars().take(64).collect::<String>() + "…",
                hint: Some(format!("method names are at most {MAX_METHOD_LEN} bytes")),
            });
        }
        let Some((service, name)) = method.split_once('.') else {
            return Err(CallError::MethodNotFound {
                method: method.to_owned(),
                hint: Some("methods are called as `service.method`".to_owned()),
            });
        };
        // Whichever front end or service makes the call, an authenticated caller
        // calls only what its `call:` scopes allow.
        if let Some(need) = call_need(method) {
            ctx.check(need)?;
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err(CallError::Unavailable {
                service: service.to_owned(),
                reason: "the node is shutting down".to_owned(),
                instances: Vec::new(),
            });
        }
        self.refresh_policies();
        let (route, _) = self.route(service, method)?;
        let Some(m) = route.method(name) else {
            return Err(CallError::MethodNotFound {
                method: method.to_owned(),
                hint: Some(format!(
                    "`{service}` has: {}",
                    route.method_names().join(", ")
                )),
            });
        };
        m.call(&route, params, ctx, self.audit.as_ref()).await
    }

    /// `descriptor` marked with this node's name, in a cluster.
    fn placed(&self, mut descriptor: ServiceDescriptor) -> ServiceDescriptor {
        if let Some(cluster) = &self.cluster {
            descriptor.metadata.insert(
                crate::cluster::NODE_METADATA.to_owned(),
                cluster.node().to_owned(),
            );
        }
        descriptor
    }

    /// Registers a remote instance reached through `transport`.
    pub(crate) async fn attach(
        &self,
        descriptor: ServiceDescriptor,
        transport: Transport,
    ) -> Result<Registration, RegistryError> {
        let instance = descriptor.instance.clone();
        self.add_transport(instance.clone(), transport);
        match self.registry.register(self.placed(descriptor)).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.remove_transport(&instance);
                Err(e)
            }
        }
    }
}

/// How the node runs one in-process service.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// How its health is checked, and whether it is critical to the system.
    pub health: CheckPolicy,
    /// When the supervisor starts it again.
    pub restart: Restart,
    /// How long its `stop()` may take before it is abandoned.
    pub shutdown_timeout: Duration,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            health: CheckPolicy::default(),
            restart: Restart::Permanent,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl ServiceOptions {
    /// Sets the health policy.
    pub fn with_health(mut self, policy: CheckPolicy) -> Self {
        self.health = policy;
        self
    }

    /// Sets the restart type.
    pub fn with_restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
}

/// Everything that can stop a node from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A service could not be registered.
    #[error("registering `{instance}`: {source}")]
    Register {
        /// The instance.
        instance: String,
        /// Why.
        source: RegistryError,
    },
    /// The registry's configuration was refused.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The health monitor refused a component or its configuration.
    #[error("health: {0}")]
    Health(#[from] HealthError),
    /// The supervisor could not start the services.
    #[error("supervision: {0}")]
    Supervisor(#[from] SupervisorError),
    /// A call policy is invalid.
    #[error("call policy: {0}")]
    Policy(#[from] PolicyError),
    /// The configuration was refused.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
}

struct Local {
    service: Arc<dyn Service>,
    instance: InstanceId,
    options: ServiceOptions,
}

/// Builds and starts a [`Node`].
#[must_use]
pub struct NodeBuilder {
    name: String,
    bus: Option<Bus>,
    registry: RegistryConfig,
    monitor: MonitorConfig,
    calls: Option<CallsConfig>,
    config: Option<ConfigStore>,
    audit: Option<Arc<dyn CallObserver>>,
    strategy: Strategy,
    intensity: (u32, Duration),
    services: Vec<Local>,
    processes: Vec<(String, ProcessSpec, Restart)>,
    components: Vec<ComponentSpec>,
    cluster: crate::cluster::Link,
    durable: Option<Arc<dyn crate::DurableLog>>,
}

impl fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("name", &self.name)
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Uses `bus` instead of a new one.
    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Sets the registry's configuration (heartbeat TTL, grace, …).
    pub fn registry_config(mut self, config: RegistryConfig) -> Self {
        self.registry = config;
        self
    }

    /// Sets the health monitor's configuration.
    pub fn monitor_config(mut self, config: MonitorConfig) -> Self {
        self.monitor = config;
        self
    }

    /// Sets the call policies: written into the configuration's `calls` section at
    /// start (author `startup`).
    pub fn calls(mut self, calls: CallsConfig) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Hands every mutating call (a method not declared idempotent) to `observer`
    /// once it ends: the audit trail.
    pub fn audit(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.audit = Some(observer);
        self
    }

    /// Uses `store` as the node's runtime configuration (default: an empty one
    /// announcing changes on the node's bus). The node reads its `calls` section.
    pub fn config(mut self, store: ConfigStore) -> Self {
        self.config = Some(store);
        self
    }

    /// Sets how the node's supervisor restarts services: strategy, then at most
    /// `max_restarts` within `within` before it gives up (default one-for-one, 5 in
    /// 60 s).
    pub fn supervision(mut self, strategy: Strategy, max_restarts: u32, within: Duration) -> Self {
        self.strategy = strategy;
        self.intensity = (max_restarts, within);
        self
    }

    /// Runs `service` with the default options.
    pub fn service(self, service: Arc<dyn Service>) -> Self {
        self.service_with(service, ServiceOptions::default())
    }

    /// Runs `service` with `options`.
    pub fn service_with(mut self, service: Arc<dyn Service>, options: ServiceOptions) -> Self {
        let instance = service.descriptor().instance;
        self.services.push(Local {
            service,
            instance,
            options,
        });
        self
    }

    /// Supervises an external child process.
    pub fn process(mut self, name: impl Into<String>, spec: ProcessSpec, restart: Restart) -> Self {
        self.processes.push((name.into(), spec, restart));
        self
    }

    /// Makes the node one of a cluster: its registry is the one `link` shares with
    /// the other nodes, and instances on them are reached through it.
    pub fn cluster(mut self, link: Arc<dyn crate::ClusterLink>) -> Self {
        self.cluster = Some(link);
        self
    }

    /// Keeps the durable topics in `log`: a publish on one of them through the node
    /// is written there (its relay delivers it), and `plexus.replay` reads it back.
    pub fn durable(mut self, log: Arc<dyn crate::DurableLog>) -> Self {
        self.durable = Some(log);
        self
    }

    /// Watches one more component (a database client, a dependency).
    pub fn component(mut self, spec: ComponentSpec) -> Self {
        self.components.push(spec);
        self
    }

    /// Registers the services, starts them in order under the supervisor, and
    /// starts watching their health.
    pub async fn start(mut self) -> Result<Node, NodeError> {
        if let Some(link) = &self.cluster {
            // One registry for every node: this node's instances carry its name.
            for local in &mut self.services {
                let placed = crate::cluster::Placed::wrap(local.service.clone(), link.node());
                local.instance = placed.descriptor().instance;
                local.service = placed;
            }
        }
        let bus = self.bus.unwrap_or_default();
        let config = match self.config {
            Some(store) => store,
            None => {
                ConfigStore::builder()
                    .options(ConfigOptions {
                        bus: Some(bus.clone()),
                        ..ConfigOptions::default()
                    })
                    .build()
                    .await?
            }
        };
        let policies = config.register_section::<CallsConfig>("calls").await?;
        // `calls.default` in force when the configuration does not say.
        if let Ok(defaults) = serde_json::to_value(crate::policy::ServicePolicy::default()) {
            config.declare_defaults("calls", serde_json::json!({ "default": defaults }))?;
        }
        if let Some(calls) = self.calls {
            let value = serde_json::to_value(&calls).map_err(|e| {
                NodeError::Policy(PolicyError {
                    field: "calls".to_owned(),
                    reason: e.to_string(),
                })
            })?;
            config.set("calls", value, STARTUP_AUTHOR).await?;
        }
        let registry = match &self.cluster {
            None => Registry::new(self.registry, bus.clone())?,
            Some(link) => {
                let registry =
                    Registry::with_backend(self.registry, bus.clone(), link.registry_backend())
                        .await?;
                link.follow(registry.clone());
                registry
            }
        };
        registry.spawn_sweeper();
        let core = Core::new(
            bus.clone(),
            registry.clone(),
            Metrics::new(),
            policies,
            self.audit,
            self.cluster.clone(),
        );
        let health = HealthMonitor::new(self.monitor, bus.clone(), Some(registry.clone()))?;
        register_health_metrics(&core.metrics, &health);

        for local in &self.services {
            let descriptor = core.placed(local.service.descriptor());
            registry
                .register(descriptor)
                .await
                .map_err(|source| NodeError::Register {
                    instance: local.instance.to_string(),
                    source,
                })?;
            core.add_transport(local.instance.clone(), local.service.clone());
        }

        let mut supervisor = Supervisor::builder(self.name.clone())
            .strategy(self.strategy)
            .intensity(self.intensity.0, self.intensity.1)
            .bus(bus.clone());
        for local in &self.services {
            supervisor = supervisor.child(
                ChildSpec::service(local.instance.as_str(), local.service.clone())
                    .restart(local.options.restart)
                    .shutdown_timeout(local.options.shutdown_timeout),
            );
        }
        for (name, spec, restart) in &self.processes {
            supervisor =
                supervisor.child(ChildSpec::process(name.clone(), spec.clone()).restart(*restart));
        }
        let supervisor = supervisor.build()?.start().await?;

        for local in &self.services {
            // Started: routable until its checks say otherwise.
            let _ = registry
                .set_status(
                    &local.instance,
                    ServiceStatus::Healthy,
                    Some("started".to_owned()),
                )
                .await;
            let handle = supervisor.clone();
            let child = local.instance.to_string();
            let heal = HealAction::restart("restart", move || {
                let handle = handle.clone();
                let child = child.clone();
                async move {
                    handle
                        .report_failure(&child, "health check")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            });
            health.add(
                ComponentSpec::service(local.service.clone())
                    .with_policy(local.options.health.clone())
                    .with_heal(heal),
            )?;
        }
        for component in self.components {
            health.add(component)?;
        }

        // The node's own service: services, health and configuration, callable like
        // any other. It reads the breakers through a weak handle, since the core
        // holds it as a transport.
        let weak = Arc::downgrade(&core);
        let admin: Arc<dyn Service> = Arc::new(NodeService::new(
            &self.name,
            registry.clone(),
            health.clone(),
            config.clone(),
            Arc::new(move || weak.upgrade().map(|c| c.breakers()).unwrap_or_default()),
        ));
        // And the bus and registry as methods (`plexus.*`).
        let own: Arc<dyn Service> = Arc::new(PlexusService::new(
            &self.name,
            bus.clone(),
            self.durable.clone(),
        ));
        let mut local: Vec<InstanceId> = self.services.iter().map(|l| l.instance.clone()).collect();
        let services = local.clone();
        for service in [admin, own] {
            let descriptor = core.placed(service.descriptor());
            let instance = descriptor.instance.clone();
            registry
                .register(descriptor)
                .await
                .map_err(|source| NodeError::Register {
                    instance: instance.to_string(),
                    source,
                })?;
            core.add_transport(instance.clone(), service);
            let _ = registry
                .set_status(
                    &instance,
                    ServiceStatus::Healthy,
                    Some("started".to_owned()),
                )
                .await;
            local.push(instance);
        }
        let tasks = vec![
            spawn_heartbeats(
                registry.clone(),
                supervisor.clone(),
                services,
                local.clone(),
            ),
            spawn_supervision_watch(registry.clone(), supervisor.clone()),
            spawn_external_health(registry.clone(), health.clone(), local.clone()),
        ];
        Ok(Node {
            inner: Arc::new(NodeInner {
                name: self.name,
                config,
                core,
                health,
                supervisor,
                local,
                tasks: Mutex::new(tasks),
                durable: self.durable,
            }),
        })
    }
}

/// How `joining` differs from the methods callers see (`registered`), if it does.
fn method_difference(
    registered: &[plexus_core::MethodDescriptor],
    joining: &[plexus_core::MethodDescriptor],
) -> Option<String> {
    let mut differences = Vec::new();
    for m in registered {
        match joining.iter().find(|j| j.name == m.name) {
            None => differences.push(format!("`{}` is missing", m.name)),
            Some(j) if j.params != m.params => {
                differences.push(format!("`{}` has other params", m.name));
            }
            Some(j) if j.result != m.result => {
                differences.push(format!("`{}` has another result", m.name));
            }
            Some(j) if j.idempotent != m.idempotent => {
                differences.push(format!("`{}` differs in idempotency", m.name));
            }
            Some(_) => {}
        }
    }
    for j in joining {
        if !registered.iter().any(|m| m.name == j.name) {
            differences.push(format!("`{}` is not a method of the service", j.name));
        }
    }
    (!differences.is_empty()).then(|| differences.join("; "))
}

/// An external instance as a health component: its check reads the status its
/// connection keeps in the registry; it is checked again at once whenever that
/// status changes ([`spawn_external_health`]).
fn external_component(registry: Registry, descriptor: &ServiceDescriptor) -> ComponentSpec {
    let instance = descriptor.instance.clone();
    let optional = descriptor
        .metadata
        .get("critical")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let policy = CheckPolicy::default()
        .with_thresholds(1, 1)
        .on_unhealthy(FailureResponse::MarkUnhealthy)
        .on_check_error(FailureResponse::MarkUnhealthy);
    let policy = if optional {
        policy.optional()
    } else {
        policy.critical()
    };
    let id = instance.clone();
    ComponentSpec::new(
        instance.as_str(),
        ComponentKind::Service,
        check_fn(move || {
            let found = registry.get(&id);
            async move {
                let Some(r) = found else {
                    return Err(CheckError::new("no longer registered"));
                };
                let why = || {
                    r.reason
                        .clone()
                        .unwrap_or_else(|| r.status.as_str().to_owned())
                };
                Ok(match r.status {
                    ServiceStatus::Healthy => HealthReport::healthy(),
                    ServiceStatus::Degraded => HealthReport::degraded(why()),
                    ServiceStatus::Starting => HealthReport::degraded("starting"),
                    _ => HealthReport::unhealthy(why()),
                })
            }
        }),
    )
    .with_policy(policy)
}

/// Checks an external instance's health component again as soon as its status in
/// the registry changes (its connection was lost, it went stale, it reported).
fn spawn_external_health(
    registry: Registry,
    health: HealthMonitor,
    local: Vec<InstanceId>,
) -> JoinHandle<()> {
    let mut changes = registry.watch();
    tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            let instance = match change {
                Ok(
                    RegistryChange::StatusChanged { instance, .. }
                    | RegistryChange::Stale { instance, .. },
                ) => instance,
                Ok(_) => continue,
                Err(_lagged) => continue,
            };
            if !local.contains(&instance) && health.component(instance.as_str()).is_some() {
                let _ = health.check_now(instance.as_str()).await;
            }
        }
    })
}

/// Heartbeats every local instance whose supervised child runs, three times per TTL.
fn spawn_heartbeats(
    registry: Registry,
    supervisor: SupervisorHandle,
    supervised: Vec<InstanceId>,
    local: Vec<InstanceId>,
) -> JoinHandle<()> {
    let every = registry.config().heartbeat_ttl / 3;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for instance in &local {
                let running = !supervised.contains(instance)
                    || supervisor
                        .child(instance.as_str())
                        .is_some_and(|c| c.state == ChildState::Running);
                if running {
                    let _ = registry.heartbeat(instance).await;
                }
            }
        }
    })
}

/// Writes what the supervisor does into the registry: an abnormal exit makes the
/// instance Unhealthy until its restart and checks say otherwise; giving up marks
/// every instance it ran Unhealthy for good.
fn spawn_supervision_watch(registry: Registry, supervisor: SupervisorHandle) -> JoinHandle<()> {
    let mut events = supervisor.events();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            match event {
                SupervisorEvent::ChildExited {
                    child,
                    reason,
                    abnormal: true,
                    ..
                } => {
                    let _ = registry
                        .set_status(
                            &InstanceId::new(&child),
                            ServiceStatus::Unhealthy,
                            Some(format!("exited: {reason}")),
                        )
                        .await;
                }
                SupervisorEvent::GaveUp {
                    child, restarts, ..
                } => {
                    for info in supervisor.children() {
                        let _ = registry
                            .set_status(
                                &InstanceId::new(&info.name),
                                ServiceStatus::Unhealthy,
                                Some(format!(
                                    "supervisor gave up after {restarts} restarts of `{child}`"
                                )),
                            )
                            .await;
                    }
                }
                _ => {}
            }
        }
    })
}

fn register_health_metrics(metrics: &Metrics, health: &HealthMonitor) {
    let health = health.clone();
    metrics.register_collector(Snapshot::new(move || health_families(&health)));
}

struct NodeInner {
    name: String,
    config: ConfigStore,
    core: Arc<Core>,
    health: HealthMonitor,
    supervisor: SupervisorHandle,
    local: Vec<InstanceId>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    durable: Option<Arc<dyn crate::DurableLog>>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
            task.abort();
        }
        self.health.shutdown();
        self.core.registry.shutdown();
    }
}

/// A running node. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// What a node's shutdown did.
#[derive(Debug)]
pub struct NodeShutdown {
    /// How the services were stopped, in order.
    pub services: plexus_supervisor::ShutdownReport,
    /// What the bus drained and what it could not deliver.
    pub bus: plexus_bus::ShutdownReport,
}

/// A handle on a node that does not keep it running: what a service the node holds
/// keeps to call the node's other services back (the cache's loaders), without a
/// cycle that would keep both alive.
#[derive(Clone, Default)]
pub struct WeakNode {
    inner: Weak<NodeInner>,
}

impl fmt::Debug for WeakNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakNode")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl WeakNode {
    /// The node, while something else still holds it.
    pub fn upgrade(&self) -> Option<Node> {
        self.inner.upgrade().map(|inner| Node { inner })
    }
}

impl Node {
    /// A handle that does not keep the node alive.
    pub fn downgrade(&self) -> WeakNode {
        WeakNode {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// A builder for a node called `name`.
    pub fn builder(name: impl Into<String>) -> NodeBuilder {
        NodeBuilder {
            name: name.into(),
            bus: None,
            registry: RegistryConfig::default(),
            monitor: MonitorConfig::default(),
            calls: None,
            config: None,
            audit: None,
            strategy: Strategy::OneForOne,
            intensity: (5, Duration::from_secs(60)),
            services: Vec::new(),
            processes: Vec::new(),
            components: Vec::new(),
            cluster: None,
            durable: None,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Calls `method` (`service.method`) through the call path.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, CallError> {
        self.inner.core.call(method, params, ctx).await
    }

    /// Listens to every call the node makes, as each ends (see [`crate::tap`]).
    pub fn tap_calls(&self) -> CallTap {
        self.inner.core.tap.listen()
    }

    /// Registers an instance that lives elsewhere and is reached through
    /// `transport` (the gateway's WebSocket sessions). It starts as Starting; the
    /// caller sets its status and heartbeats it.
    ///
    /// The instance is also a health component named by its instance id, whose
    /// status follows the one its connection keeps in the registry (with the
    /// reason), so `node.health`, `/health` and `/ready` see external services as
    /// they see in-process ones. It is critical to the system unless its descriptor's
    /// metadata says `critical = "false"`.
    pub async fn attach(
        &self,
        descriptor: ServiceDescriptor,
        transport: Transport,
    ) -> Result<Registration, RegistryError> {
        self.admit(&descriptor)?;
        let component = external_component(self.inner.core.registry.clone(), &descriptor);
        let registration = self.inner.core.attach(descriptor, transport).await?;
        let name = registration.instance().to_string();
        let _ = self.inner.health.remove(&name);
        if let Err(error) = self.inner.health.add(component) {
            tracing::warn!(instance = %name, %error, "external instance not watched by health");
        }
        Ok(registration)
    }

    /// Whether an instance from elsewhere may join: its schemas compile, its service
    /// is not one this node serves in process (those names are reserved), and it
    /// declares exactly the methods (names, schemas, idempotency) of the service's
    /// other instances, so a joining instance can never change what callers see.
    fn admit(&self, descriptor: &ServiceDescriptor) -> Result<(), RegistryError> {
        let refuse = |field: &str, reason: String| {
            RegistryError::InvalidDescriptor(DescriptorError::new(field, reason))
        };
        for (i, method) in descriptor.methods.iter().enumerate() {
            let full = format!("{}.{}", descriptor.name, method.name);
            for (part, schema) in [("params", &method.params), ("result", &method.result)] {
                ParamsSchema::compile(&full, schema).map_err(|e| {
                    refuse(
                        &format!("methods[{i}].{part}"),
                        format!("does not compile: {}", e.reason),
                    )
                })?;
            }
        }
        let instances = self.inner.core.registry.instances(&descriptor.name);
        if instances
            .iter()
            .any(|r| self.inner.local.contains(r.instance()))
        {
            return Err(refuse(
                "name",
                format!(
                    "`{}` is served in process by this node; its name is reserved",
                    descriptor.name
                ),
            ));
        }
        let others = instances
            .iter()
            .filter(|r| r.instance() != &descriptor.instance)
            .max_by_key(|r| r.registered_at);
        if let Some(other) = others
            && let Some(difference) =
                method_difference(&other.descriptor.methods, &descriptor.methods)
        {
            return Err(refuse(
                "methods",
                format!(
                    "differ from those of `{}`'s registered instance `{}`: {difference}",
                    descriptor.name,
                    other.instance()
                ),
            ));
        }
        Ok(())
    }

    /// Forgets a remote instance: no more calls go to it, it is deregistered, and it
    /// is no longer a health component.
    pub async fn detach(&self, instance: &InstanceId) -> Result<Registration, RegistryError> {
        self.inner.core.remove_transport(instance);
        if !self.inner.local.contains(instance) {
            let _ = self.inner.health.remove(instance.as_str());
        }
        self.inner.core.registry.deregister(instance).await
    }

    /// The node's runtime configuration. Changing its `calls` section changes the
    /// call policies of a running node; the next call uses them.
    pub fn config(&self) -> &ConfigStore {
        &self.inner.config
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.core.bus
    }

    /// Where the node's durable topics are kept, if any are.
    pub fn durable(&self) -> Option<&Arc<dyn crate::DurableLog>> {
        self.inner.durable.as_ref()
    }

    /// Publishes `envelope` as `plexus.publish` does (no scope check: the caller
    /// checked): into the durable log when its topic is durable, else on the bus.
    pub async fn publish(
        &self,
        envelope: plexus_core::Envelope,
    ) -> Result<crate::own::Published, plexus_core::ServiceError> {
        crate::own::publish_envelope(self.bus(), self.durable(), envelope).await
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.core.registry
    }

    /// The health monitor.
    pub fn health(&self) -> &HealthMonitor {
        &self.inner.health
    }

    /// The system's health, aggregated.
    pub fn system_health(&self) -> SystemHealth {
        self.inner.health.system()
    }

    /// The supervisor running the in-process services and child processes.
    pub fn supervisor(&self) -> &SupervisorHandle {
        &self.inner.supervisor
    }

    /// Installs the limiter `shared_rate_limit` policies take from (the limits
    /// family does, once the node runs); the first one installed stays. Whether
    /// this one was installed.
    pub fn install_shared_limiter(&self, limiter: Arc<dyn SharedLimiter>) -> bool {
        self.inner.core.shared_limiter.set(limiter).is_ok()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.core.metrics
    }

    /// Every instance's breaker, by service.
    pub fn breakers(&self) -> Vec<(ServiceName, InstanceId, CircuitBreaker)> {
        self.inner.core.breakers()
    }

    /// Stops taking calls, marks the local services ShuttingDown, stops them in
    /// reverse start order, deregisters them, and drains the bus within `drain`.
    pub async fn shutdown(&self, drain: Duration) -> NodeShutdown {
        let inner = &self.inner;
        inner.core.set_accepting(false);
        for task in inner.tasks.lock().drain(..) {
            task.abort();
        }
        inner.health.shutdown();
        for instance in &inner.local {
            let _ = inner
                .core
                .registry
                .set_status(
                    instance,
                    ServiceStatus::ShuttingDown,
                    Some("node shutdown".to_owned()),
                )
                .await;
        }
        let services = inner.supervisor.shutdown().await;
        for instance in &inner.local {
            let _ = inner
                .core
                .registry
                .set_status(
                    instance,
                    ServiceStatus::Stopped,
                    Some("node shutdown".to_owned()),
                )
                .await;
            let _ = inner.core.registry.deregister(instance).await;
        }
        inner.core.registry.shutdown();
        let bus = inner.core.bus.shutdown(drain).await;
        NodeShutdown { services, bus }
    }
}
