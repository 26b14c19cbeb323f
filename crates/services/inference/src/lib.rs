//! The InferenceEngine family: one gateway to every LLM, inside the node.
//!
//! Callers name a model or an alias; the engine sends the request to the alias's
//! deployments (a provider and a model there) in order, balanced among equals,
//! each behind its own circuit breaker, retrying what a provider asks to retry
//! after the `Retry-After` it gives; it accounts tokens and cost from what each
//! answer reports (or estimates them, and says so) and refuses a caller whose
//! budget is spent. Requests and answers are OpenAI chat-completions JSON, kept raw
//! so fields a provider adds pass through.
//!
//! - `config`: the `[inference]` section ([`InferenceConfig`]).
//! - [`provider`]: the [`Provider`] trait and one module per wire format (OpenAI
//!   compatible, Anthropic Messages, Gemini, Ollama native).
//! - [`Inference`]: the engine (fallback, breakers, retries, balancing, usage,
//!   cost, budgets, spend records).
//! - the response cache: deterministic requests' answers, on the node's `cache`
//!   service when it has one, else in process; a hit is marked `plexus.cache`.
//! - [`InferenceService`]: the `inference.*` methods (`chat`, `models`).
//! - [`http::router`]: `POST /v1/chat/completions` and `GET /v1/models`, which the
//!   gateway serves behind its tokens (see [`InferenceFamily`]).
//! - [`InferenceMetrics`]: its counters, named `plexus_inference_*`.
//! - `testing` (feature `test-util`): fake providers, real HTTP servers on loopback.
//!
//! ## Feature flags
//! - `test-util`: the fake providers ([`testing`]).
//! - `tls`: HTTPS to hosted providers (reqwest with rustls).

mod cache;
pub mod config;
mod engine;
mod error;
mod family;
pub mod http;
mod metrics;
pub mod provider;
mod service;

#[cfg(feature = "test-util")]
pub mod testing;

pub use config::{
    ApiKey, CacheSettings, DeploymentConfig, InferenceConfig, Kind, Price, ProviderConfig,
};
pub use engine::{AnswerStream, Inference, Spend, cost, estimate};
pub use error::{InferenceError, ProviderError};
pub use family::InferenceFamily;
pub use metrics::InferenceMetrics;
pub use provider::Provider;
pub use service::{Assembled, InferenceService, STREAM_PREFIX};
