//! The family's configuration section, `[script]`: the limits every run is held to
//! (operations, call levels, expression depths, string, array and map sizes,
//! variables, wall-clock time, captured output, host calls, the result's size), how
//! many scripts run at once and how many wait, and where stored scripts are kept.
//! Read and checked so that a problem is named by its full path
//! (`script.max_operations`); without the section these defaults hold.

use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

pub use crate::trigger::TriggerConfig;

/// The section the family reads.
pub const SECTION: &str = "script";

/// `[script]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptConfig {
    /// Run the `script` service (default true).
    pub enabled: bool,
    /// The most operations (rhai's unit of work: an expression, a statement, a
    /// loop iteration) one run may take (default 1,000,000).
    pub max_operations: u64,
    /// The deepest nesting of function calls, recursion included (default 64).
    pub max_call_levels: usize,
    /// The deepest nesting of an expression at the top level, checked when the
    /// script is compiled (default 64).
    pub max_expr_depth: usize,
    /// The deepest nesting of an expression inside a function (default 32).
    pub max_function_expr_depth: usize,
    /// The longest string, in bytes; the strings held inside one array or map
    /// count together (default 1 MiB).
    pub max_string_bytes: usize,
    /// The most items of an array, nested arrays counted together (default 10,000).
    pub max_array_items: usize,
    /// The most entries of an object map, nested maps counted together (default
    /// 10,000).
    pub max_map_entries: usize,
    /// The most variables alive at once (default 256).
    pub max_variables: usize,
    /// The most functions a script may define (default 256).
    pub max_functions: usize,
    /// The longest a run may take, host calls included, in milliseconds (default
    /// 5,000); the caller's own deadline ends it sooner. Checked inside the VM every
    /// few operations, so a tight loop stops too.
    pub max_duration_ms: u64,
    /// The most lines of `print` and `debug` output kept (default 100); more is
    /// dropped and the result says `truncated_output`.
    pub max_output_lines: usize,
    /// The most bytes of output kept, all lines together (default 65,536).
    pub max_output_bytes: usize,
    /// The most host calls (`call`, `publish`) one run may make (default 100).
    pub max_calls: u32,
    /// The most `log` lines one run may write (default 100); more are dropped.
    pub max_log_lines: u32,
    /// The longest `log` line, in bytes, cut past it (default 1,024).
    pub max_log_bytes: usize,
    /// The largest result value, as JSON text, in bytes (default 1 MiB).
    pub max_result_bytes: usize,
    /// The longest source accepted by `script.run` and `script.save`, in bytes
    /// (default 65,536).
    pub max_source_bytes: usize,
    /// How many scripts run at once, each on a thread of the script pool (never on
    /// the node's async workers) (default 4).
    pub max_concurrent: usize,
    /// How many scripts may wait for a thread of the pool (default 16); one more is
    /// refused as overloaded (`plexus_script_runs_total{outcome="overloaded"}`).
    /// 0: none waits, and a run is taken only by a thread idle at that moment.
    pub max_queued: usize,
    /// The stack of each pool thread, in bytes (default 16 MiB): deep call levels
    /// need it.
    pub stack_bytes: usize,
    /// The DataStore collection of stored scripts (default `scripts`).
    pub collection: String,
    /// How many compiled scripts are kept: stored ones by name and version, and
    /// sources given to `script.run` by their text, each up to this many (default
    /// 256).
    pub cache_entries: u64,
    /// Stored scripts run on events (`[[script.triggers]]`): a bus pattern, the
    /// script, the caller it acts as and its scopes (none by default).
    pub triggers: Vec<TriggerConfig>,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_operations: 1_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_bytes: 1024 * 1024,
            max_array_items: 10_000,
            max_map_entries: 10_000,
            max_variables: 256,
            max_functions: 256,
            max_duration_ms: 5_000,
            max_output_lines: 100,
            max_output_bytes: 65_536,
            max_calls: 100,
            max_log_lines: 100,
            max_log_bytes: 1_024,
            max_result_bytes: 1024 * 1024,
            max_source_bytes: 65_536,
            max_concurrent: 4,
            max_queued: 16,
            stack_bytes: 16 * 1024 * 1024,
            collection: "scripts".to_owned(),
            cache_entries: 256,
            triggers: Vec::new(),
        }
    }
}

