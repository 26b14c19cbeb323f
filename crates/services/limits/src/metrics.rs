//! The limiter's metrics, defined once here with their Prometheus names.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_limits_decisions_total` | counter | `rule`, `op`: `check`, `acquire`; `outcome`: `allowed`, `limited` |
//! | `plexus_limits_rejected_total` | counter | `reason`: `key_too_large`, `bad_cost`, `unknown_rule`, `never_allowed` |
//! | `plexus_limits_errors_total` | counter | `kind`: `unavailable`, `backend` |
//! | `plexus_limits_evictions_total` | counter | |
//!
//! `rule` is a configured rule's name, so the label's values are bounded.

use std::sync::Arc;

use plexus_node::metrics::{KindLabel, ReasonLabel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    rule: String,
    op: &'static str,
    outcome: &'static str,
}

/// Why an input was refused (`plexus_limits_rejected_total`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// An empty key, or one over `max_key_bytes`.
    KeyTooLarge,
    /// A cost of 0 or over `max_cost`.
    BadCost,
    /// A rule that is not configured.
    UnknownRule,
    /// A cost over the rule's capacity.
    NeverAllowed,
}

impl Rejected {
    fn as_str(self) -> &'static str {
        match self {
            Self::KeyTooLarge => "key_too_large",
            Self::BadCost => "bad_cost",
            Self::UnknownRule => "unknown_rule",
            Self::NeverAllowed => "never_allowed",
        }
    }
}

/// The limiter's counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct LimitsMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    decisions: Family<DecisionLabels, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    evictions: Counter,
}

fn decision(rule: &str, consume: bool, allowed: bool) -> DecisionLabels {
    DecisionLabels {
        rule: rule.to_owned(),
        op: if consume { "acquire" } else { "check" },
        outcome: if allowed { "allowed" } else { "limited" },
    }
}

impl LimitsMetrics {
    /// New counters, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a decision of `rule`: an `acquire` when `consume`, else a `check`.
    pub fn decided(&self, rule: &str, consume: bool, allowed: bool) {
        let labels = decision(rule, consume, allowed);
        self.inner.decisions.get_or_create(&labels).inc();
    }

    /// Decisions of `rule` so far, by op and outcome.
    pub fn decisions(&self, rule: &str, consume: bool, allowed: bool) -> u64 {
        let labels = decision(rule, consume, allowed);
        self.inner.decisions.get_or_create(&labels).get()
    }

    /// Counts a refused input.
    pub fn rejected(&self, why: Rejected) {
        self.reason(why).inc();
    }

    /// Inputs refused for `why` so far.
    pub fn rejections(&self, why: Rejected) -> u64 {
        self.reason(why).get()
    }

    fn reason(&self, why: Rejected) -> Counter {
        let reason = why.as_str();
        self.inner
            .rejected
            .get_or_create_owned(&ReasonLabel { reason })
    }

    /// Counts a backend error of `kind` (a [`LimitError::kind`](crate::LimitError::kind)).
    pub fn error(&self, kind: &'static str) {
        self.kind(kind).inc();
    }

    /// Backend errors of `kind` so far.
    pub fn errors(&self, kind: &'static str) -> u64 {
        self.kind(kind).get()
    }

    fn kind(&self, kind: &'static str) -> Counter {
        self.inner.errors.get_or_create_owned(&KindLabel { kind })
    }

    /// Counts a key the memory backend evicted for room.
    pub fn evicted(&self) {
        self.inner.evictions.inc();
    }

    /// Keys evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.get()
    }

    /// Adds every metric to `registry` under its `plexus_limits_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        registry.register(
            "plexus_limits_decisions",
            "Limiter decisions by rule, op (check, acquire) and outcome (allowed, limited)",
            i.decisions.clone(),
        );
        registry.register(
            "plexus_limits_rejected",
            "Limiter calls refused for bad input, by reason",
            i.rejected.clone(),
        );
        registry.register(
            "plexus_limits_errors",
            "Limiter backend operations that failed, by kind",
            i.errors.clone(),
        );
        registry.register(
            "plexus_limits_evictions",
            "Keys the in-process limiter evicted for room (forgetting what they took)",
            i.evictions.clone(),
        );
    }
}
