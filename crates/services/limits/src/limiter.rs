//! [`Limiter`]: the limiter every backend is used through. It checks input (naming
//! the field), resolves the named rule, refuses a cost the rule can never allow,
//! asks the backend, and counts. It is also the node's
//! [`SharedLimiter`]: the call path's `shared_rate_limit` policy takes from it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use plexus_node::shared_limit::{SharedLimitError, SharedLimiter};
use plexus_redis::Redis;

use crate::backend::{Ask, LimiterBackend};
use crate::config::LimitsConfig;
use crate::metrics::{LimitsMetrics, Rejected};
use crate::{Decision, LimitError, MemoryBackend, RedisBackend, Rule};

/// A rate limiter with the rules of its configuration. Cheap to clone; clones
/// share it.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn LimiterBackend>,
    config: LimitsConfig,
    rules: BTreeMap<String, Rule>,
    metrics: LimitsMetrics,
}

impl Limiter {
    /// A limiter on `backend` with the rules of `config` (already checked).
    pub fn new(
        backend: Arc<dyn LimiterBackend>,
        config: LimitsConfig,
        metrics: LimitsMetrics,
    ) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|(name, rule)| (name.clone(), Rule::new(name.clone(), rule)))
            .collect();
        Self {
            inner: Arc::new(Inner {
                backend,
                config,
                rules,
                metrics,
            }),
        }
    }

    /// A limiter in this process (the memory backend).
    pub fn in_memory(config: LimitsConfig) -> Self {
        let metrics = LimitsMetrics::new();
        let backend = MemoryBackend::new(config.max_keys, idle(&config), metrics.clone());
        Self::new(Arc::new(backend), config, metrics)
    }

    /// A limiter on `redis`, shared with every limiter on the same server and key
    /// prefix.
    pub fn on_redis(redis: Redis, config: LimitsConfig) -> Self {
        Self::new(
            Arc::new(RedisBackend::new(redis)),
            config,
            LimitsMetrics::new(),
        )
    }

    /// Would `cost` units of `key` under `rule` be allowed now? Takes nothing.
    pub async fn check(&self, rule: &str, key: &str, cost: u64) -> Result<Decision, LimitError> {
        self.decide(rule, key, cost, false).await
    }

    /// Takes `cost` units of `key` under `rule` if allowed now.
    pub async fn acquire(&self, rule: &str, key: &str, cost: u64) -> Result<Decision, LimitError> {
        self.decide(rule, key, cost, true).await
    }

    /// Forgets what `key` took under `rule`; whether it had taken anything that
    /// still counted.
    pub async fn reset(&self, rule: &str, key: &str) -> Result<bool, LimitError> {
        let rule = self.rule_named(rule)?;
        self.check_key(key)?;
        self.counted(self.inner.backend.reset(rule, key).await)
    }

    /// The configured rules by name.
    pub fn rules(&self) -> &BTreeMap<String, Rule> {
        &self.inner.rules
    }

    /// Its configuration.
    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    /// Its counters.
    pub fn metrics(&self) -> &LimitsMetrics {
        &self.inner.metrics
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    async fn decide(
        &self,
        rule: &str,
        key: &str,
        cost: u64,
        consume: bool,
    ) -> Result<Decision, LimitError> {
        let rule = self.rule_named(rule)?;
        self.check_key(key)?;
        let max_cost = self.inner.config.max_cost;
        if cost == 0 || cost > max_cost {
            return Err(self.refuse(
                Rejected::BadCost,
                LimitError::invalid("/cost", format!("must be between 1 and {max_cost}")),
            ));
        }
        if cost > rule.capacity() {
            let error = LimitError::NeverAllowed {
                rule: rule.name.clone(),
                cost,
                capacity: rule.capacity(),
            };
            return Err(self.refuse(Rejected::NeverAllowed, error));
        }
        let ask = Ask {
            rule,
            key,
            cost,
            consume,
        };
        let raw = self.counted(self.inner.backend.decide(ask).await)?;
        let decision = raw.into_decision(rule);
        self.inner
            .metrics
            .decided(&rule.name, consume, decision.allowed);
        Ok(decision)
    }

    fn rule_named(&self, name: &str) -> Result<&Rule, LimitError> {
        self.inner.rules.get(name).ok_or_else(|| {
            self.refuse(
                Rejected::UnknownRule,
                LimitError::invalid("/rule", format!("no rule `{name}` in limits.rules")),
            )
        })
    }

    fn check_key(&self, key: &str) -> Result<(), LimitError> {
        let max = self.inner.config.max_key_bytes;
        if key.is_empty() || key.len() > max {
            return Err(self.refuse(
                Rejected::KeyTooLarge,
                LimitError::invalid("/key", format!("must be 1 to {max} bytes")),
            ));
        }
        Ok(())
    }

    fn refuse(&self, why: Rejected, error: LimitError) -> LimitError {
        self.inner.metrics.rejected(why);
        error
    }

    fn counted<T>(&self, result: Result<T, LimitError>) -> Result<T, LimitError> {
        if let Err(e) = &result {
            self.inner.metrics.error(e.kind());
        }
        result
    }
}

/// How long a key of the memory backend may sit idle: twice the longest window,
/// past which no state counts any more.
fn idle(config: &LimitsConfig) -> Duration {
    let longest = config
        .rules
        .values()
        .map(|r| r.window_ms)
        .max()
        .unwrap_or(1_000);
    Duration::from_millis(2 * longest)
}

/// The limiter as the node's shared limiter: a service whose policy says
/// `shared_rate_limit = { rule = "api" }` takes one unit of `api` per call, so on
/// Redis every node enforces one limit.
#[plexus_core::async_trait]
impl SharedLimiter for Limiter {
    async fn acquire(&self, rule: &str, key: &str) -> Result<Option<Duration>, SharedLimitError> {
        match self.decide(rule, key, 1, true).await {
            Ok(d) if d.allowed => Ok(None),
            Ok(d) => Ok(Some(Duration::from_millis(d.retry_after_ms))),
            Err(LimitError::Backend(e)) => Err(SharedLimitError::Unavailable(e.to_string())),
            Err(e) => Err(SharedLimitError::Misconfigured(e.to_string())),
        }
    }
}
