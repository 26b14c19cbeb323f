//! The tool list: every method of every service that can take a call, as MCP tools.
//!
//! Tool name = `service.method` (the MCP 2025-11-25 tool-name rules allow `.`, and
//! both reference SDKs accept it), description = the method's description or else
//! the service's, `inputSchema` = the method's params schema (`true` becomes
//! `{"type":"object"}`), `outputSchema` = the result schema when it describes an
//! object. A service is listed while at least one of its instances accepts calls;
//! its newest registration's descriptor is the one described, as the call path
//! does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use plexus_registry::{Query, Registration, Registry};
use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

/// The tools listed at one moment, sorted by name.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    tools: Vec<Tool>,
    by_name: HashMap<String, usize>,
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.tools == other.tools
    }
}

impl Catalog {
    /// The catalog of what `registry` holds now.
    pub(crate) fn of(registry: &Registry) -> Self {
        let mut newest: BTreeMap<String, Registration> = BTreeMap::new();
        for registration in registry.discover(&Query::new().accepting_calls()) {
            let name = registration.service().to_string();
            match newest.get(&name) {
                Some(kept) if kept.registered_at >= registration.registered_at => {}
                _ => {
                    newest.insert(name, registration);
                }
            }
        }
        let mut tools = Vec::new();
        for (service, registration) in &newest {
            let descriptor = &registration.descriptor;
            // A method bound to a connection cannot be a tool.
            for method in descriptor.methods.iter().filter(|m| !m.websocket_only) {
                let description = if method.description.is_empty() {
                    descriptor.description.clone()
                } else {
                    method.description.clone()
                };
                let mut tool = Tool::new_with_raw(
                    format!("{service}.{}", method.name),
                    (!description.is_empty()).then(|| description.into()),
                    Arc::new(input_schema(&method.params)),
                );
                if let Some(output) = output_schema(&method.result) {
                    tool = tool.with_raw_output_schema(Arc::new(output));
                }
                tools.push(tool);
            }
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.to_string(), i))
            .collect();
        Self { tools, by_name }
    }

    /// Every tool, sorted by name.
    pub(crate) fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool called `name`, if listed.
    pub(crate) fn get(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).and_then(|&i| self.tools.get(i))
    }
}

/// A params schema as an MCP input schema, which must be an object schema.
fn input_schema(schema: &Value) -> JsonObject {
    match schema {
        Value::Object(map) if map.get("type").is_none_or(|t| t == "object") => {
            let mut map = map.clone();
            map.entry("type").or_insert_with(|| json!("object"));
            map
        }
        // `true`, `false` or a schema of something else than an object: MCP arguments
        // are always an object; the call path still checks the real schema.
        _ => {
            let mut map = JsonObject::new();
            map.insert("type".into(), json!("object"));
            map
        }
    }
}

/// A result schema as an MCP output schema, when it describes an object.
fn output_schema(schema: &Value) -> Option<JsonObject> {
    match schema {
        Value::Object(map) if map.get("type").is_some_and(|t| t == "object") => Some(map.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_become_object_schemas() {
        assert_eq!(
            input_schema(&json!(true)),
            json!({"type": "object"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        let with_props = json!({"properties": {"a": {"type": "string"}}});
        assert_eq!(
            Value::Object(input_schema(&with_props)),
            json!({"type": "object", "properties": {"a": {"type": "string"}}})
        );
        assert_eq!(
            Value::Object(input_schema(&json!({"type": "string"}))),
            json!({"type": "object"})
        );
        assert!(output_schema(&json!(true)).is_none());
        assert!(output_schema(&json!({"type": "string"})).is_none());
        assert!(output_schema(&json!({"type": "object"})).is_some());
    }
}