impl ScriptConfig {
    /// `max_duration_ms` as a duration.
    pub fn max_duration(&self) -> Duration {
        Duration::from_millis(self.max_duration_ms)
    }
}

/// Whether `name` can be a collection of the DataStore.
fn is_collection_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 32
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl Validate for ScriptConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_operations", self.max_operations, 1..=1_000_000_000_000)
            .range("max_call_levels", self.max_call_levels, 1..=1_000)
            .range("max_expr_depth", self.max_expr_depth, 1..=1_000)
            .range(
                "max_function_expr_depth",
                self.max_function_expr_depth,
                1..=1_000,
            )
            .range("max_string_bytes", self.max_string_bytes, 1..=1 << 30)
            .range("max_array_items", self.max_array_items, 1..=100_000_000)
            .range("max_map_entries", self.max_map_entries, 1..=100_000_000)
            .range("max_variables", self.max_variables, 1..=100_000)
            .range("max_functions", self.max_functions, 1..=100_000)
            .range("max_duration_ms", self.max_duration_ms, 1..=3_600_000)
            .range("max_output_lines", self.max_output_lines, 0..=1_000_000)
            .range("max_output_bytes", self.max_output_bytes, 0..=1 << 30)
            .range("max_calls", self.max_calls, 0..=1_000_000)
            .range("max_log_lines", self.max_log_lines, 0..=1_000_000)
            .range("max_log_bytes", self.max_log_bytes, 1..=1 << 20)
            .range("max_result_bytes", self.max_result_bytes, 1..=1 << 30)
            .range("max_source_bytes", self.max_source_bytes, 1..=1 << 24)
            .range("max_concurrent", self.max_concurrent, 1..=1_024)
            .range("max_queued", self.max_queued, 0..=100_000)
            .range("stack_bytes", self.stack_bytes, 256 * 1024..=1 << 30)
            .range("cache_entries", self.cache_entries, 1..=1_000_000)
            .check(is_collection_name(&self.collection), "collection", || {
                "is not a collection name (a-z, 0-9, _, starting with a letter, at most 32 bytes)"
                    .to_owned()
            });
        for (i, trigger) in self.triggers.iter().enumerate() {
            let at = |key: &str| format!("triggers[{i}].{key}");
            errors
                .check(
                    plexus_core::TopicPattern::new(&trigger.topic).is_ok(),
                    &at("topic"),
                    || {
                        format!(
                            "`{}` is not a topic pattern (`a.b`, `a.*`, `a.>`)",
                            trigger.topic
                        )
                    },
                )
                .non_empty(&at("script"), &trigger.script)
                .range(&at("capacity"), trigger.capacity, 1..=1_000_000);
            if let Err((j, reason)) = trigger.parsed_scopes() {
                errors.push(at(&format!("scopes[{j}]")), reason);
            }
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{FamilyError, NodeSection, SectionFamily};
    use serde_json::{Value, json};

    use super::*;

    fn check(section: Option<&Value>) -> Result<ScriptConfig, FamilyError> {
        crate::ScriptFamily.settings(section, &NodeSection::default())
    }

    #[test]
    fn problems_are_named_by_their_full_path() {
        let cases = [
            (json!({"max_operations": 0}), "script.max_operations"),
            (json!({"max_concurrent": 0}), "script.max_concurrent"),
            (json!({"max_duration_ms": 0}), "script.max_duration_ms"),
            (json!({"stack_bytes": 1}), "script.stack_bytes"),
            (json!({"collection": "Bad-Name"}), "script.collection"),
            (json!({"sandbox": false}), "script"),
            (
                json!({"triggers": [{"topic": "a..b", "script": "s"}]}),
                "script.triggers[0].topic",
            ),
            (
                json!({"triggers": [{"topic": "a", "script": "s", "scopes": ["call:x", "nope"]}]}),
                "script.triggers[0].scopes[1]",
            ),
        ];
        for (section, key) in cases {
            let err = check(Some(&section)).unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert_eq!(check(None).unwrap(), ScriptConfig::default());
        let set = check(Some(&json!({"max_queued": 0, "max_calls": 0}))).unwrap();
        assert_eq!((set.max_queued, set.max_calls), (0, 0));
    }
}
