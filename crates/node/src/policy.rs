//! Resilience policies for calls: node defaults, per service, per method.
//!
//! The `calls` section of the node's configuration:
//!
//! ```toml
//! [calls.default]            # every service starts from these
//! timeout_ms = 5000          # the deadline of a whole call, retries included
//! # attempt_timeout_ms = 1500  # each attempt's own limit (default: see below)
//! balancer = "round_robin"   # round_robin | weighted | least_outstanding | power_of_two_choices | consistent_hash
//! breaker = { failure_rate_threshold = 50, minimum_calls = 20, window = { kind = "count", size = 50 }, wait_in_open_ms = 10000 }
//! retry = { max_attempts = 3 }   # idempotent methods only
//! # bulkhead = { max_concurrent = 64, max_queue = 256, max_wait_ms = 100 }
//! # rate_limit = { kind = "gcra", per_second = 1000, burst = 100 }
//! # shared_rate_limit = { rule = "api" }   # one limit for every node (see shared_limit)
//! # hedge = { latency_percentile = 95 }  # idempotent methods only (see below)
//!
//! [calls.services.storage]   # overrides, merged key by key over the default
//! breaker = { failure_rate_threshold = 25 }
//!
//! [calls.services.storage.methods.get]   # per method: timeout_ms and retry
//! timeout_ms = 200
//! ```
//!
//! Each attempt (one instance's try at the call) has its own time limit inside the
//! call's deadline, so a hung instance costs an idempotent call one attempt, not the
//! whole deadline: `attempt_timeout_ms` when set; otherwise, for an idempotent
//! method that retries, `timeout_ms / retry.max_attempts`, so every attempt fits in
//! the deadline; otherwise the deadline itself. An attempt that runs out of time is a
//! failure of its instance's breaker (so a hung instance is ejected at the
//! breaker's threshold) and, for idempotent methods, is retried on another instance.
//!
//! ## Hedging
//!
//! With `hedge` set (per service, or per method under `methods`), an idempotent call
//! still unanswered after the `latency_percentile` of the method's recent calls (over
//! the last full `period_ms`, once it holds `min_data_points` calls), or after a fixed
//! `delay_ms`, is sent once more, to another instance while one is left; the first
//! answer wins. The slower attempt is not cancelled: it ends by its own attempt limit,
//! so its instance's breaker still counts a hang. Hedges are counted in
//! `plexus_calls_hedged_total`. Methods that are not idempotent are never hedged.
//!
//! ```toml
//! [calls.services.search.methods.find]
//! hedge = { delay_ms = 50 }
//! ```
//!
//! ## What an instance's breaker counts as a failure
//!
//! | the instance answered | breaker | configurable |
//! | --- | --- | --- |
//! | a result | success | |
//! | unavailable (-32006), or its connection dropped | failure | |
//! | nothing before its attempt's limit (timeout, -32004) | failure | |
//! | an internal error: -32603, or a server error -32099 to -32000 | failure | `failures.internal = false` makes it an answer |
//! | a failure it marked `retryable` | failure | `failures.retryable = false` makes it an answer |
//! | its own application error code (say 1001) | success: an answer | `failures.codes = [1001]` counts it |
//! | method not found, invalid params | success: the caller's mistake | |
//!
//! ```toml
//! [calls.services.search.failures]
//! internal = true        # default
//! retryable = true       # default
//! codes = [1503]         # this service's own "overloaded" code counts too
//! ```
//!
//! A service's table is merged over `default` key by key (nested tables too), and a
//! method's table over its service's, so a change names only what differs. Every
//! effective policy is validated when the configuration is applied: an invalid one is
//! rejected with the full path of the field, such as
//! `calls.services.storage.breaker.failure_rate_threshold`.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_resilience::{
    BreakerConfig, BulkheadConfig, HedgeConfig, RateLimitConfig, RetryConfig, Strategy,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most a single call may be given, in milliseconds (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// The `calls` section: defaults plus overrides per service and method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// What every service starts from.
    pub default: Value,
    /// Overrides per service name.
    pub services: BTreeMap<String, Value>,
}

