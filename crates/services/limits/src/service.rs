//! [`LimitsService`]: the limiter as a Plexus service (`ratelimit.*` methods), so
//! every front end (JSON-RPC, WebSocket, MCP, the CLI) reaches it through the call
//! path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `check` | `rule`, `key`, `cost`? (1) | `{allowed, remaining, retry_after_ms, reset_after_ms, limit}` |
//! | `acquire` | `rule`, `key`, `cost`? (1) | the same; the cost is taken when allowed |
//! | `reset` | `rule`, `key` | `{reset}` |
//! | `rules` | | `{backend, rules: {name: {algorithm, limit, window_ms, burst}}}` |
//!
//! A refusal by the limit is an answer (`allowed: false`), not an error. Errors:
//! bad input is [`ServiceError::InvalidParams`] naming the field (`/rule`, `/key`,
//! `/cost`; a cost over the rule's capacity says it can never be allowed); Redis
//! out of reach is [`ServiceError::Unavailable`].

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::RuleConfig;
use crate::{Decision, Limiter};

/// The limiter behind the `ratelimit` service.
#[derive(Clone, Debug)]
pub struct LimitsService {
    limiter: Arc<Limiter>,
    descriptor: ServiceDescriptor,
}

impl LimitsService {
    /// The service over `limiter`, instance `ratelimit-1`.
    pub fn new(limiter: Limiter) -> Self {
        Self {
            limiter: Arc::new(limiter),
            descriptor: METHODS.describe(
                ServiceDescriptor::new("ratelimit", "ratelimit")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Rate limits by key under named rules (sliding window, GCRA), shared by every node on the same Redis",
                    ),
            ),
        }
    }

    /// The limiter underneath.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

/// The `ratelimit.*` methods, built once.
static METHODS: LazyLock<MethodTable<Limiter>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<CostParams, Decision, _>(
            "check",
            "Would this cost of this key be allowed now under the rule? Takes nothing",
            Effect::Idempotent,
            check,
        )
        .method::<CostParams, Decision, _>(
            "acquire",
            "Take this cost of this key under the rule if allowed now",
            Effect::Mutating,
            acquire,
        )
        .method::<KeyParams, Reset, _>(
            "reset",
            "Forget what this key took under the rule",
            Effect::Idempotent,
            reset,
        )
        .method::<NoParams, Rules, _>(
            "rules",
            "The configured rules and the backend",
            Effect::Idempotent,
            rules,
        )
});

/// A configured rule's name
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct RuleName(#[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 64))] String);

/// The key limited: any non-empty text within `limits.max_key_bytes`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Key(#[schemars(length(min = 1))] String);

/// Params of `ratelimit.check` and `ratelimit.acquire`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CostParams {
    rule: RuleName,
    key: Key,
    /// Units asked for (1 when absent), at most `limits.max_cost` and the rule's
    /// capacity.
    #[serde(default)]
    #[schemars(range(min = 1))]
    cost: Option<u64>,
}

/// Params of `ratelimit.reset`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyParams {
    rule: RuleName,
    key: Key,
}

/// What `ratelimit.reset` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Reset {
    /// Whether the key had taken anything that still counted.
    reset: bool,
}

/// What `ratelimit.rules` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct Rules {
    /// `memory` or `redis`.
    backend: String,
    /// The rules by name, as configured.
    rules: BTreeMap<String, RuleConfig>,
}

async fn check(l: &Limiter, _: CallContext, p: CostParams) -> Result<Decision, ServiceError> {
    Ok(l.check(&p.rule.0, &p.key.0, p.cost.unwrap_or(1)).await?)
}

async fn acquire(l: &Limiter, _: CallContext, p: CostParams) -> Result<Decision, ServiceError> {
    Ok(l.acquire(&p.rule.0, &p.key.0, p.cost.unwrap_or(1)).await?)
}

async fn reset(l: &Limiter, _: CallContext, p: KeyParams) -> Result<Reset, ServiceError> {
    Ok(Reset {
        reset: l.reset(&p.rule.0, &p.key.0).await?,
    })
}

async fn rules(l: &Limiter, _: CallContext, _: NoParams) -> Result<Rules, ServiceError> {
    Ok(Rules {
        backend: l.backend().to_owned(),
        rules: l.config().rules.clone(),
    })
}

impl TableService for LimitsService {
    type State = Limiter;

    fn parts(&self) -> TableParts<'_, Limiter> {
        (&METHODS, &self.limiter, &self.descriptor)
    }
}
