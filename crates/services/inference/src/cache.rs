//! The response cache: answers kept under a key derived from the normalised
//! request (object keys sorted, the fields that do not change the answer left out:
//! `stream`, `stream_options`, `user`, `cache`), so the same question costs once.
//!
//! Only deterministic requests are cached (`temperature` 0, one choice), unless the
//! request says `"cache": true` or `[inference.cache] nondeterministic = true`;
//! `"cache": false` turns it off for a request. Answers are kept on the node's
//! `cache` service (its `default` namespace, key `inference:<hash>`) when the node
//! has one, so nodes sharing a Redis share answers; otherwise in process (moka,
//! `max_entries`, `ttl_ms`). Streams are not cached. A hit is marked
//! `plexus.cache = "hit"` and costs nothing.

use std::hash::BuildHasher;
use std::time::Duration;

use plexus_core::CallContext;
use plexus_node::Node;
use serde_json::{Map, Value, json};

use crate::config::CacheSettings;

/// Fields that never change an answer.
const IGNORED: [&str; 4] = ["stream", "stream_options", "user", "cache"];

/// Answers by request.
#[derive(Debug)]
pub(crate) struct ResponseCache {
    settings: CacheSettings,
    local: moka::sync::Cache<String, Value>,
}

impl ResponseCache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        let local = moka::sync::Cache::builder()
            .max_capacity(settings.max_entries)
            .time_to_live(Duration::from_millis(settings.ttl_ms))
            .build();
        Self { settings, local }
    }

    /// The key of `body` when it may be cached.
    pub(crate) fn key(&self, body: &Value) -> Option<String> {
        if !self.settings.enabled {
            return None;
        }
        let asked = body.get("cache").and_then(Value::as_bool);
        let deterministic = body.get("temperature").and_then(Value::as_f64) == Some(0.0)
            && body.get("n").and_then(Value::as_u64).unwrap_or(1) == 1;
        let wanted = match asked {
            Some(asked) => asked,
            None => deterministic || self.settings.nondeterministic,
        };
        if !wanted {
            return None;
        }
        let text = normalised(body).to_string();
        // Two fixed seeds: the same key on every node and every run.
        let a = foldhash::quality::FixedState::with_seed(0x5eed_0001).hash_one(&text);
        let b = foldhash::quality::FixedState::with_seed(0x5eed_0002).hash_one(&text);
        Some(format!("inference:{a:016x}{b:016x}"))
    }

    /// The answer kept under `key`.
    pub(crate) async fn get(&self, node: Option<&Node>, key: &str) -> Option<Value> {
        match node.filter(|n| has_cache(n)) {
            Some(node) => {
                let found = node
                    .call("cache.get", json!({"key": key}), CallContext::new())
                    .await
                    .ok()?;
                found.get("found").and_then(Value::as_bool).filter(|f| *f)?;
                found.get("value").cloned()
            }
            None => self.local.get(key),
        }
    }

    /// Keeps `answer` under `key`.
    pub(crate) async fn put(&self, node: Option<&Node>, key: String, answer: &Value) {
        match node.filter(|n| has_cache(n)) {
            Some(node) => {
                let params = json!({"key": key, "value": answer, "ttl_ms": self.settings.ttl_ms});
                if let Err(error) = node.call("cache.set", params, CallContext::new()).await {
                    tracing::debug!(%error, "inference answer not cached");
                }
            }
            None => self.local.insert(key, answer.clone()),
        }
    }
}

/// Whether the node serves the `cache` service.
fn has_cache(node: &Node) -> bool {
    !node.registry().instances_named("cache").is_empty()
}

/// `body` with sorted keys, whole numbers written alike, and without the fields that never change an answer.
fn normalised(body: &Value) -> Value {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&o[k])))
                        .collect::<Map<_, _>>(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            // `0.0` and `0` ask the same.
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => json!(f as i64),
                _ => v.clone(),
            },
            other => other.clone(),
        }
    }
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        for k in IGNORED {
            o.remove(k);
        }
    }
    sorted(&body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_deterministic_or_asked_requests_have_a_key_and_order_does_not_matter() {
        let cache = ResponseCache::new(CacheSettings::default());
        let a = json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "x"}], "stream": true});
        let b = json!({"messages": [{"content": "x", "role": "user"}], "temperature": 0.0, "model": "m", "user": "u"});
        assert_eq!(cache.key(&a), cache.key(&b));
        assert!(cache.key(&a).is_some());
        assert!(
            cache
                .key(&json!({"model": "m", "temperature": 0.7}))
                .is_none()
        );
        assert!(
            cache.key(&json!({"model": "m"})).is_none(),
            "the default temperature is not 0"
        );
        assert!(
            cache
                .key(&json!({"model": "m", "temperature": 0.7, "cache": true}))
                .is_some()
        );
        assert!(
            cache
                .key(&json!({"model": "m", "temperature": 0, "cache": false}))
                .is_none()
        );
        assert!(
            cache
                .key(&json!({"model": "m", "temperature": 0, "n": 2}))
                .is_none()
        );
        assert_ne!(
            cache.key(&a),
            cache.key(&json!({"model": "n", "temperature": 0, "messages": []}))
        );
    }
}
