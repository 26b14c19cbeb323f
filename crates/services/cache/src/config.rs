//! The family's configuration section, `[cache]`: which backend, the bounds every
//! entry is held to (key and value sizes, TTLs, the in-process byte cap), the
//! stampede settings (loader lease, early refresh), which methods may load, and the
//! namespaces. Read and checked so that a problem is named by its full path
//! (`cache.max_ttl_ms`); without the section the cache is in process (moka) with
//! these defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "cache";

/// The namespace used when a call names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where entries live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process, on moka.
    #[default]
    Memory,
    /// On the Redis/Valkey of `[redis]`, shared by every node that uses it.
    Redis,
}

impl Backend {
    /// Its name in configuration and in `cache.stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

/// `[cache]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Run the `cache` service (default true).
    pub enabled: bool,
    /// `memory` (default) or `redis`.
    pub backend: Backend,
    /// With `backend = "redis"`: keep a local copy of what this node reads in front
    /// of Redis, evicted on every node by a message over pub/sub when any node writes
    /// (default false).
    pub two_tier: bool,
    /// The byte cap of the in-process tier (the memory backend, or the two-tier
    /// local copies): keys and JSON values together (default 64 MiB). Least used
    /// entries are evicted past it, counted in `plexus_cache_evictions_total`.
    pub max_bytes: u64,
    /// The longest key, in bytes (default 512).
    pub max_key_bytes: usize,
    /// The largest value, as JSON text, in bytes (default 1 MiB).
    pub max_value_bytes: usize,
    /// The most keys one `get_many` may ask for (default 1,000).
    pub max_batch: usize,
    /// The TTL of an entry written without one, in milliseconds (default 300,000),
    /// unless its namespace sets another.
    pub ttl_ms: u64,
    /// The longest TTL a write may ask for, in milliseconds (default 86,400,000),
    /// unless its namespace sets another.
    pub max_ttl_ms: u64,
    /// Two-tier: the longest a local copy is kept, in milliseconds (default 10,000),
    /// which bounds how stale it can be if an invalidation message is lost (Redis
    /// pub/sub does not replay).
    pub local_ttl_ms: u64,
    /// Across processes: how long the loader lease of a key lasts, in milliseconds
    /// (default 5,000). One process loads a missing key; the others wait for its
    /// value up to this long, then load it themselves.
    pub lease_ms: u64,
    /// How often a process waiting on another's load looks for the value, in
    /// milliseconds (default 20).
    pub lease_poll_ms: u64,
    /// Early refresh (XFetch): a hit triggers a background reload with a
    /// probability that grows as expiry nears, scaled by this factor (default 1.0;
    /// 0 switches it off).
    pub early_refresh_beta: f64,
    /// The methods `cache.get` may call to load a missing key (`service.method`,
    /// `service.*` or `*`). Empty by default: a loader runs with the node's rights,
    /// not the caller's, so which methods may load is the operator's choice.
    pub load_methods: Vec<String>,
    /// Namespaces besides `default`, each with its own TTLs.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// `[cache.namespaces.NAME]`: a namespace's own TTLs (the section's when absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceConfig {
    /// The TTL of an entry written without one, in milliseconds.
    pub ttl_ms: Option<u64>,
    /// The longest TTL a write may ask for, in milliseconds.
    pub max_ttl_ms: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: Backend::Memory,
            two_tier: false,
            max_bytes: 64 * 1024 * 1024,
            max_key_bytes: 512,
            max_value_bytes: 1024 * 1024,
            max_batch: 1_000,
            ttl_ms: 300_000,
            max_ttl_ms: 86_400_000,
            local_ttl_ms: 10_000,
            lease_ms: 5_000,
            lease_poll_ms: 20,
            early_refresh_beta: 1.0,
            load_methods: Vec::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

/// The longest namespace name.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Whether `name` can be a namespace: lowercase ASCII letters, digits and `_`,
/// starting with a letter, at most [`MAX_NAMESPACE_LEN`] bytes.
pub fn is_namespace_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_NAMESPACE_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Whether `pattern` can be a `load_methods` entry.
fn is_load_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('.') {
        Some((service, method)) => {
            !service.is_empty()
                && !method.is_empty()
                && !service.contains('*')
                && (method == "*" || !method.contains('*'))
        }
        None => false,
    }
}

/// The TTLs of one namespace, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttls {
    /// For writes that name none.
    pub default: Duration,
    /// The longest allowed.
    pub max: Duration,
}

impl CacheConfig {
    /// The TTLs of `namespace`, or `None` when there is no such namespace.
    pub fn ttls(&self, namespace: &str) -> Option<Ttls> {
        let own = match self.namespaces.get(namespace) {
            Some(own) => own.clone(),
            None if namespace == DEFAULT_NAMESPACE => NamespaceConfig::default(),
            None => return None,
        };
        Some(Ttls {
            default: Duration::from_millis(own.ttl_ms.unwrap_or(self.ttl_ms)),
            max: Duration::from_millis(own.max_ttl_ms.unwrap_or(self.max_ttl_ms)),
        })
    }

