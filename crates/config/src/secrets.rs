//! Secrets in configuration shown to people: values under a key that names a secret
//! (`token`, `password`, `secret`, `api_key`, `credential`) are masked, and so is the
//! password of a URL (`postgres://u:•••@h`). `node.config_get`, the CLI and the
//! operator's view show configuration through [`redact`]; the configuration in force
//! is unchanged.

use serde_json::Value;

/// The mask that replaces a secret.
pub const MASK: &str = "•••";

/// The words that make a key's value a secret.
const SECRET_KEYS: [&str; 5] = ["token", "password", "secret", "api_key", "credential"];

/// Whether a value under `key` is a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// `text` with a URL's password masked; other text unchanged.
pub fn mask_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{MASK}@{host}"))
}

/// The leaf `value` at dotted `path`, as people may see it.
pub fn redact_leaf(path: &str, value: &Value) -> Value {
    let key = path.rsplit('.').next().unwrap_or(path);
    if is_secret_key(key) {
        return Value::String(MASK.to_owned());
    }
    match value {
        Value::String(s) => mask_url(s).map_or_else(|| value.clone(), Value::String),
        _ => value.clone(),
    }
}

/// `value` with every secret in it masked, at any depth; `key` is the key it sits
/// under (the last segment of its path, or empty at the top).
pub fn redact(key: &str, value: &Value) -> Value {
    match value {
        // Objects and lists are walked, so what sits beside a secret (a token's
        // name and scopes) stays readable; every leaf under a secret key is masked.
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(k, v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(key, v)).collect()),
        Value::Null => Value::Null,
        _ if !key.is_empty() && is_secret_key(key) => Value::String(MASK.to_owned()),
        Value::String(s) => mask_url(s).map_or_else(|| value.clone(), Value::String),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth_and_urls_keep_their_user() {
        let config = json!({
            "gateway": {"tokens": [{"name": "ci", "token": "abc", "scopes": ["admin"]}]},
            "store": {"url": "postgres://app:hunter2@db:5432/x", "schema": "s"},
            "inference": {"providers": {"x": {"api_key": "sk-1", "api_key_env": "KEY"}}},
            "node": {"name": "a"},
        });
        let shown = redact("", &config);
        assert_eq!(shown["gateway"]["tokens"][0]["token"], MASK);
        assert_eq!(shown["gateway"]["tokens"][0]["name"], "ci");
        assert_eq!(shown["store"]["url"], "postgres://app:•••@db:5432/x");
        assert_eq!(shown["inference"]["providers"]["x"]["api_key"], MASK);
        assert_eq!(shown["node"]["name"], "a");
        assert!(!shown.to_string().contains("hunter2"));
        assert_eq!(redact("token", &json!("t")), json!(MASK));
        assert_eq!(redact_leaf("a.password", &json!(1)), json!(MASK));
        assert_eq!(redact_leaf("a.b", &json!("plain")), json!("plain"));
    }
}
