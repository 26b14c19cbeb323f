//! [`RedisBackend`]: each key's state on Redis/Valkey, shared by every node on the
//! same server and key prefix, so N nodes enforce one limit.
//!
//! Each algorithm is one Lua script ([`sliding_window.lua`](self) and `gcra.lua`
//! beside this file), so a decision is one round trip and atomic. The scripts read
//! the time with `redis.call('TIME')`: the server's clock, so nodes whose clocks
//! disagree still agree on every decision. A key is
//! `{prefix}limits:{sw|gcra}:{rule}:{key}` (a hash for a sliding window, a string
//! for GCRA), written only when units are taken and expiring once it no longer
//! matters (the end of the next window; the theoretical arrival time).

use plexus_redis::Redis;

use crate::LimitError;
use crate::backend::{Ask, LimiterBackend};
use crate::config::Algorithm;
use crate::rule::{Raw, Rule};

/// State on Redis.
#[derive(Clone)]
pub struct RedisBackend {
    redis: Redis,
    sliding_window: redis::Script,
    gcra: redis::Script,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// The sliding window's script (KEYS: the key; ARGV: limit, window in ms, cost,
    /// 1 to consume), for clients and benchmarks that speak to the same keys.
    pub const SLIDING_WINDOW_SCRIPT: &'static str = include_str!("sliding_window.lua");
    /// GCRA's script (KEYS: the key; ARGV: interval in µs, burst, cost, 1 to
    /// consume).
    pub const GCRA_SCRIPT: &'static str = include_str!("gcra.lua");

    /// State on `redis`, under its key prefix.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            sliding_window: redis::Script::new(Self::SLIDING_WINDOW_SCRIPT),
            gcra: redis::Script::new(Self::GCRA_SCRIPT),
        }
    }

    fn key(&self, rule: &Rule, key: &str) -> String {
        let tag = match rule.algorithm {
            Algorithm::SlidingWindow => "sw",
            Algorithm::Gcra => "gcra",
        };
        self.redis.key(&format!("limits:{tag}:{}:{key}", rule.name))
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[plexus_core::async_trait]
impl LimiterBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn decide(&self, ask: Ask<'_>) -> Result<Raw, LimitError> {
        let key = self.key(ask.rule, ask.key);
        let rule = ask.rule;
        let (script, first, second) = match rule.algorithm {
            Algorithm::SlidingWindow => (&self.sliding_window, rule.limit, rule.window_ms),
            Algorithm::Gcra => (&self.gcra, rule.interval_us(), rule.burst),
        };
        let consume = u8::from(ask.consume);
        let (allowed, remaining, retry_after, reset_after): (i64, i64, i64, i64) = self
            .redis
            .run(|mut c| async move {
                let mut call = script.key(&key);
                call.arg(first).arg(second).arg(ask.cost).arg(consume);
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(Raw {
            allowed: allowed == 1,
            remaining: count(remaining),
            retry_after: count(retry_after),
            reset_after: count(reset_after),
        })
    }

    async fn reset(&self, rule: &Rule, key: &str) -> Result<bool, LimitError> {
        let key = self.key(rule, key);
        let removed: i64 = self
            .redis
            .run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async(&mut c).await })
            .await?;
        Ok(removed > 0)
    }
}