/// The policy in force for one service's calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicePolicy {
    /// The deadline of a whole call, retries included, in milliseconds.
    pub timeout_ms: u64,
    /// Each attempt's own limit, in milliseconds (default: derived, see the module
    /// docs).
    pub attempt_timeout_ms: Option<u64>,
    /// How an instance is chosen.
    pub balancer: Strategy,
    /// One breaker per instance, shaped by this (its name is set per instance).
    pub breaker: BreakerConfig,
    /// Retries for idempotent methods.
    pub retry: RetryConfig,
    /// Concurrency limit for the service, if any.
    pub bulkhead: Option<BulkheadConfig>,
    /// Rate limit for the service, if any.
    pub rate_limit: Option<RateLimitConfig>,
    /// A rate limit shared by every node, taken from the limiter a family installs
    /// (see [`shared_limit`](crate::shared_limit)), if any.
    pub shared_rate_limit: Option<SharedRateLimit>,
    /// What its instances' breakers count as failures (see the module docs).
    pub failures: FailureClasses,
    /// Hedging of idempotent calls, if any (see the module docs).
    pub hedge: Option<HedgeConfig>,
    /// Per-method overrides of `timeout_ms`, `attempt_timeout_ms`, `retry` and
    /// `hedge`.
    pub methods: BTreeMap<String, Value>,
}

/// `shared_rate_limit = { rule = "api" }`: each call of the service takes one unit
/// of a rule of the shared limiter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedRateLimit {
    /// The rule's name (`[limits.rules.NAME]`).
    pub rule: String,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            attempt_timeout_ms: None,
            balancer: Strategy::RoundRobin,
            breaker: BreakerConfig {
                minimum_calls: 20,
                wait_in_open_ms: 10_000,
                max_wait_in_open_ms: 60_000,
                window: plexus_resilience::breaker::Window::Count { size: 50 },
                ..BreakerConfig::default()
            },
            retry: RetryConfig::default(),
            bulkhead: None,
            rate_limit: None,
            shared_rate_limit: None,
            failures: FailureClasses::default(),
            hedge: None,
            methods: BTreeMap::new(),
        }
    }
}

/// What an instance's breaker counts as a failure, beyond unavailability and
/// timeouts (always failures); see the table in the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureClasses {
    /// Internal errors count (-32603, server errors -32099 to -32000); default true.
    pub internal: bool,
    /// Failures the service marked retryable count; default true.
    pub retryable: bool,
    /// The service's own error codes that count too; default none (they are
    /// answers).
    pub codes: Vec<i64>,
}

impl Default for FailureClasses {
    fn default() -> Self {
        Self {
            internal: true,
            retryable: true,
            codes: Vec::new(),
        }
    }
}

impl FailureClasses {
    /// Whether `error`, as an instance returned it, is a failure of the instance.
    pub fn is_failure(&self, error: &plexus_core::ServiceError) -> bool {
        use plexus_core::ServiceError as E;
        match error {
            E::Unavailable { .. } | E::Timeout => true,
            E::Internal { .. } => self.internal,
            E::MethodNotFound { .. } | E::InvalidParams { .. } => false,
            E::Failed {
                retryable, data, ..
            } => {
                (*retryable && self.retryable)
                    || data
                        .as_ref()
                        .and_then(crate::ServiceCode::detach)
                        .is_some_and(|(code, _)| self.codes.contains(&code.get()))
            }
            _ => error.is_retryable(),
        }
    }
}

/// The policy in force for one method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodPolicy {
    /// The deadline of a whole call, retries included, in milliseconds.
    pub timeout_ms: u64,
    /// Each attempt's own limit, in milliseconds (default: derived, see the module
    /// docs).
    pub attempt_timeout_ms: Option<u64>,
    /// Retries, when the method is idempotent.
    pub retry: RetryConfig,
    /// Hedging, when the method is idempotent.
    pub hedge: Option<HedgeConfig>,
}

