//! Shared test helpers: registries, descriptors, a scripted component, bounded waits.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use plexus_bus::Bus;
use plexus_core::{HealthReport, MethodDescriptor, ServiceDescriptor, ServiceStatus, async_trait};
use plexus_registry::health::{CheckError, HealthCheck, HealthEvent, HealthWatch};
use plexus_registry::{Registration, Registry, RegistryChange, RegistryConfig, Watch};
use serde_json::json;

/// Fails the test if `f` does not complete within 10 minutes of (virtual) time.
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(600), f)
        .await
        .expect("did not happen within 600 s of tokio time")
}

pub(crate) fn registry_with(config: RegistryConfig) -> (Registry, Bus) {
    let bus = Bus::new();
    (Registry::new(config, bus.clone()).unwrap(), bus)
}

pub(crate) fn registry() -> (Registry, Bus) {
    registry_with(RegistryConfig::default())
}

/// A descriptor of `service` (type `test`), instance `instance`, method `get`.
pub(crate) fn descriptor(service: &str, instance: &str) -> ServiceDescriptor {
    ServiceDescriptor::new(service, "test")
        .with_instance(instance)
        .with_method(
            MethodDescriptor::new("get")
                .with_params(json!({"type": "object"}))
                .idempotent(),
        )
}

/// Registers instance `instance` of `service`, described by [`descriptor`].
pub(crate) async fn register(registry: &Registry, service: &str, instance: &str) -> Registration {
    registry
        .register(descriptor(service, instance))
        .await
        .unwrap()
}

/// Sets the status of `instance`, with `reason` when there is one.
pub(crate) async fn set_status(
    registry: &Registry,
    instance: &str,
    status: ServiceStatus,
    reason: Option<&str>,
) -> Registration {
    registry
        .set_status(&instance.into(), status, reason.map(str::to_owned))
        .await
        .unwrap()
}

/// The next change on a watch, failing on lag or end.
pub(crate) async fn next_change(watch: &mut Watch) -> RegistryChange {
    within(watch.next()).await.expect("watch ended").unwrap()
}

/// Waits for the first health event `pick` accepts, returning what it returned.
pub(crate) async fn wait_for<T>(
    watch: &mut HealthWatch,
    mut pick: impl FnMut(&HealthEvent) -> Option<T>,
) -> T {
    within(async {
        loop {
            let event = watch.next().await.expect("health watch ended").unwrap();
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
}

/// Waits until `component` has completed its `n`th check.
pub(crate) async fn wait_for_check(watch: &mut HealthWatch, component: &str, n: u64) {
    wait_for(watch, |e| match e {
        HealthEvent::CheckCompleted {
            component: c,
            checks,
            ..
        } if c == component && *checks == n => Some(()),
        _ => None,
    })
    .await
}

/// What a [`Scripted`] check does when called.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    Healthy,
    Degraded,
    Unhealthy,
    Error,
    /// Takes this long, then reports healthy.
    Slow(Duration),
}

/// A check whose answer the test sets, counting its calls.
#[derive(Clone)]
pub(crate) struct Scripted {
    step: Arc<Mutex<Step>>,
    calls: Arc<AtomicU64>,
}

impl Scripted {
    pub(crate) fn new(step: Step) -> Self {
        Self {
            step: Arc::new(Mutex::new(step)),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn set(&self, step: Step) {
        *self.step.lock() = step;
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl HealthCheck for Scripted {
    async fn check(&self) -> Result<HealthReport, CheckError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.step.lock().clone();
        match step {
            Step::Healthy => Ok(HealthReport::healthy()),
            Step::Degraded => Ok(HealthReport::degraded("slow disk")),
            Step::Unhealthy => Ok(HealthReport::unhealthy("reports itself down")),
            Step::Error => Err(CheckError::new("connection refused")),
            Step::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(HealthReport::healthy())
            }
        }
    }
}
