//! The inference metrics, defined once here with their Prometheus names. Every
//! `model` label is an alias or deployment named in configuration, so their number
//! is bounded by it.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `plexus_inference_requests_total` | counter | `model`, `outcome`: `ok`, `error`, `cached` |
//! | `plexus_inference_tokens_total` | counter | `model` (the deployment's), `kind`: `prompt`, `completion` |
//! | `plexus_inference_estimated_tokens_total` | counter | `model`, `kind` (the part of the above that was estimated) |
//! | `plexus_inference_cost_usd_total` | counter (float) | `model` |
//! | `plexus_inference_deployment_failures_total` | counter | `deployment`, `kind`: `status_429`, `status_5xx`, `connection`, `timeout`, `malformed`, `in_stream`, `open` |
//! | `plexus_inference_fallbacks_total` | counter | `model` |
//! | `plexus_inference_midstream_failures_total` | counter | `deployment` |
//! | `plexus_inference_budget_refusals_total` | counter | |
//! | `plexus_inference_spend_dropped_total` | counter | |

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::ProviderError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Tokens {
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Model {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    deployment: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Deployment {
    deployment: String,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Family<Outcome, Counter>,
    tokens: Family<Tokens, Counter>,
    estimated: Family<Tokens, Counter>,
    cost: Family<Model, Counter<f64, AtomicU64>>,
    failures: Family<Failure, Counter>,
    fallbacks: Family<Model, Counter>,
    midstream: Family<Deployment, Counter>,
    budget_refusals: Counter,
    spend_dropped: Counter,
}

/// The inference counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct InferenceMetrics {
    inner: Arc<Inner>,
}

impl InferenceMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn request(&self, model: &str, outcome: &'static str) {
        self.inner
            .requests
            .get_or_create(&Outcome {
                model: model.to_owned(),
                outcome,
            })
            .inc();
    }

    pub(crate) fn usage(
        &self,
        model: &str,
        prompt: u64,
        completion: u64,
        estimated: bool,
        cost: f64,
    ) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            let label = Tokens {
                model: model.to_owned(),
                kind,
            };
            self.inner.tokens.get_or_create(&label).inc_by(n);
            if estimated {
                self.inner.estimated.get_or_create(&label).inc_by(n);
            }
        }
        self.inner
            .cost
            .get_or_create(&Model {
                model: model.to_owned(),
            })
            .inc_by(cost);
    }

    pub(crate) fn failure(&self, deployment: &str, error: Option<&ProviderError>) {
        let kind = match error {
            None => "open",
            Some(ProviderError::Status { status: 429, .. }) => "status_429",
            Some(ProviderError::Status { status, .. }) if *status >= 500 => "status_5xx",
            Some(ProviderError::Status { .. }) => "status_4xx",
            Some(ProviderError::Connection(_)) => "connection",
            Some(ProviderError::Timeout) => "timeout",
            Some(ProviderError::Malformed(_)) => "malformed",
            Some(ProviderError::InStream(_)) => "in_stream",
        };
        self.inner
            .failures
            .get_or_create(&Failure {
                deployment: deployment.to_owned(),
                kind,
            })
            .inc();
    }

    pub(crate) fn fallback(&self, model: &str) {
        self.inner
            .fallbacks
            .get_or_create(&Model {
                model: model.to_owned(),
            })
            .inc();
    }

    pub(crate) fn midstream(&self, deployment: &str) {
        self.inner
            .midstream
            .get_or_create(&Deployment {
                deployment: deployment.to_owned(),
            })
            .inc();
    }

    pub(crate) fn budget_refused(&self) {
        self.inner.budget_refusals.inc();
    }

    pub(crate) fn spend_dropped(&self) {
        self.inner.spend_dropped.inc();
    }

    /// Spend records dropped because the queue was full.
    pub fn spend_dropped_count(&self) -> u64 {
        self.inner.spend_dropped.get()
    }

    /// Tokens counted for `model` of `kind` (`prompt`, `completion`).
    pub fn tokens(&self, model: &str, kind: &'static str) -> u64 {
        self.inner
            .tokens
            .get_or_create(&Tokens {
                model: model.to_owned(),
                kind,
            })
            .get()
    }

    /// Registers the counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        registry.register(
            "plexus_inference_requests",
            "Chat requests by model and outcome",
            i.requests.clone(),
        );
        registry.register(
            "plexus_inference_tokens",
            "Tokens by model and kind",
            i.tokens.clone(),
        );
        registry.register(
            "plexus_inference_estimated_tokens",
            "Tokens estimated because the answer reported none",
            i.estimated.clone(),
        );
        registry.register(
            "plexus_inference_cost_usd",
            "Cost in USD by model",
            i.cost.clone(),
        );
        registry.register(
            "plexus_inference_deployment_failures",
            "Failed requests to a deployment, by kind",
            i.failures.clone(),
        );
        registry.register(
            "plexus_inference_fallbacks",
            "Requests answered by a later deployment",
            i.fallbacks.clone(),
        );
        registry.register(
            "plexus_inference_midstream_failures",
            "Streams that failed after their first content",
            i.midstream.clone(),
        );
        registry.register(
            "plexus_inference_budget_refusals",
            "Requests refused for a spent budget",
            i.budget_refusals.clone(),
        );
        registry.register(
            "plexus_inference_spend_dropped",
            "Spend records dropped on a full queue",
            i.spend_dropped.clone(),
        );
    }
}