    /// Every namespace's name, `default` included, sorted.
    pub fn namespace_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        if !self.namespaces.contains_key(DEFAULT_NAMESPACE) {
            names.push(DEFAULT_NAMESPACE);
        }
        names.sort_unstable();
        names
    }

    /// Whether `method` (`service.method`) may load.
    pub fn may_load(&self, method: &str) -> bool {
        let service = method.split_once('.').map_or(method, |(s, _)| s);
        self.load_methods.iter().any(|p| {
            p == "*"
                || p == method
                || p.strip_suffix(".*")
                    .is_some_and(|allowed| allowed == service)
        })
    }
}

/// The longest TTL any setting may hold: 365 days.
const MAX_ANY_TTL_MS: u64 = 365 * 86_400_000;

impl Validate for CacheConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("max_bytes", self.max_bytes, 1_024..=1 << 40)
            .range("max_key_bytes", self.max_key_bytes, 1..=65_536)
            .range(
                "max_value_bytes",
                self.max_value_bytes,
                1..=512 * 1024 * 1024,
            )
            .range("max_batch", self.max_batch, 1..=100_000)
            .range("ttl_ms", self.ttl_ms, 1..=MAX_ANY_TTL_MS)
            .range("max_ttl_ms", self.max_ttl_ms, 1..=MAX_ANY_TTL_MS)
            .check(self.ttl_ms <= self.max_ttl_ms, "ttl_ms", || {
                format!("must not exceed max_ttl_ms ({})", self.max_ttl_ms)
            })
            .range("local_ttl_ms", self.local_ttl_ms, 1..=MAX_ANY_TTL_MS)
            .range("lease_ms", self.lease_ms, 1..=600_000)
            .range("lease_poll_ms", self.lease_poll_ms, 1..=60_000)
            .check(
                self.early_refresh_beta.is_finite()
                    && (0.0..=1_000.0).contains(&self.early_refresh_beta),
                "early_refresh_beta",
                || "must be between 0 and 1000".to_owned(),
            )
            .check(
                !self.two_tier || self.backend == Backend::Redis,
                "two_tier",
                || "needs backend = \"redis\"".to_owned(),
            );
        for (i, pattern) in self.load_methods.iter().enumerate() {
            errors.check(
                is_load_pattern(pattern),
                &format!("load_methods[{i}]"),
                || format!("`{pattern}` is not `service.method`, `service.*` or `*`"),
            );
        }
        for (name, ns) in &self.namespaces {
            let at = format!("namespaces.{name}");
            errors.check(is_namespace_name(name), &at, || {
                format!(
                    "is not a namespace name (a-z, 0-9, _, starting with a letter, at most {MAX_NAMESPACE_LEN} bytes)"
                )
            });
            let ttl = ns.ttl_ms.unwrap_or(self.ttl_ms);
            let max = ns.max_ttl_ms.unwrap_or(self.max_ttl_ms);
            errors
                .range(&format!("{at}.ttl_ms"), ttl, 1..=MAX_ANY_TTL_MS)
                .range(&format!("{at}.max_ttl_ms"), max, 1..=MAX_ANY_TTL_MS)
                .check(ttl <= max, &format!("{at}.ttl_ms"), || {
                    format!("must not exceed its max_ttl_ms ({max})")
                });
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

    fn check(section: Option<&Value>) -> Result<CacheConfig, FamilyError> {
        crate::CacheFamily::default().settings(section, &NodeSection::default())
    }

    #[test]
    fn problems_are_named_by_their_full_path() {
        let cases = [
            (json!({"backend": "memcached"}), "cache.backend"),
            (json!({"two_tier": true}), "cache.two_tier"),
            (json!({"ttl_ms": 0}), "cache.ttl_ms"),
            (json!({"ttl_ms": 10, "max_ttl_ms": 5}), "cache.ttl_ms"),
            (json!({"load_methods": ["users"]}), "cache.load_methods[0]"),
            (
                json!({"namespaces": {"Bad-Name": {}}}),
                "cache.namespaces.Bad-Name",
            ),
            (
                json!({"namespaces": {"a": {"ttl_ms": 9, "max_ttl_ms": 3}}}),
                "cache.namespaces.a.ttl_ms",
            ),
            (
                json!({"early_refresh_beta": -1.0}),
                "cache.early_refresh_beta",
            ),
        ];
        for (section, key) in cases {
            let err = check(Some(&section)).unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert!(check(None).is_ok());
    }

    #[test]
    fn namespaces_resolve_their_ttls_and_load_patterns_match() {
        let config: CacheConfig = serde_json::from_value(json!({
            "ttl_ms": 1000,
            "namespaces": {"short": {"ttl_ms": 10}},
            "load_methods": ["users.get", "prices.*"]
        }))
        .unwrap();
        assert_eq!(
            config.ttls("short").unwrap().default,
            Duration::from_millis(10)
        );
        assert_eq!(
            config.ttls("default").unwrap().default,
            Duration::from_secs(1)
        );
        assert!(config.ttls("other").is_none());
        assert_eq!(config.namespace_names(), ["default", "short"]);
        assert!(config.may_load("users.get") && config.may_load("prices.today"));
        assert!(!config.may_load("users.delete") && !config.may_load("pricesx.a"));
    }
}
