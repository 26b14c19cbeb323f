//! The family's configuration section, `[inference]`: the providers (kind, base URL,
//! key), the models callers name (an alias → its ordered deployments), the price
//! table, budgets per caller token, and the bounds (retries, waits, sizes, queues).
//! Problems are named by their full path (`inference.models.fast[1].provider`).
//!
//! ```toml
//! [inference.providers.local]
//! kind = "openai"                      # openai | anthropic | gemini | ollama
//! base_url = "http://127.0.0.1:11434/v1"
//!
//! [inference.providers.claude]
//! kind = "anthropic"
//! base_url = "https://api.anthropic.com"
//! api_key_env = "ANTHROPIC_API_KEY"    # or api_key = "…" (visible to `config get`)
//!
//! [[inference.models.fast]]             # the alias `fast`: tried in order
//! provider = "local"
//! model = "llama3.2"
//! [[inference.models.fast]]
//! provider = "claude"
//! model = "claude-haiku-4-5"
//!
//! [inference.prices."claude-haiku-4-5"]
//! input_per_mtok = 1.0                  # USD per million tokens
//! output_per_mtok = 5.0
//!
//! [inference.budgets]
//! reader = 2.5                          # USD the token `reader` may spend
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section the family reads.
pub const SECTION: &str = "inference";

/// A provider's wire format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// OpenAI chat completions (`POST {base_url}/chat/completions`, SSE): OpenAI,
    /// vLLM, llama.cpp's server, LM Studio, Ollama's `/v1`.
    #[default]
    Openai,
    /// Anthropic Messages (`POST {base_url}/v1/messages`).
    Anthropic,
    /// Google Gemini (`POST {base_url}/v1beta/models/{model}:generateContent`).
    Gemini,
    /// Ollama's native API (`POST {base_url}/api/chat`, streams as NDJSON).
    Ollama,
}

/// An API key: shown as `<redacted>` by `Debug`, never logged.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key, to put in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `[inference.providers.<name>]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Its wire format (default `openai`).
    #[serde(default)]
    pub kind: Kind,
    /// Where it listens (`http://127.0.0.1:11434/v1`, `https://api.anthropic.com`).
    pub base_url: String,
    /// Its key, inline. Prefer `api_key_env`: an inline key is part of the
    /// configuration document, which `config get` shows to admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// The environment variable holding its key, read when the family opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// One deployment of a model: a provider and the model's name there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A key of `[inference.providers]`.
    pub provider: String,
    /// The model's name at that provider.
    pub model: String,
    /// Deployments of an alias are tried by ascending priority; those of equal
    /// priority are balanced (round robin). Default: the position in the list, so a
    /// plain list is a fallback chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// The price of a model, in USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub input_per_mtok: f64,
    /// Per million completion (output) tokens.
    pub output_per_mtok: f64,
}

/// The breaker each deployment has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// How many recent requests it judges by (default 20).
    pub window: u32,
    /// The fewest requests before it may open (default 5).
    pub minimum_calls: u32,
    /// The failure percentage that opens it (default 50).
    pub failure_rate: f64,
    /// How long it stays open before a trial request, in milliseconds (default
    /// 30,000).
    pub wait_in_open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: 20,
            minimum_calls: 5,
            failure_rate: 50.0,
            wait_in_open_ms: 30_000,
        }
    }
}

/// `[inference.cache]`: the response cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Cache answers at all (default true; only deterministic requests, below).
    pub enabled: bool,
    /// Cache requests whose answer may vary (`temperature` absent or above 0)
    /// too (default false); a request's own `"cache": true|false` wins.
    pub nondeterministic: bool,
    /// How long an answer is kept, in milliseconds (default 300,000).
    pub ttl_ms: u64,
    /// Answers kept in process when the node has no `cache` service (default
    /// 10,000).
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            nondeterministic: false,
            ttl_ms: 300_000,
            max_entries: 10_000,
        }
    }
}

/// `[inference]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Run the `inference` service and the `/v1` endpoints (default true).
    pub enabled: bool,
    /// The providers, by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The models callers name: an alias and its deployments. A caller may also
    /// name `provider/model` directly.
    pub models: BTreeMap<String, Vec<DeploymentConfig>>,
    /// The price table, by the model's name at its provider (or by alias).
    pub prices: BTreeMap<String, Price>,
    /// Budgets in USD per caller token name; a token without one is not limited.
    pub budgets: BTreeMap<String, f64>,
    /// Retries of one deployment after a retryable failure (429, 5xx, connection)
    /// before the next deployment is tried (default 1).
    pub retries: u32,
    /// The longest `Retry-After` honoured, in milliseconds (default 10,000): a
    /// longer wait moves on to the next deployment at once.
    pub max_retry_after_ms: u64,
    /// The pause before a retry when the provider named none, in milliseconds
    /// (default 200); it doubles with each retry.
    pub retry_backoff_ms: u64,
    /// The longest one request to a provider may take (a stream: until its first
    /// chunk, and between chunks), in milliseconds (default 120,000).
    pub timeout_ms: u64,
    /// The largest request accepted, in bytes (default 4 MiB).
    pub max_request_bytes: usize,
    /// The largest answer (or stream event) read from a provider, in bytes
    /// (default 16 MiB).
    pub max_answer_bytes: usize,
    /// Spend records waiting to be written (default 1,024); beyond it they are
    /// dropped and counted in `plexus_inference_spend_dropped_total`.
    pub spend_queue: usize,
    /// The breaker of each deployment.
    pub breaker: BreakerSettings,
    /// The response cache.
    pub cache: CacheSettings,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            prices: BTreeMap::new(),
            budgets: BTreeMap::new(),
            retries: 1,
            max_retry_after_ms: 10_000,
            retry_backoff_ms: 200,
            timeout_ms: 120_000,
            max_request_bytes: 4 << 20,
            max_answer_bytes: 16 << 20,
            spend_queue: 1_024,
            breaker: BreakerSettings::default(),
            cache: CacheSettings::default(),
        }
    }
}

