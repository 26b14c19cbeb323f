//! What the tests share: engines over fake providers.

use plexus_inference::testing::{FakeProvider, Wire};
use plexus_inference::{Inference, InferenceConfig, InferenceMetrics};
use serde_json::{Value, json};

/// The price every test model has: 1 USD per million prompt tokens, 2 per million
/// completion tokens.
pub fn prices(models: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for m in models {
        map.insert(
            (*m).to_owned(),
            json!({"input_per_mtok": 1.0, "output_per_mtok": 2.0}),
        );
    }
    Value::Object(map)
}

/// The kind name of a wire in configuration.
pub fn kind(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "openai",
        Wire::Anthropic => "anthropic",
        Wire::Gemini => "gemini",
        Wire::Ollama => "ollama",
    }
}

/// A configuration with providers `p0`, `p1`, … (one per fake) and the alias
/// `chain` over their models `m0`, `m1`, … in order, merged with `extra`.
pub fn config(fakes: &[&FakeProvider], extra: Value) -> InferenceConfig {
    let mut providers = serde_json::Map::new();
    let mut chain = Vec::new();
    let mut models = Vec::new();
    for (i, fake) in fakes.iter().enumerate() {
        providers.insert(
            format!("p{i}"),
            json!({"kind": kind(fake.wire()), "base_url": fake.base_url(), "api_key": format!("secret-key-{i}")}),
        );
        chain.push(json!({"provider": format!("p{i}"), "model": format!("m{i}")}));
        models.push(format!("m{i}"));
    }
    let names: Vec<&str> = models.iter().map(String::as_str).collect();
    let mut base = json!({
        "providers": providers,
        "models": {"chain": chain},
        "prices": prices(&names),
        "retry_backoff_ms": 1,
        "breaker": {"window": 4, "minimum_calls": 4, "failure_rate": 50.0, "wait_in_open_ms": 600000},
    });
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    serde_json::from_value(base).unwrap()
}

pub fn engine(config: InferenceConfig) -> Inference {
    use plexus_config::Validate;
    config.validate().unwrap();
    Inference::new(config, InferenceMetrics::new()).unwrap()
}

pub fn request(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]})
}

pub async fn fake(wire: Wire) -> FakeProvider {
    FakeProvider::start(wire).await.unwrap()
}

pub const WIRES: [Wire; 4] = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini, Wire::Ollama];