/// A policy field that is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {reason}")]
pub struct PolicyError {
    /// The full dotted path of the field.
    pub field: String,
    /// Why it is not acceptable.
    pub reason: String,
}

impl PolicyError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub use plexus_config::merge;

fn decode<T: serde::de::DeserializeOwned>(value: Value, at: &str) -> Result<T, PolicyError> {
    serde_json::from_value(value).map_err(|e| PolicyError::new(at, e.to_string()))
}

fn check_attempt(ms: Option<u64>, at: &str) -> Result<(), PolicyError> {
    match ms {
        Some(ms) if ms == 0 || ms > MAX_TIMEOUT_MS => Err(PolicyError::new(
            format!("{at}.attempt_timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}, got {ms}"),
        )),
        _ => Ok(()),
    }
}

fn check_timeout(ms: u64, at: &str) -> Result<(), PolicyError> {
    if ms == 0 || ms > MAX_TIMEOUT_MS {
        return Err(PolicyError::new(
            format!("{at}.timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}, got {ms}"),
        ));
    }
    Ok(())
}

impl CallsConfig {
    /// The effective policy of `service`, validated; `at` is this section's path.
    pub fn service(&self, service: &str) -> Result<ServicePolicy, PolicyError> {
        self.resolve(service, "calls")
    }

    fn resolve(&self, service: &str, at: &str) -> Result<ServicePolicy, PolicyError> {
        let mut merged = serde_json::to_value(ServicePolicy::default())
            .map_err(|e| PolicyError::new(at, e.to_string()))?;
        if !self.default.is_null() {
            merge(&mut merged, &self.default);
        }
        let path = match self.services.get(service) {
            Some(over) => {
                merge(&mut merged, over);
                format!("{at}.services.{service}")
            }
            None => format!("{at}.default"),
        };
        let policy: ServicePolicy = decode(merged, &path)?;
        check_timeout(policy.timeout_ms, &path)?;
        check_attempt(policy.attempt_timeout_ms, &path)?;
        policy
            .breaker
            .validate()
            .map_err(|e| PolicyError::new(format!("{path}.breaker.{}", e.field), e.reason))?;
        policy
            .retry
            .validate()
            .map_err(|e| PolicyError::new(format!("{path}.retry.{}", e.field), e.reason))?;
        if let Some(b) = &policy.bulkhead {
            b.validate()
                .map_err(|e| PolicyError::new(format!("{path}.bulkhead.{}", e.field), e.reason))?;
        }
        if let Some(r) = &policy.rate_limit {
            r.validate().map_err(|e| {
                PolicyError::new(format!("{path}.rate_limit.{}", e.field), e.reason)
            })?;
        }
        if let Some(s) = &policy.shared_rate_limit
            && s.rule.is_empty()
        {
            return Err(PolicyError::new(
                format!("{path}.shared_rate_limit.rule"),
                "must name a rule of [limits.rules]",
            ));
        }
        if let Some(h) = &policy.hedge {
            h.validate()
                .map_err(|e| PolicyError::new(format!("{path}.hedge.{}", e.field), e.reason))?;
        }
        for name in policy.methods.keys() {
            policy.method(name, &path)?;
        }
        Ok(policy)
    }

    /// Validates the default and every service listed, naming the first bad field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.resolve("", "calls")?;
        for service in self.services.keys() {
            self.resolve(service, "calls")?;
        }
        Ok(())
    }
}

impl plexus_config::Validate for CallsConfig {
    fn validate(&self) -> Result<(), plexus_config::FieldErrors> {
        CallsConfig::validate(self).map_err(|e| {
            let relative = e.field.strip_prefix("calls.").unwrap_or(&e.field);
            plexus_config::FieldErrors::one(relative, e.reason)
        })
    }
}

