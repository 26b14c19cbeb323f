//! A configurable in-process module and helpers shared by the node tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use plexus_core::{
    CallContext, CallResult, HealthReport, MethodDescriptor, Service, ServiceDescriptor,
    ServiceError, async_trait,
};
use plexus_core::{InstanceId, ServiceStatus};
use plexus_node::metrics::{Format, sample};
use plexus_node::policy::CallsConfig;
use plexus_node::{CallError, Node, NodeBuilder};
use plexus_registry::health::{ComponentStatus, HealthEvent, HealthWatch};
use serde_json::{Value, json};

/// How a module answers its health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Reports Healthy.
    Healthy,
    /// Reports Unhealthy with a detail.
    Unhealthy(&'static str),
    /// The check itself errors.
    CheckErrors,
}

/// A module: answers `work` (idempotent, schema-checked) and `echo`; can be made to
/// fail its calls and its health check; a restart (`start`) cures it when
/// `cured_by_restart` is set.
pub(crate) struct Module {
    descriptor: ServiceDescriptor,
    pub(crate) calls: AtomicU64,
    pub(crate) starts: AtomicU64,
    pub(crate) stops: AtomicU64,
    pub(crate) failing: AtomicBool,
    /// Calls never answer (a process stopped with SIGSTOP: its socket stays open).
    pub(crate) hung: AtomicBool,
    pub(crate) health: Mutex<Health>,
    pub(crate) cured_by_restart: AtomicBool,
}

pub(crate) fn work_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}, "tag": {"type": "string"}},
        "required": ["n"],
        "additionalProperties": false
    })
}

impl Module {
    pub(crate) fn new(service: &str, instance: &str) -> Arc<Self> {
        Self::typed(service, "module", instance)
    }

    pub(crate) fn typed(service: &str, service_type: &str, instance: &str) -> Arc<Self> {
        let descriptor = ServiceDescriptor::new(service, service_type)
            .with_instance(instance)
            .with_version("1.0.0")
            .with_description(format!("the {service} module"))
            .with_tag("assistant")
            .with_method(
                MethodDescriptor::new("work")
                    .with_description("does one unit of work")
                    .with_params(work_schema())
                    .idempotent(),
            )
            .with_method(MethodDescriptor::new("echo").with_description("returns its params"));
        Arc::new(Self {
            descriptor,
            calls: AtomicU64::new(0),
            starts: AtomicU64::new(0),
            stops: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            health: Mutex::new(Health::Healthy),
            cured_by_restart: AtomicBool::new(true),
        })
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Stops answering calls (they hang) or starts again.
    pub(crate) fn hang(&self, on: bool) {
        self.hung.store(on, Ordering::SeqCst);
    }

    pub(crate) fn set_health(&self, health: Health) {
        *self.health.lock() = health;
    }

    /// Crashes: calls fail and the health check reports Unhealthy until a restart.
    pub(crate) fn crash(&self) {
        self.fail(true);
        self.set_health(Health::Unhealthy("crashed"));
    }
}

#[async_trait]
impl Service for Module {
    fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor.clone()
    }

    async fn start(&self) -> Result<(), ServiceError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        if self.cured_by_restart.load(Ordering::SeqCst) {
            self.fail(false);
            self.set_health(Health::Healthy);
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), ServiceError> {
        self.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn call(&self, method: &str, params: Value, _ctx: CallContext) -> CallResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hung.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(ServiceError::unavailable("dependency down"));
        }
        match method {
            "work" => Ok(json!({"n": params["n"], "instance": self.descriptor.instance.as_str()})),
            "echo" => Ok(params),
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }

    async fn health(&self) -> Result<HealthReport, ServiceError> {
        match self.health.lock().clone() {
            Health::Healthy => Ok(HealthReport::healthy()),
            Health::Unhealthy(why) => Ok(HealthReport::unhealthy(why)),
            Health::CheckErrors => Err(ServiceError::failed("probe refused")),
        }
    }
}

/// Waits (bounded, in virtual time) for the first health event `pick` accepts.
pub(crate) async fn wait_for<T>(
    watch: &mut HealthWatch,
    what: &str,
    mut pick: impl FnMut(&HealthEvent) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(event) = watch.next().await {
            if let Ok(event) = event
                && let Some(t) = pick(&event)
            {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("health events ended before {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Starts `builder` with `modules` as its in-process services.
pub(crate) async fn start(builder: NodeBuilder, modules: &[&Arc<Module>]) -> Node {
    modules
        .iter()
        .fold(builder, |b, m| b.service(Arc::clone(m) as Arc<dyn Service>))
        .start()
        .await
        .unwrap()
}

/// Attaches `module` as an external instance and reports it Healthy; its id.
pub(crate) async fn attach_healthy(node: &Node, module: &Arc<Module>) -> InstanceId {
    let descriptor = module.descriptor();
    let id = descriptor.instance.clone();
    node.attach(descriptor, module.clone()).await.unwrap();
    node.registry()
        .set_status(&id, ServiceStatus::Healthy, None)
        .await
        .unwrap();
    id
}

/// The call policy written as JSON, as in a configuration file.
pub(crate) fn calls(value: Value) -> CallsConfig {
    serde_json::from_value(value).unwrap()
}

/// Breakers that judge a window of 4 calls, open at 50% failures and wait 30 s;
/// no retries.
pub(crate) fn breakers_of_four() -> CallsConfig {
    calls(json!({"default": {
        "breaker": {"window": {"kind": "count", "size": 4}, "minimum_calls": 4,
                    "failure_rate_threshold": 50, "wait_in_open_ms": 30000,
                    "max_wait_in_open_ms": 30000},
        "retry": {"max_attempts": 1}
    }}))
}

/// `storage.work` with `n`.
pub(crate) async fn work(node: &Node, n: u64) -> Result<Value, CallError> {
    node.call("storage.work", json!({"n": n}), CallContext::new())
        .await
}

/// The sample of metric `name` with `labels` in the node's exposition.
pub(crate) fn metric(node: &Node, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = node.metrics().render(Format::Prometheus);
    sample(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} not in:\n{text}"))
}

/// The state of `instance`'s breaker, or `none` before a call reached it.
pub(crate) fn breaker_state(node: &Node, instance: &str) -> &'static str {
    node.breakers()
        .into_iter()
        .find(|(_, i, _)| i.as_str() == instance)
        .map(|(_, _, b)| b.state().as_str())
        .unwrap_or("none")
}

/// Waits for the health component `instance` to reach `status`, returning its detail.
pub(crate) async fn component_becomes(
    node: &Node,
    watch: &mut HealthWatch,
    instance: &str,
    status: ComponentStatus,
) -> String {
    wait_for(watch, instance, |event| match event {
        HealthEvent::StatusChanged { component, to, .. }
            if component == instance && *to == status =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    node.health().component(instance).unwrap().detail
}
