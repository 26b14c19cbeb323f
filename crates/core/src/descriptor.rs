//! What a service says about itself: the descriptor every other part derives from.
//!
//! A [`ServiceDescriptor`] is registered once; JSON-RPC methods, MCP tools, CLI calls
//! and the registry's discovery all read it. Build one with its `with_*` methods and
//! check it with [`ServiceDescriptor::validate`] before it is registered.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{InstanceId, Member, ServiceName, ServiceType, TopicPattern};
use strum::{Display as StrumDisplay, IntoStaticStr};

/// The longest service or method name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The most methods one descriptor may declare.
pub const MAX_METHODS: usize = 256;

/// The largest JSON Schema (params or result) of one method, in bytes as JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// One method a service answers: `service.method` to callers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodDescriptor {
    /// The method's name, without the service prefix.
    pub name: String,
    /// What it does, for people and for LLM agents.
    #[serde(default)]
    pub description: String,
    /// The JSON Schema its params must satisfy. `true` accepts anything.
    #[serde(default = "any_schema")]
    pub params: Value,
    /// The JSON Schema of its result. `true` documents nothing.
    #[serde(default = "any_schema")]
    pub result: Value,
    /// Whether calling it twice with the same params has the effect of calling it
    /// once; only idempotent methods are retried.
    #[serde(default)]
    pub idempotent: bool,
    /// It binds state to a connection (a subscription, a registration), so only a
    /// WebSocket can call it: it is not offered as an MCP tool, and `/rpc` answers
    /// that it needs `/ws`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub websocket_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn any_schema() -> Value {
    Value::Bool(true)
}

impl MethodDescriptor {
    /// A method that takes and returns anything and is not idempotent.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            params: any_schema(),
            result: any_schema(),
            idempotent: false,
            websocket_only: false,
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the params schema.
    pub fn with_params(mut self, schema: Value) -> Self {
        self.params = schema;
        self
    }

    /// Sets the result schema.
    pub fn with_result(mut self, schema: Value) -> Self {
        self.result = schema;
        self
    }

    /// Marks the method idempotent, so the call path may retry it.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Marks the method as callable only over a WebSocket (see the field).
    pub fn websocket_only(mut self) -> Self {
        self.websocket_only = true;
        self
    }
}

/// Everything a service instance declares when it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceDescriptor {
    /// The service's name, such as `storage`; the prefix of its methods.
    pub name: ServiceName,
    /// Its type, such as `persistence`.
    pub service_type: ServiceType,
    /// Its version, free text (semver by convention).
    #[serde(default)]
    pub version: String,
    /// This instance's id, unique in the registry.
    pub instance: InstanceId,
    /// What the service is for.
    #[serde(default)]
    pub description: String,
    /// The methods it answers.
    #[serde(default)]
    pub methods: Vec<MethodDescriptor>,
    /// Topics it publishes.
    #[serde(default)]
    pub publishes: Vec<String>,
    /// Topic patterns it subscribes to.
    #[serde(default)]
    pub subscribes: Vec<String>,
    /// Free key/value metadata (region, host, weight, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Tags to discover it by.
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

impl ServiceDescriptor {
    /// A descriptor with no methods; its instance id is `name-1` until
    /// [`with_instance`](Self::with_instance) says otherwise.
    pub fn new(name: impl Into<ServiceName>, service_type: impl Into<ServiceType>) -> Self {
        let name = name.into();
        let instance = InstanceId::new(format!("{name}-1"));
        Self {
            name,
            service_type: service_type.into(),
            version: String::new(),
            instance,
            description: String::new(),
            methods: Vec::new(),
            publishes: Vec::new(),
            subscribes: Vec::new(),
            metadata: BTreeMap::new(),
            tags: BTreeSet::new(),
        }
    }