impl ServicePolicy {
    /// The effective policy of `method`; `at` is the service's path, for errors.
    pub fn method(&self, method: &str, at: &str) -> Result<MethodPolicy, PolicyError> {
        let mut merged = serde_json::json!({
            "timeout_ms": self.timeout_ms,
            "attempt_timeout_ms": self.attempt_timeout_ms,
            "retry": serde_json::to_value(&self.retry).map_err(|e| PolicyError::new(at, e.to_string()))?,
            "hedge": serde_json::to_value(&self.hedge).map_err(|e| PolicyError::new(at, e.to_string()))?,
        });
        let path = format!("{at}.methods.{method}");
        if let Some(over) = self.methods.get(method) {
            merge(&mut merged, over);
        }
        let policy: MethodPolicy = decode(merged, &path)?;
        check_timeout(policy.timeout_ms, &path)?;
        check_attempt(policy.attempt_timeout_ms, &path)?;
        policy
            .retry
            .validate()
            .map_err(|e| PolicyError::new(format!("{path}.retry.{}", e.field), e.reason))?;
        if let Some(h) = &policy.hedge {
            h.validate()
                .map_err(|e| PolicyError::new(format!("{path}.hedge.{}", e.field), e.reason))?;
        }
        Ok(policy)
    }

    /// The whole-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl MethodPolicy {
    /// The whole-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Each attempt's own limit for a method that is (or is not) idempotent: the
    /// configured one, or the deadline shared among the retries of an idempotent
    /// method, or none (the deadline alone) for a method that is tried once.
    pub fn attempt_timeout(&self, idempotent: bool) -> Option<Duration> {
        match self.attempt_timeout_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None if idempotent && self.retry.max_attempts > 1 => Some(Duration::from_millis(
                (self.timeout_ms / u64::from(self.retry.max_attempts)).max(1),
            )),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_and_methods_merge_over_the_default() {
        let calls: CallsConfig = serde_json::from_value(json!({
            "default": {"timeout_ms": 1000, "breaker": {"failure_rate_threshold": 40}},
            "services": {"storage": {
                "breaker": {"minimum_calls": 5},
                "methods": {"get": {"timeout_ms": 200}}
            }}
        }))
        .unwrap();
        let storage = calls.service("storage").unwrap();
        assert_eq!(storage.timeout_ms, 1000);
        assert_eq!(storage.breaker.failure_rate_threshold, 40.0);
        assert_eq!(storage.breaker.minimum_calls, 5);
        assert_eq!(
            storage
                .method("get", "calls.services.storage")
                .unwrap()
                .timeout_ms,
            200
        );
        assert_eq!(
            storage
                .method("put", "calls.services.storage")
                .unwrap()
                .timeout_ms,
            1000
        );
        let other = calls.service("ai").unwrap();
        assert_eq!(other.breaker.minimum_calls, 20);
    }

    #[test]
    fn a_bad_field_is_named_by_its_full_path() {
        let calls: CallsConfig = serde_json::from_value(json!({
            "services": {"storage": {"breaker": {"failure_rate_threshold": 150}}}
        }))
        .unwrap();
        let err = calls.validate().unwrap_err();
        assert_eq!(
            err.field,
            "calls.services.storage.breaker.failure_rate_threshold"
        );
        let calls: CallsConfig = serde_json::from_value(json!({
            "services": {"s": {"methods": {"m": {"timeout_ms": 0}}}}
        }))
        .unwrap();
        assert_eq!(
            calls.validate().unwrap_err().field,
            "calls.services.s.methods.m.timeout_ms"
        );
        let calls: CallsConfig =
            serde_json::from_value(json!({"default": {"timeout_ms": "soon"}})).unwrap();
        assert_eq!(calls.validate().unwrap_err().field, "calls.default");
        let calls: CallsConfig = serde_json::from_value(json!({
            "services": {"s": {"shared_rate_limit": {"rule": ""}}}
        }))
        .unwrap();
        assert_eq!(
            calls.validate().unwrap_err().field,
            "calls.services.s.shared_rate_limit.rule"
        );
    }
}
