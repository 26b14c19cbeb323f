//! The node's own service, `node`: what the CLI, the gateway and agents ask a node
//! about itself, through the same call path as every other method.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `node.services` | `{service?, status?}` | every registered instance, with status and breaker |
//! | `node.health` | `{}` | system health with every component's verdict and counters (and breaker, for an instance) |
//! | `node.config_get` | `{path?}` | the value at a dotted path (the whole document without one), secrets masked |
//! | `node.config_set` | `{path, value, reason?}` | the new version |
//! | `node.config_history` | `{}` | every version kept, newest last, without documents |
//! | `node.config_rollback` | `{version}` | the new version, whose content is that version's |
//!
//! The caller (`CallContext::caller`, the token's name at the gateway) is recorded as
//! the author of configuration changes.
//!
//! An instance's `breaker` (in `node.services`, and in `node.health` for a component
//! bound to an instance) is `{state, failure_rate, next_trial_ms}`: the state
//! (`closed`, `open`, `half_open`, …), the failure rate over its window in percent
//! (null until it holds `minimum_calls`), and while open, the milliseconds until it
//! lets a trial call through (null otherwise). `breaker` is null for an instance no
//! call has been routed to yet.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use plexus_config::{ConfigError, ConfigStore, ConfigVersion};
use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{
    CallContext, InstanceId, ServiceDescriptor, ServiceError, ServiceName, ServiceStatus, Timestamp,
};
use plexus_registry::health::HealthMonitor;
use plexus_registry::{Query, Registry};
use plexus_resilience::CircuitBreaker;
use plexus_resilience::breaker::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The service name of a node's own service.
pub const NODE_SERVICE: &str = "node";

/// Reads the node's instance breakers as they are now: service, instance, breaker.
pub(crate) type Breakers =
    Arc<dyn Fn() -> Vec<(ServiceName, InstanceId, CircuitBreaker)> + Send + Sync>;

/// The node's own service.
pub(crate) struct NodeService {
    descriptor: ServiceDescriptor,
    registry: Registry,
    health: HealthMonitor,
    config: ConfigStore,
    breakers: Breakers,
}

impl NodeService {
    pub(crate) fn new(
        node: &str,
        registry: Registry,
        health: HealthMonitor,
        config: ConfigStore,
        breakers: Breakers,
    ) -> Self {
        let instance = format!("node-{node}");
        Self {
            descriptor: METHODS.describe(
                ServiceDescriptor::new(NODE_SERVICE, "node")
                    .with_instance(instance.as_str())
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description("The node itself: its services, health and configuration.")
                    .with_tag("system"),
            ),
            registry,
            health,
            config,
            breakers,
        }
    }

    /// Each instance breaker as `node.services` and `node.health` show it, by
    /// service and instance.
    fn breaker_views(&self) -> HashMap<(String, String), BreakerView> {
        (self.breakers)()
            .into_iter()
            .map(|(service, instance, breaker)| {
                let key = (service.to_string(), instance.to_string());
                (key, BreakerView::of(&breaker))
            })
            .collect()
    }
}

/// One instance breaker, as people read it (`node.services`, the dashboard).
#[derive(Debug, Serialize)]
pub struct BreakerView {
    /// `closed`, `open`, `half_open`, …
    pub state: State,
    /// Failed calls over the window, in percent; null until it holds `minimum_calls`.
    pub failure_rate: Option<f64>,
    /// While open: milliseconds until a trial call is let through.
    pub next_trial_ms: Option<u64>,
}

