//! The `[redis]` section: one server for every family that uses Redis, read and
//! checked so that a problem is named by its full path (`redis.url`).

use plexus_config::{FieldErrors, Validate};
use serde::{Deserialize, Serialize};

/// The section's name.
pub const SECTION: &str = "redis";

/// `[redis]`: where Redis is and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `redis+unix:///path`); default
    /// `redis://127.0.0.1:6379`.
    pub url: String,
    /// How long one connection attempt may take, in milliseconds (default 1,000).
    pub connect_timeout_ms: u64,
    /// How long a command may wait for its reply, in milliseconds (default 1,000).
    pub response_timeout_ms: u64,
    /// How many more times a lost connection is tried, with backoff, before the
    /// commands waiting on it fail (default 1); the next command tries again.
    pub reconnect_retries: usize,
    /// Put before every key Plexus writes (default `plexus:`); each family adds its
    /// own (`plexus:cache:`), so several nodes or tests can share one server apart.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            connect_timeout_ms: 1_000,
            response_timeout_ms: 1_000,
            reconnect_retries: 1,
            key_prefix: "plexus:".to_owned(),
        }
    }
}

impl RedisConfig {
    /// The defaults with another URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// The longest key prefix, in bytes.
pub const MAX_KEY_PREFIX_LEN: usize = 128;

impl Validate for RedisConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .non_empty("url", &self.url)
            .range("connect_timeout_ms", self.connect_timeout_ms, 1..=600_000)
            .range("response_timeout_ms", self.response_timeout_ms, 1..=600_000)
            .at_most("reconnect_retries", self.reconnect_retries, 100)
            .at_most("key_prefix", self.key_prefix.len(), MAX_KEY_PREFIX_LEN);
        if !self.url.is_empty()
            && let Err(e) = redis::Client::open(self.url.as_str())
        {
            errors.push("url", format!("is not a Redis URL: {e}"));
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_defaults_are_valid_and_a_bad_url_is_named() {
        assert!(RedisConfig::default().validate().is_ok());
        let bad = RedisConfig::with_url("http://example.com");
        let errors = bad.validate().unwrap_err();
        assert_eq!(errors.first().unwrap().field, "url");
        let bad = RedisConfig {
            response_timeout_ms: 0,
            ..RedisConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().first().unwrap().field,
            "response_timeout_ms"
        );
    }
}