    /// Sets the instance id.
    pub fn with_instance(mut self, instance: impl Into<InstanceId>) -> Self {
        self.instance = instance.into();
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a method.
    pub fn with_method(mut self, method: MethodDescriptor) -> Self {
        self.methods.push(method);
        self
    }

    /// Adds a topic it publishes.
    pub fn with_publishes(mut self, topic: impl Into<String>) -> Self {
        self.publishes.push(topic.into());
        self
    }

    /// Adds a pattern it subscribes to.
    pub fn with_subscribes(mut self, pattern: impl Into<String>) -> Self {
        self.subscribes.push(pattern.into());
        self
    }

    /// Sets a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// The method called `name`, if the service has one.
    pub fn method(&self, name: &str) -> Option<&MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// Whether the service answers `name` (its capability).
    pub fn has_method(&self, name: &str) -> bool {
        self.method(name).is_some()
    }

    /// The instance as a bus member.
    pub fn member(&self) -> Member {
        Member {
            instance: self.instance.clone(),
            service: self.name.clone(),
            service_type: self.service_type.clone(),
        }
    }

    /// Checks names, schemas and topic patterns, naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), DescriptorError> {
        check_name("name", self.name.as_str())?;
        check_name("service_type", self.service_type.as_str())?;
        check_text("instance", self.instance.as_str())?;
        if self.methods.len() > MAX_METHODS {
            return Err(DescriptorError::new(
                "methods",
                format!(
                    "declares {} methods, more than {MAX_METHODS}",
                    self.methods.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, method) in self.methods.iter().enumerate() {
            check_name(&format!("methods[{i}].name"), &method.name)?;
            if !seen.insert(method.name.as_str()) {
                return Err(DescriptorError::new(
                    format!("methods[{i}].name"),
                    format!("method `{}` is declared twice", method.name),
                ));
            }
            check_schema(&format!("methods[{i}].params"), &method.params)?;
            check_schema(&format!("methods[{i}].result"), &method.result)?;
        }
        for (i, topic) in self.publishes.iter().enumerate() {
            crate::Topic::new(topic.as_str())
                .map_err(|e| DescriptorError::new(format!("publishes[{i}]"), e.to_string()))?;
        }
        for (i, pattern) in self.subscribes.iter().enumerate() {
            TopicPattern::new(pattern.as_str())
                .map_err(|e| DescriptorError::new(format!("subscribes[{i}]"), e.to_string()))?;
        }
        Ok(())
    }
}

fn check_text(field: &str, value: &str) -> Result<(), DescriptorError> {
    if value.is_empty() {
        return Err(DescriptorError::new(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(DescriptorError::new(
            field,
            format!("is {} bytes, longer than {MAX_NAME_LEN}", value.len()),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DescriptorError::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

fn check_name(field: &str, value: &str) -> Result<(), DescriptorError> {
    check_text(field, value)?;
    let ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(DescriptorError::new(
            field,
            format!("`{value}` may hold only ASCII letters, digits, `_` and `-`"),
        ));
    }
    Ok(())
}

fn check_schema(field: &str, schema: &Value) -> Result<(), DescriptorError> {
    let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
    if bytes > MAX_SCHEMA_BYTES {
        return Err(DescriptorError::new(
            field,
            format!("is {bytes} bytes of JSON, more than {MAX_SCHEMA_BYTES}"),
        ));
    }
    match schema {
        Value::Bool(_) | Value::Object(_) => Ok(()),
        _ => Err(DescriptorError::new(
            field,
            "a JSON Schema must be an object or a boolean",
        )),
    }
}

/// A descriptor field that is not acceptable, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid service descriptor: `{field}` {reason}")]
pub struct DescriptorError {
    /// The field, as a path such as `methods[2].name`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl DescriptorError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Where an instance is in its life, as the registry records it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    IntoStaticStr,
    StrumDisplay,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Registered, not yet ready for calls.
    Starting,
    /// Serving.
    Healthy,
    /// Serving with reduced capacity or quality.
    Degraded,
    /// Failing its checks; not chosen for calls.
    Unhealthy,
    /// Draining before it stops.
    ShuttingDown,
    /// Stopped.
    Stopped,
}

impl ServiceStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ServiceStatus; 6] = [
        Self::Starting,
        Self::Healthy,
        Self::Degraded,
        Self::Unhealthy,
        Self::ShuttingDown,
        Self::Stopped,
    ];

    /// Whether calls may be routed to an instance in this status.
    pub fn accepts_calls(self) -> bool {
        matches!(self, Self::Healthy | Self::Degraded)
    }

    /// The status as lower-case text, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage() -> ServiceDescriptor {
        ServiceDescriptor::new("storage", "persistence")
            .with_version("1.2.0")
            .with_method(
                MethodDescriptor::new("get")
                    .with_params(json!({"type": "object"}))
                    .idempotent(),
            )
            .with_publishes("storage.saved")
            .with_subscribes("capture.>")
            .with_tag("core")
    }

    #[test]
    fn a_well_formed_descriptor_validates_and_round_trips() {
        let d = storage();
        d.validate().unwrap();
        assert_eq!(d.instance.as_str(), "storage-1");
        assert!(d.method("get").unwrap().idempotent);
        let back: ServiceDescriptor =
            serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn each_bad_field_is_named() {
        let dotted = ServiceDescriptor::new("sto.rage", "p");
        assert_eq!(dotted.validate().unwrap_err().field, "name");
        let twice = storage().with_method(MethodDescriptor::new("get"));
        assert_eq!(twice.validate().unwrap_err().field, "methods[1].name");
        let schema = storage().with_method(MethodDescriptor::new("put").with_params(json!(3)));
        assert_eq!(schema.validate().unwrap_err().field, "methods[1].params");
        let pattern = storage().with_subscribes("a.>.b");
        assert_eq!(pattern.validate().unwrap_err().field, "subscribes[1]");
        let long = ServiceDescriptor::new("s".repeat(MAX_NAME_LEN + 1), "p");
        assert_eq!(long.validate().unwrap_err().field, "name");
    }

    #[test]
    fn a_minimal_json_descriptor_gets_defaults() {
        let d: ServiceDescriptor = serde_json::from_value(json!({
            "name": "echo", "service_type": "demo", "instance": "echo-py-1",
            "methods": [{"name": "echo"}]
        }))
        .unwrap();
        assert_eq!(d.methods[0].params, json!(true));
        assert!(!d.methods[0].idempotent);
        d.validate().unwrap();
    }
}