impl BreakerView {
    /// The view of `breaker` as it is now.
    pub fn of(breaker: &CircuitBreaker) -> Self {
        let metrics = breaker.metrics();
        Self {
            state: metrics.state,
            failure_rate: metrics.failure_rate,
            next_trial_ms: breaker
                .retry_after()
                .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// `value` (an object) with `breaker` set to `view`, or null without one.
fn with_breaker(mut value: Value, view: Option<&BreakerView>) -> Result<Value, ServiceError> {
    if let Value::Object(map) = &mut value {
        map.insert("breaker".to_owned(), to_json(view)?);
    }
    Ok(value)
}

/// The `node.*` methods, built once.
static METHODS: LazyLock<MethodTable<NodeService>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<ServicesParams, Value, _>(
            "services",
            "Every registered service instance with its status.",
            Effect::Idempotent,
            services,
        )
        .method::<NoParams, Value, _>(
            "health",
            "System health: the overall status and each component's verdict.",
            Effect::Idempotent,
            health,
        )
        .method::<ConfigGetParams, Value, _>(
            "config_get",
            "The configuration value at a dotted path, or the whole document.",
            Effect::Idempotent,
            config_get,
        )
        .method::<ConfigSetParams, Version, _>(
            "config_set",
            "Sets the value at a dotted path; validated before it is applied.",
            Effect::Mutating,
            config_set,
        )
        .method::<NoParams, Vec<Version>, _>(
            "config_history",
            "Every configuration version kept, oldest first.",
            Effect::Idempotent,
            config_history,
        )
        .method::<ConfigRollbackParams, Version, _>(
            "config_rollback",
            "Makes a past version's content current again, as a new version.",
            Effect::Mutating,
            config_rollback,
        )
});

/// Which instances to list; every condition given must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ServicesParams {
    /// Only instances of this service.
    #[serde(default)]
    service: Option<String>,
    /// Only instances in this status.
    #[serde(default)]
    status: Option<ServiceStatus>,
}

/// Where to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfigGetParams {
    /// A dotted path such as `calls.default.timeout_ms`; without one, the whole
    /// document.
    #[serde(default)]
    path: Option<String>,
}

/// What to set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfigSetParams {
    /// A dotted path such as `calls.default.timeout_ms`.
    #[schemars(length(min = 1))]
    path: String,
    /// The new value (any JSON).
    value: Value,
    /// Why, for people; the version itself records `set <path>` as its reason.
    #[serde(default)]
    #[allow(dead_code)]
    reason: Option<String>,
}

/// Which version to restore.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfigRollbackParams {
    /// The version whose content becomes current again.
    #[schemars(range(min = 1))]
    version: u64,
}

/// One configuration version, without its document.
#[derive(Debug, Serialize, JsonSchema)]
struct Version {
    /// Its number: 1 for the first, one more for each change.
    version: u64,
    /// When it was made.
    at: Timestamp,
    /// Who made it: the caller's name, `startup`, `file:…`.
    author: String,
    /// Why.
    reason: String,
    /// The dotted paths whose values changed, sorted.
    changed: Vec<String>,
    /// The version whose content this one restored, for a rollback.
    rollback_of: Option<u64>,
}

