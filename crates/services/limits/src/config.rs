//! The family's configuration section, `[limits]`: which backend, the bounds every
//! call is held to (key size, cost, how many keys the process keeps), and the named
//! rules (`[limits.rules.NAME]`). Checked so that a problem is named by its full
//! path (`limits.rules.api.window_ms`); without the section the limiter is in
//! process with no rules.

use std::collections::BTreeMap;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "limits";

/// Where the limiter's state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process: each node enforces its own limit.
    #[default]
    Memory,
    /// On the Redis/Valkey of `[redis]`: every node on it enforces one shared limit.
    Redis,
}

/// How a rule counts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// The approximated sliding window: the current fixed window's count plus the
    /// previous one's weighted by how much of it still overlaps the sliding window.
    #[default]
    SlidingWindow,
    /// The generic cell rate algorithm: one unit every `window_ms / limit`, with up
    /// to `burst` at once.
    Gcra,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Run the `ratelimit` service (default true).
    pub enabled: bool,
    /// `memory` (default) or `redis`.
    pub backend: Backend,
    /// The memory backend: the most keys (rule and key pairs) kept (default
    /// 100,000). Keys idle for longer than they can matter go first; past the cap
    /// the least used are evicted (which forgets what they consumed), counted in
    /// `plexus_limits_evictions_total`.
    pub max_keys: u64,
    /// The longest key, in bytes (default 256).
    pub max_key_bytes: usize,
    /// The largest cost one call may ask for (default 1,000,000).
    pub max_cost: u64,
    /// The named rules.
    pub rules: BTreeMap<String, RuleConfig>,
}

/// `[limits.rules.NAME]`: `limit` units per `window_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `sliding_window` (default) or `gcra`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Units allowed per window (1 to 10,000,000).
    pub limit: u64,
    /// The window, in milliseconds (1 to 86,400,000: a day).
    pub window_ms: u64,
    /// GCRA only: how many units may be taken at once (1 to `limit`; `limit` when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: Backend::Memory,
            max_keys: 100_000,
            max_key_bytes: 256,
            max_cost: 1_000_000,
            rules: BTreeMap::new(),
        }
    }
}

/// The longest rule name.
pub const MAX_RULE_NAME_LEN: usize = 64;

/// The largest `limit` of a rule: with windows up to a day, `limit × window_ms`
/// stays exact in the 53-bit numbers of Redis's Lua.
pub const MAX_LIMIT: u64 = 10_000_000;

/// The longest window: a day.
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// Whether `name` can be a rule's name: lowercase ASCII letters, digits and `_`,
/// starting with a letter, at most [`MAX_RULE_NAME_LEN`] bytes.
pub fn is_rule_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_RULE_NAME_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl RuleConfig {
    /// A sliding-window rule.
    pub fn sliding_window(limit: u64, window_ms: u64) -> Self {
        Self {
            algorithm: Algorithm::SlidingWindow,
            limit,
            window_ms,
            burst: None,
        }
    }

    /// A GCRA rule with `burst` units at once.
    pub fn gcra(limit: u64, window_ms: u64, burst: u64) -> Self {
        Self {
            algorithm: Algorithm::Gcra,
            limit,
            window_ms,
            burst: Some(burst),
        }
    }

    /// Adds this rule's problems to `errors`, under `at` (`rules.api`).
    pub(crate) fn check(&self, at: &str, errors: &mut FieldErrors) {
        errors
            .range(&format!("{at}.limit"), self.limit, 1..=MAX_LIMIT)
            .range(
                &format!("{at}.window_ms"),
                self.window_ms,
                1..=MAX_WINDOW_MS,
            );
        if let Some(burst) = self.burst {
            errors
                .check(
                    self.algorithm == Algorithm::Gcra,
                    &format!("{at}.burst"),
                    || "applies only to algorithm = \"gcra\"".to_owned(),
                )
                .check(
                    (1..=self.limit).contains(&burst),
                    &format!("{at}.burst"),
                    || {
                        format!(
                            "must be between 1 and limit ({}): more at once than per window would break the limit",
                            self.limit
                        )
                    },
                );
        }
    }
}

impl Validate for LimitsConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_keys", self.max_keys, 1..=100_000_000)
            .range("max_key_bytes", self.max_key_bytes, 1..=65_536)
            .range("max_cost", self.max_cost, 1..=MAX_LIMIT);
        for (name, rule) in &self.rules {
            let at = format!("rules.{name}");
            errors.check(is_rule_name(name), &at, || {
                format!(
                    "is not a rule name (a-z, 0-9, _, starting with a letter, at most {MAX_RULE_NAME_LEN} bytes)"
                )
            });
            rule.check(&at, &mut errors);
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

    fn check(section: Option<&Value>) -> Result<LimitsConfig, FamilyError> {
        crate::LimitsFamily::default().settings(section, &NodeSection::default())
    }

    fn rule(rule: Value) -> Value {
        json!({"rules": {"api": rule}})
    }

    #[test]
    fn nonsense_is_named_by_its_full_path() {
        let cases = [
            (json!({"backend": "memcached"}), "limits.backend"),
            (json!({"max_keys": 0}), "limits.max_keys"),
            (json!({"max_cost": 0}), "limits.max_cost"),
            (
                rule(json!({"limit": 0, "window_ms": 1000})),
                "limits.rules.api.limit",
            ),
            (
                rule(json!({"limit": 10, "window_ms": 0})),
                "limits.rules.api.window_ms",
            ),
            (
                rule(json!({"limit": 10, "window_ms": 90_000_000})),
                "limits.rules.api.window_ms",
            ),
            (
                rule(json!({"algorithm": "gcra", "limit": 10, "window_ms": 1000, "burst": 11})),
                "limits.rules.api.burst",
            ),
            (
                rule(json!({"algorithm": "gcra", "limit": 10, "window_ms": 1000, "burst": 0})),
                "limits.rules.api.burst",
            ),
            (
                rule(json!({"limit": 10, "window_ms": 1000, "burst": 5})),
                "limits.rules.api.burst",
            ),
            (
                rule(json!({"algorithm": "leaky", "limit": 10, "window_ms": 1000})),
                "limits.rules.api.algorithm",
            ),
            (rule(json!({"limit": 10})), "limits.rules.api"),
            (
                json!({"rules": {"Bad-Name": {"limit": 1, "window_ms": 1}}}),
                "limits.rules.Bad-Name",
            ),
        ];
        for (section, key) in cases {
            let err = check(Some(&section)).unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert!(check(None).is_ok());
        let good = json!({"rules": {
            "api": {"limit": 100, "window_ms": 60000},
            "burst": {"algorithm": "gcra", "limit": 10, "window_ms": 1000, "burst": 5},
        }});
        let config = check(Some(&good)).unwrap();
        assert_eq!(config.rules["burst"], RuleConfig::gcra(10, 1000, 5));
    }
}
