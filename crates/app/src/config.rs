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
use plexus_registry::RegistryConfig;
use plexus_registry::health::CheckPolicy;
use plexus_supervisor::Restart;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppError;

/// Environment variables with the configuration prefix that are not configuration:
/// the CLI's address and token, the test suites' server URLs and the test script's
/// fuzz settings.
pub const ENV_EXCLUDE: [&str; 4] = ["PLEXUS_TEST_", "PLEXUS_FUZZ_", "PLEXUS_URL", "PLEXUS_TOKEN"];

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
    /// How often and how strictly health components are checked.
    pub health: HealthSection,
    /// How the registry ages instances that stop sending heartbeats.
    pub registry: RegistrySection,
}

/// `[registry]`: when an instance that stopped sending heartbeats (an external
/// service that hung, another node that died) is marked stale and when it is
/// removed. In a cluster every node should have the same values: each node's
/// sweeper ages the others' instances.
///
/// ```toml
/// [registry]
/// heartbeat_ttl_ms = 15000      # no heartbeat for this long: Unhealthy, reason "stale"
/// deregister_after_ms = 60000   # stale for this long more: removed
/// sweep_interval_ms = 1000      # how often staleness is looked for
/// max_instances = 10000         # registering one more is refused
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySection {
    /// No heartbeat for this long marks an instance stale, in milliseconds
    /// (default 15,000; 100 to 3,600,000). External instances are told a third of
    /// it as their heartbeat period.
    pub heartbeat_ttl_ms: u64,
    /// A stale instance is removed this long after it went stale, in milliseconds
    /// (default 60,000; 0 to 86,400,000).
    pub deregister_after_ms: u64,
    /// How often the sweeper looks for stale instances, in milliseconds (default
    /// 1,000; 10 to 60,000).
    pub sweep_interval_ms: u64,
    /// The most instances the registry holds (default 10,000; 1 to 1,000,000).
    pub max_instances: usize,
}

impl Default for RegistrySection {
    fn default() -> Self {
        let d = RegistryConfig::default();
        Self {
            heartbeat_ttl_ms: millis(d.heartbeat_ttl),
            deregister_after_ms: millis(d.deregister_after),
            sweep_interval_ms: millis(d.sweep_interval),
            max_instances: d.max_instances,
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RegistrySection {
    /// The registry's configuration with these values.
    pub fn registry_config(&self) -> RegistryConfig {
        use std::time::Duration;
        RegistryConfig {
            heartbeat_ttl: Duration::from_millis(self.heartbeat_ttl_ms),
            deregister_after: Duration::from_millis(self.deregister_after_ms),
            sweep_interval: Duration::from_millis(self.sweep_interval_ms),
            max_instances: self.max_instances,
            ..RegistryConfig::default()
        }
    }
}

impl Validate for RegistrySection {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("heartbeat_ttl_ms", self.heartbeat_ttl_ms, 100..=3_600_000)
            .range(
                "deregister_after_ms",
                self.deregister_after_ms,
                0..=86_400_000,
            )
            .range("sweep_interval_ms", self.sweep_interval_ms, 10..=60_000)
            .range("max_instances", self.max_instances, 1..=1_000_000);
        errors.into_result()
    }
}

/// `[health]`: the check interval, timeout and thresholds of every health component
/// (in-process services, external instances, dependencies such as `database`), with
/// overrides per component by name.
///
/// ```toml
/// [health.default]
/// interval_ms = 10000      # how often each component is checked
/// timeout_ms = 5000        # a check that takes longer is a check failure
/// failure_threshold = 3    # consecutive failures before it is Unhealthy
/// success_threshold = 1    # consecutive passes before it is Healthy again
///
/// [health.components.database]   # by component name: a dependency or an instance id
/// interval_ms = 2000
/// failure_threshold = 2
/// ```
///
/// With the defaults a lost database is noticed after about 30 s of checks (10 s ×
/// 3); calls fail fast before that through the store's own connection handling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSection {
    /// What every component starts from.
    pub default: CheckSettings,
    /// Overrides per component name, over `default`.
    pub components: BTreeMap<String, CheckSettings>,
}

/// Check settings; an absent one keeps what it is over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckSettings {
    /// How often the component is checked, in milliseconds (default 10,000).
    pub interval_ms: Option<u64>,
    /// How long a check may take, in milliseconds (default 5,000).
    pub timeout_ms: Option<u64>,
    /// Consecutive failures before Unhealthy (default 3).
    pub failure_threshold: Option<u32>,
    /// Consecutive passes before Healthy again (default 1).
    pub success_threshold: Option<u32>,
}

impl CheckSettings {
    fn apply(&self, mut policy: CheckPolicy) -> CheckPolicy {
        if let Some(ms) = self.interval_ms {
            policy.interval = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.timeout_ms {
            policy.timeout = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = self.failure_threshold {
            policy.failure_threshold = n;
        }
        if let Some(n) = self.success_threshold {
            policy.success_threshold = n;
        }
        policy
    }

    fn check(&self, at: &str, errors: &mut FieldErrors) {
        for (field, value) in [
            ("interval_ms", self.interval_ms),
            ("timeout_ms", self.timeout_ms),
        ] {
            if let Some(v) = value {
                errors.range(&format!("{at}.{field}"), v, 1..=86_400_000);
            }
        }
        for (field, value) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ] {
            if let Some(v) = value {
                errors.range(&format!("{at}.{field}"), v, 1..=1_000);
            }
        }
    }
}

impl HealthSection {
    /// The policy for component `name`: `policy` (what its owner chose: criticality,
    /// responses, heal limits) with the configured interval, timeout and thresholds.
    pub fn policy(&self, name: &str, policy: CheckPolicy) -> CheckPolicy {
        let policy = self.default.apply(policy);
        match self.components.get(name) {
            Some(over) => over.apply(policy),
            None => policy,
        }
    }

    /// The settings in force by default, for `node.config_get`.
    pub fn defaults() -> serde_json::Value {
        let p = CheckPolicy::default();
        serde_json::json!({"default": {
            "interval_ms": p.interval.as_millis() as u64,
            "timeout_ms": p.timeout.as_millis() as u64,
            "failure_threshold": p.failure_threshold,
            "success_threshold": p.success_threshold,
        }})
    }
}

impl Validate for HealthSection {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        self.default.check("default", &mut errors);
        for (name, settings) in &self.components {
            settings.check(&format!("components.{name}"), &mut errors);
        }
        errors.into_result()
    }
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
        checked(&self.health, "health")?;
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

    #[test]
    fn health_settings_apply_per_component_and_are_checked() {
        let doc = json!({"health": {
            "default": {"interval_ms": 4000},
            "components": {"database": {"interval_ms": 1000, "failure_threshold": 2}}
        }});
        let config = AppConfig::from_document(&doc, &[]).unwrap();
        let db = config
            .health
            .policy("database", CheckPolicy::default().optional());
        assert_eq!(db.interval, std::time::Duration::from_millis(1000));
        assert_eq!(db.failure_threshold, 2);
        // What the owner chose stays.
        assert_eq!(
            db.criticality,
            plexus_registry::health::Criticality::Optional
        );
        let other = config.health.policy("search-1", CheckPolicy::default());
        assert_eq!(other.interval, std::time::Duration::from_millis(4000));
        assert_eq!(other.failure_threshold, 3);
        let zero = json!({"health": {"components": {"database": {"timeout_ms": 0}}}});
        let err = AppConfig::from_document(&zero, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("health.components.database.timeout_ms"),
            "{err}"
        );
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
