//! The node's own service, `node`: what the CLI, the gateway and agents ask a node
//! about itself, through the same call path as every other method.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `node.services` | `{service?, status?}` | every registered instance, with status |
//! | `node.health` | `{}` | system health with every component's verdict and counters |
//! | `node.config_get` | `{path?}` | the value at a dotted path (the whole document without one) |
//! | `node.config_set` | `{path, value, reason?}` | the new version |
//! | `node.config_history` | `{}` | every version kept, newest last, without documents |
//! | `node.config_rollback` | `{version}` | the new version, whose content is that version's |
//!
//! The caller (`CallContext::caller`, the token's name at the gateway) is recorded as
//! the author of configuration changes.

use plexus_config::{ConfigError, ConfigStore, ConfigVersion};
use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, ServiceStatus,
    async_trait,
};
use plexus_registry::health::HealthMonitor;
use plexus_registry::{Query, Registry};
use serde_json::{Value, json};

/// The service name of a node's own service.
pub const NODE_SERVICE: &str = "node";

/// The node's own service.
pub(crate) struct NodeService {
    instance: String,
    registry: Registry,
    health: HealthMonitor,
    config: ConfigStore,
}

impl NodeService {
    pub(crate) fn new(
        node: &str,
        registry: Registry,
        health: HealthMonitor,
        config: ConfigStore,
    ) -> Self {
        Self {
            instance: format!("node-{node}"),
            registry,
            health,
            config,
        }
    }
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

fn version_json(v: &ConfigVersion) -> Value {
    json!({
        "version": v.version,
        "at": v.at,
        "author": v.author,
        "reason": v.reason,
        "changed": v.changed,
        "rollback_of": v.rollback_of,
    })
}

fn config_error(e: ConfigError) -> ServiceError {
    match e {
        ConfigError::Invalid { field, reason, .. } => ServiceError::invalid_params(field, reason),
        ConfigError::InvalidPath { .. } => ServiceError::invalid_params("/path", e.to_string()),
        ConfigError::UnknownVersion { .. } => {
            ServiceError::invalid_params("/version", e.to_string())
        }
        other => ServiceError::failed(other.to_string()),
    }
}

fn field<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    params.get(name).filter(|v| !v.is_null())
}

#[async_trait]
impl Service for NodeService {
    fn descriptor(&self) -> ServiceDescriptor {
        let statuses: Vec<&str> = ServiceStatus::ALL.iter().map(|s| s.as_str()).collect();
        ServiceDescriptor::new(NODE_SERVICE, "node")
            .with_instance(self.instance.as_str())
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_description("The node itself: its services, health and configuration.")
            .with_tag("system")
            .with_method(
                MethodDescriptor::new("services")
                    .with_description("Every registered service instance with its status.")
                    .with_params(object(
                        json!({"service": {"type": "string"}, "status": {"enum": statuses}}),
                        &[],
                    ))
                    .idempotent(),
            )
            .with_method(
                MethodDescriptor::new("health")
                    .with_description(
                        "System health: the overall status and each component's verdict.",
                    )
                    .with_params(object(json!({}), &[]))
                    .idempotent(),
            )
            .with_method(
                MethodDescriptor::new("config_get")
                    .with_description(
                        "The configuration value at a dotted path, or the whole document.",
                    )
                    .with_params(object(json!({"path": {"type": "string"}}), &[]))
                    .idempotent(),
            )
            .with_method(
                MethodDescriptor::new("config_set")
                    .with_description(
                        "Sets the value at a dotted path; validated before it is applied.",
                    )
                    .with_params(object(
                        json!({"path": {"type": "string", "minLength": 1}, "value": {},
                               "reason": {"type": "string"}}),
                        &["path", "value"],
                    )),
            )
            .with_method(
                MethodDescriptor::new("config_history")
                    .with_description("Every configuration version kept, oldest first.")
                    .with_params(object(json!({}), &[]))
                    .idempotent(),
            )
            .with_method(
                MethodDescriptor::new("config_rollback")
                    .with_description(
                        "Makes a past version's content current again, as a new version.",
                    )
                    .with_params(object(
                        json!({"version": {"type": "integer", "minimum": 1}}),
                        &["version"],
                    )),
            )
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        let author = ctx.caller.unwrap_or_else(|| "anonymous".to_owned());
        match method {
            "services" => {
                let mut query = Query::new();
                if let Some(name) = field(&params, "service").and_then(Value::as_str) {
                    query = query.name(name);
                }
                if let Some(status) = field(&params, "status") {
                    let status: ServiceStatus = serde_json::from_value(status.clone())
                        .map_err(|e| ServiceError::invalid_params("/status", e.to_string()))?;
                    query = query.status(status);
                }
                let found = self.registry.discover(&query);
                serde_json::to_value(found).map_err(|e| ServiceError::failed(e.to_string()))
            }
            "health" => serde_json::to_value(json!({
                "system": self.health.system(),
                "components": self.health.components(),
            }))
            .map_err(|e| ServiceError::failed(e.to_string())),
            "config_get" => match field(&params, "path").and_then(Value::as_str) {
                None => Ok((*self.config.document()).clone()),
                Some(path) => self
                    .config
                    .get(path)
                    .map(|v| v.unwrap_or(Value::Null))
                    .map_err(config_error),
            },
            "config_set" => {
                let path = field(&params, "path")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let value = params.get("value").cloned().unwrap_or(Value::Null);
                self.config
                    .set(path, value, &author)
                    .await
                    .map(|v| version_json(&v))
                    .map_err(config_error)
            }
            "config_history" => Ok(Value::Array(
                self.config.history().iter().map(version_json).collect(),
            )),
            "config_rollback" => {
                let version = field(&params, "version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                self.config
                    .rollback(version, &author)
                    .await
                    .map(|v| version_json(&v))
                    .map_err(config_error)
            }
            other => Err(ServiceError::MethodNotFound {
                method: other.to_owned(),
            }),
        }
    }
}
