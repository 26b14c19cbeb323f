//! The eight modules as Plexus services: registered with a node, health-checked by a
//! real request/reply ping to the module over the bus, and reported from the registry
//! and the health aggregator.

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::Bus;
use plexus_core::{
    CallContext, Envelope, HealthReport, MethodDescriptor, Service, ServiceDescriptor,
    ServiceError, Target, async_trait,
};
use plexus_node::{Node, NodeError, ServiceOptions};
use plexus_registry::health::{CheckPolicy, HealthEvent, SystemStatus};
use serde::Serialize;
use serde_json::{Value, json};

use super::messages::{HealthPing, HealthPong};
use super::{MODULES, member};

/// How long a health ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One module as a service: `ping` asks the module itself, and so does its health
/// check.
struct ModuleService {
    module: &'static str,
    bus: Bus,
}

impl ModuleService {
    async fn ping(&self) -> Result<HealthPong, ServiceError> {
        let ping = Envelope::event(HealthPing {
            from: "plexus-node".to_owned(),
        })
        .with_target(Target::Service(self.module.into()));
        let pong = self
            .bus
            .request(ping, PING_TIMEOUT)
            .await
            .map_err(|e| ServiceError::unavailable(e.to_string()))?;
        pong.payload()
            .decode::<HealthPong>()
            .map(|p| (*p).clone())
            .map_err(|e| ServiceError::failed(e.to_string()))
    }
}

#[async_trait]
impl Service for ModuleService {
    fn descriptor(&self) -> ServiceDescriptor {
        let m = member(self.module);
        ServiceDescriptor::new(m.service, m.service_type)
            .with_instance(m.instance)
            .with_description(format!("The assistant's {} module", self.module))
            .with_tag("assistant")
            .with_method(
                MethodDescriptor::new("ping")
                    .with_description("Asks the module how many events it handled")
                    .with_params(json!({"type": "object", "additionalProperties": false}))
                    .idempotent(),
            )
    }

    async fn call(
        &self,
        method: &str,
        _params: Value,
        _ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        match method {
            "ping" => {
                let pong = self.ping().await?;
                Ok(json!({"module": pong.module, "handled": pong.handled}))
            }
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }

    async fn health(&self) -> Result<HealthReport, ServiceError> {
        let pong = self.ping().await?;
        if pong.module == self.module {
            Ok(HealthReport::healthy())
        } else {
            Ok(HealthReport::unhealthy(format!(
                "answered as {}",
                pong.module
            )))
        }
    }
}

/// A module's status as the registry has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleStatus {
    /// The module (its service name).
    pub name: String,
    /// Its lifecycle status in the registry.
    pub status: String,
}

/// Starts a node running the eight modules as services, whose checks ping the modules
/// on `bus`, and waits until the system's health has settled to Healthy (or `timeout`
/// passes). The node keeps its own bus for its registry, health and supervision
/// events, so the assistant's bus carries only the assistant's traffic.
pub(crate) async fn start_node(bus: &Bus, timeout: Duration) -> Result<Node, NodeError> {
    let mut builder = Node::builder("assistant");
    for module in MODULES {
        let service = Arc::new(ModuleService {
            module,
            bus: bus.clone(),
        });
        builder = builder.service_with(
            service,
            ServiceOptions::default().with_health(
                CheckPolicy::default()
                    .with_interval(Duration::from_secs(1))
                    .with_timeout(PING_TIMEOUT),
            ),
        );
    }
    let node = builder.start().await?;
    let mut watch = node.health().watch();
    let _ = tokio::time::timeout(timeout, async {
        while node.system_health().status != SystemStatus::Healthy {
            match futures::StreamExt::next(&mut watch).await {
                Some(Ok(HealthEvent::SystemChanged { .. })) | Some(Err(_)) => {}
                Some(Ok(_)) => {}
                None => break,
            }
        }
    })
    .await;
    Ok(node)
}

/// Each module's registry status, in [`MODULES`] order.
pub(crate) fn module_statuses(node: &Node) -> Vec<ModuleStatus> {
    MODULES
        .iter()
        .map(|module| {
            let status = node
                .registry()
                .get(&member(module).instance)
                .map_or("absent".to_owned(), |r| r.status.as_str().to_owned());
            ModuleStatus {
                name: (*module).to_owned(),
                status,
            }
        })
        .collect()
}