impl From<ConfigVersion> for Version {
    fn from(v: ConfigVersion) -> Self {
        Self {
            version: v.version,
            at: v.at,
            author: v.author,
            reason: v.reason,
            changed: v.changed,
            rollback_of: v.rollback_of,
        }
    }
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

fn to_json(value: impl Serialize) -> Result<Value, ServiceError> {
    serde_json::to_value(value).map_err(|e| ServiceError::failed(e.to_string()))
}

/// The author of a change: the caller, or `anonymous`.
fn author(ctx: CallContext) -> String {
    ctx.caller.unwrap_or_else(|| "anonymous".to_owned())
}

async fn services(
    s: &NodeService,
    _: CallContext,
    p: ServicesParams,
) -> Result<Value, ServiceError> {
    let mut query = Query::new();
    if let Some(name) = &p.service {
        query = query.name(name.as_str());
    }
    if let Some(status) = p.status {
        query = query.status(status);
    }
    let breakers = s.breaker_views();
    let instances = s
        .registry
        .discover(&query)
        .into_iter()
        .map(|r| {
            let key = (
                r.descriptor.name.to_string(),
                r.descriptor.instance.to_string(),
            );
            with_breaker(to_json(&r)?, breakers.get(&key))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(instances))
}

async fn health(s: &NodeService, _: CallContext, _: NoParams) -> Result<Value, ServiceError> {
    // A component bound to an instance shows that instance's breaker.
    let breakers: HashMap<String, BreakerView> = s
        .breaker_views()
        .into_iter()
        .map(|((_, instance), view)| (instance, view))
        .collect();
    let components = s
        .health
        .components()
        .into_iter()
        .map(|c| {
            let instance = c.instance.as_ref().map(|i| i.to_string());
            let value = to_json(&c)?;
            match instance {
                Some(instance) => with_breaker(value, breakers.get(&instance)),
                None => Ok(value),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    to_json(json!({
        "system": s.health.system(),
        "components": components,
    }))
}

async fn config_get(
    s: &NodeService,
    _: CallContext,
    p: ConfigGetParams,
) -> Result<Value, ServiceError> {
    // What is in force, defaults included, not only what the file says.
    // Secrets (tokens, passwords, API keys, a URL's password) are never answered.
    let path = p.path.as_deref().unwrap_or("");
    let key = path.rsplit('.').next().unwrap_or(path);
    s.config
        .effective(path)
        .map(|v| plexus_config::secrets::redact(key, &v.unwrap_or(Value::Null)))
        .map_err(config_error)
}

async fn config_set(
    s: &NodeService,
    ctx: CallContext,
    p: ConfigSetParams,
) -> Result<Version, ServiceError> {
    s.config
        .set(&p.path, p.value, &author(ctx))
        .await
        .map(Version::from)
        .map_err(config_error)
}

async fn config_history(
    s: &NodeService,
    _: CallContext,
    _: NoParams,
) -> Result<Vec<Version>, ServiceError> {
    Ok(s.config.history().into_iter().map(Version::from).collect())
}

async fn config_rollback(
    s: &NodeService,
    ctx: CallContext,
    p: ConfigRollbackParams,
) -> Result<Version, ServiceError> {
    s.config
        .rollback(p.version, &author(ctx))
        .await
        .map(Version::from)
        .map_err(config_error)
}

impl TableService for NodeService {
    type State = Self;

    fn parts(&self) -> TableParts<'_, Self> {
        (&METHODS, self, &self.descriptor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(method: &str) -> jsonschema::Validator {
        let d = METHODS.describe(ServiceDescriptor::new(NODE_SERVICE, "node"));
        let m = d.method(method).unwrap_or_else(|| panic!("{method}"));
        jsonschema::validator_for(&m.params).unwrap()
    }

    #[test]
    fn the_derived_schemas_accept_and_refuse_what_the_hand_written_ones_did() {
        let d = METHODS.describe(ServiceDescriptor::new(NODE_SERVICE, "node"));
        d.validate().unwrap();
        let idempotent: Vec<&str> = d
            .methods
            .iter()
            .filter(|m| m.idempotent)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            idempotent,
            ["services", "health", "config_get", "config_history"]
        );
        let services = schema("services");
        assert!(services.is_valid(&json!({})));
        assert!(services.is_valid(&json!({"service": "a", "status": "healthy"})));
        assert!(!services.is_valid(&json!({"status": "bogus"})));
        assert!(!services.is_valid(&json!({"extra": 1})));
        assert!(schema("health").is_valid(&json!({})));
        assert!(!schema("health").is_valid(&json!({"x": 1})));
        let set = schema("config_set");
        assert!(set.is_valid(&json!({"path": "a.b", "value": null, "reason": "r"})));
        assert!(!set.is_valid(&json!({"path": "", "value": 1})));
        assert!(!set.is_valid(&json!({"path": "a"})));
        assert!(!set.is_valid(&json!({"value": 1})));
        let rollback = schema("config_rollback");
        assert!(rollback.is_valid(&json!({"version": 3})));
        assert!(!rollback.is_valid(&json!({"version": 0})));
        assert!(!rollback.is_valid(&json!({"version": "one"})));
        assert!(!rollback.is_valid(&json!({})));
    }
}
