//! [`AppConfig`]: the whole configuration of a node, one section per part.
//!
//! The node's own sections (`[node]`, `[gateway]`, `[mcp]`, `[calls]`,
//! `[[processes]]`) are typed here; each service family reads its own section
//! (`[store]` for the DataStore) through its [`Family`](plexus_node::family::Family). Every section
//! is checked with [`plexus_config::Validate`], the one shape of validation: a problem
//! names its field by its full dotted path (`node.drain_ms`, `processes.1.name`,
//! `store.url`), at start and on every runtime change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use plexus_config::{FieldErrors, Validate};
use plexus_gateway::GatewayConfig;
use plexus_mcp::McpConfig;
use plexus_node::family::{NodeSection, checked, typed};
use plexus_supervisor::Restart;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppError;

/// Environment variables with the configuration prefix that are not configuration:
/// the CLI's address and token, and the test suites' server URLs.
pub const ENV_EXCLUDE: [&str; 3] = ["PLEXUS_TEST_", "PLEXUS_URL", "PLEXUS_TOKEN"];

/// The node's own sections of the configuration. Family sections (`[store]`, …) are
/// read by their families and are not fields here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// The node itself (`plexus_node::family::NodeSection`, which families read too).
    pub node: NodeSection,
    /// The HTTP and WebSocket front.
    pub gateway: GatewayConfig,
    /// The MCP server, at `/mcp` and on stdio.
    pub mcp: McpConfig,
    /// The call policies; the node validates and reads them
    /// (`plexus_node::policy::CallsConfig`).
    pub calls: Option<Value>,
    /// Supervised child processes, in start order.
    pub processes: Processes,
}

/// One `[[processes]]` entry: a child process the node's supervisor runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Its name in the supervisor, logs and events.
    pub name: String,
    /// The program: a path, or a name looked up in `PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to the node's environment for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory (default: the node's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// When it is started again after it exits (default `permanent`).
    #[serde(default)]
    pub restart: Restart,
}

/// `[[processes]]`: the supervised child processes, in start order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Processes(pub Vec<ProcessConfig>);

impl Validate for Processes {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (i, p) in self.0.iter().enumerate() {
            errors
                .non_empty(&format!("{i}.name"), &p.name)
                .non_empty(&format!("{i}.command"), &p.command)
                .check(
                    !self.0[..i].iter().any(|q| q.name == p.name),
                    &format!("{i}.name"),
                    || format!("`{}` names another process too", p.name),
                );
        }
        errors.into_result()
    }
}

impl AppConfig {
    /// Reads the node's sections from a configuration document, setting aside the
    /// sections named in `family_sections` (their families read them), naming the
    /// first key that is unknown or of the wrong type, and checks every section.
    pub fn from_document(document: &Value, family_sections: &[&str]) -> Result<Self, AppError> {
        let own = match document {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| !family_sections.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        };
        let config: AppConfig = typed(&own, "")?;
        config.check()?;
        Ok(config)
    }

    /// Checks every section, naming the first problem by its full path.
    fn check(&self) -> Result<(), AppError> {
        checked(&self.node, "node")?;
        checked(&self.processes, "processes")?;
        // The gateway's and MCP's own errors say which part refused, with the field.
        self.gateway
            .validate()
            .map_err(plexus_gateway::GatewayError::from)?;
        McpConfig::validate(&self.mcp)?;
        Ok(())
    }

    /// How long the bus may drain at shutdown.
    pub fn drain(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.node.drain_ms)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn no_file_is_the_default_node_on_loopback() {
        let config = AppConfig::from_document(&json!({}), &[]).unwrap();
        assert_eq!(config.node.name, "plexus");
        assert_eq!(config.gateway.bind.to_string(), "127.0.0.1:7700");
        assert!(config.processes.0.is_empty());
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        for (doc, key, needle) in [
            (json!({"gatway": {}}), "gatway", "unknown field"),
            (
                json!({"gateway": {"max_bach": 5}}),
                "gateway.max_bach",
                "unknown field",
            ),
            (json!({"node": {"nme": "x"}}), "node.nme", "unknown field"),
            (
                json!({"node": {"name": 5}}),
                "node.name",
                "expected a string",
            ),
            (
                json!({"processes": [{"name": "a", "command": "b", "restrat": "x"}]}),
                "processes[0].restrat",
                "unknown field",
            ),
        ] {
            match AppConfig::from_document(&doc, &["store"]).unwrap_err() {
                AppError::Invalid { key: k, reason } => {
                    assert_eq!(k, key, "{doc}");
                    assert!(reason.contains(needle), "{reason}");
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn sections_are_checked_naming_the_field() {
        let err = AppConfig::from_document(&json!({"node": {"drain_ms": 0}}), &[]).unwrap_err();
        assert!(err.to_string().contains("node.drain_ms"), "{err}");
        assert!(err.is_config());
        let twice = json!({"processes": [
            {"name": "a", "command": "true"}, {"name": "a", "command": "true"}
        ]});
        let err = AppConfig::from_document(&twice, &[]).unwrap_err();
        assert!(err.to_string().contains("processes.1.name"), "{err}");
        let public = json!({"gateway": {"bind": "0.0.0.0:7700"}});
        let err = AppConfig::from_document(&public, &[]).unwrap_err();
        assert!(err.is_config(), "{err}");
        let chain = error_chain(&err);
        assert!(chain.starts_with("gateway: "), "{chain}");
        assert!(chain.contains("without auth"), "{chain}");
    }

    /// The error and its causes joined as `{:#}` prints them in the binary.
    fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(e) = cause {
            text.push_str(": ");
            text.push_str(&e.to_string());
            cause = e.source();
        }
        text
    }
}