impl InferenceConfig {
    /// The longest request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Validate for InferenceConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .range("retries", self.retries, 0..=10)
            .range("max_retry_after_ms", self.max_retry_after_ms, 0..=600_000)
            .range("retry_backoff_ms", self.retry_backoff_ms, 0..=60_000)
            .range("timeout_ms", self.timeout_ms, 1..=3_600_000)
            .range(
                "max_request_bytes",
                self.max_request_bytes,
                1_024..=(256 << 20),
            )
            .range("max_answer_bytes", self.max_answer_bytes, 1_024..=(1 << 30))
            .range("spend_queue", self.spend_queue, 1..=1_000_000)
            .range("breaker.window", self.breaker.window, 1..=10_000)
            .range(
                "breaker.minimum_calls",
                self.breaker.minimum_calls,
                1..=10_000,
            )
            .check(
                self.breaker.failure_rate > 0.0 && self.breaker.failure_rate <= 100.0,
                "breaker.failure_rate",
                || "must be in (0, 100]".to_owned(),
            )
            .range(
                "breaker.wait_in_open_ms",
                self.breaker.wait_in_open_ms,
                1..=86_400_000,
            )
            .range("cache.ttl_ms", self.cache.ttl_ms, 1..=(30 * 86_400_000))
            .range("cache.max_entries", self.cache.max_entries, 1..=100_000_000);
        for (name, p) in &self.providers {
            errors.check(
                p.base_url.starts_with("http://") || p.base_url.starts_with("https://"),
                &format!("providers.{name}.base_url"),
                || "must be an http:// or https:// URL".to_owned(),
            );
        }
        for (alias, deployments) in &self.models {
            errors.check(!deployments.is_empty(), &format!("models.{alias}"), || {
                "must name at least one deployment".to_owned()
            });
            for (i, d) in deployments.iter().enumerate() {
                errors.check(
                    self.providers.contains_key(&d.provider),
                    &format!("models.{alias}[{i}].provider"),
                    || format!("`{}` is not a key of inference.providers", d.provider),
                );
                errors.non_empty(&format!("models.{alias}[{i}].model"), &d.model);
            }
        }
        for (model, price) in &self.prices {
            errors.check(
                price.input_per_mtok >= 0.0 && price.output_per_mtok >= 0.0,
                &format!("prices.{model}"),
                || "prices must not be negative".to_owned(),
            );
        }
        for (token, budget) in &self.budgets {
            errors.check(*budget >= 0.0, &format!("budgets.{token}"), || {
                "must not be negative".to_owned()
            });
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::{NodeSection, SectionFamily};
    use serde_json::json;

    #[test]
    fn problems_are_named_by_their_full_path() {
        let provider = json!({"p": {"base_url": "http://127.0.0.1:1"}});
        let cases = [
            (
                json!({"providers": {"p": {"kind": "cohere", "base_url": "http://x"}}}),
                "inference.providers.p.kind",
            ),
            (
                json!({"providers": {"p": {"base_url": "ftp://x"}}}),
                "inference.providers.p.base_url",
            ),
            (
                json!({"providers": provider, "models": {"a": []}}),
                "inference.models.a",
            ),
            (
                json!({"providers": provider, "models": {"a": [{"provider": "q", "model": "m"}]}}),
                "inference.models.a[0].provider",
            ),
            (
                json!({"providers": provider, "models": {"a": [{"provider": "p", "model": ""}]}}),
                "inference.models.a[0].model",
            ),
            (
                json!({"prices": {"m": {"input_per_mtok": -1.0, "output_per_mtok": 0.0}}}),
                "inference.prices.m",
            ),
            (
                json!({"budgets": {"alice": -1.0}}),
                "inference.budgets.alice",
            ),
            (json!({"spend_queue": 0}), "inference.spend_queue"),
            (json!({"unknown": 1}), "inference"),
        ];
        let node = NodeSection::default();
        for (section, key) in cases {
            let err = crate::InferenceFamily
                .settings(Some(&section), &node)
                .unwrap_err();
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
        assert!(crate::InferenceFamily.settings(None, &node).is_ok());
    }
}
