//! [`RedisBackend`]: locks on Redis/Valkey, shared by every node that uses the same
//! server and key prefix. Single-instance Redis with fencing tokens, not Redlock:
//! Redlock's safety rests on bounded clock drift and pauses, and a pause past the
//! lease breaks any lease-only scheme; fencing (the token checked by the data the
//! lock guards) is what keeps a paused holder out, and it needs one authority for
//! the token order, which a single server is.
//!
//! A lock is a hash `{prefix}lock:{name}` (`t`: token, `h`: holder) with the lease
//! as its `PEXPIRE`. Each operation is one Lua script, one round trip. The token
//! comes from the counter key `{prefix}lock-token:{name}` (`INCR`), inside the
//! grant's script, raised to the server's clock in microseconds (`TIME`) when the
//! counter is behind it: so after a restart that lost the counter (no persistence,
//! or a failover to a replica behind), tokens still start above every token given
//! before, as long as the server's clock did not go back and fewer than one token
//! per microsecond was given. The counter keys are kept without expiry (one small
//! integer per lock name ever used).

use std::time::Duration;

use plexus_redis::Redis;

use crate::LockError;
use crate::backend::{Attempt, Held, LockBackend, millis};

/// KEYS: lock, counter. ARGV: holder, lease ms. `{1, token}` or `{0, pttl}`.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if floor > t then
  t = floor
  redis.call('SET', KEYS[2], string.format('%.0f', t))
end
redis.call('HSET', KEYS[1], 't', string.format('%.0f', t), 'h', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, t}
";

/// KEYS: lock. ARGV: token, lease ms. 1 when extended.
const EXTEND: &str = r"
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// KEYS: lock. ARGV: token. 1 when released.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS: lock. `{token, holder, pttl}`, or an empty reply when free.
const STATUS: &str = r"
local v = redis.call('HMGET', KEYS[1], 't', 'h')
if not v[1] then return {} end
return {v[1], v[2] or '', redis.call('PTTL', KEYS[1])}
";

/// Locks on Redis.
pub struct RedisBackend {
    redis: Redis,
    acquire: redis::Script,
    extend: redis::Script,
    release: redis::Script,
    status: redis::Script,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// The grant's script (KEYS: the lock, its token counter; ARGV: holder, lease
    /// in ms), for clients and benchmarks that speak to the same keys.
    pub const ACQUIRE_SCRIPT: &'static str = ACQUIRE;
    /// The release's script (KEYS: the lock; ARGV: the token).
    pub const RELEASE_SCRIPT: &'static str = RELEASE;

    /// Locks on `redis`, under its key prefix.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            acquire: redis::Script::new(ACQUIRE),
            extend: redis::Script::new(EXTEND),
            release: redis::Script::new(RELEASE),
            status: redis::Script::new(STATUS),
        }
    }

    fn key(&self, lock: &str) -> String {
        self.redis.key(&format!("lock:{lock}"))
    }

    /// Runs `script` on `keys` with `args`, in one round trip.
    async fn run<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &redis::Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, LockError> {
        Ok(self.redis.eval(script, keys, args).await?)
    }
}

fn positive(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[plexus_core::async_trait]
impl LockBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn try_acquire(
        &self,
        lock: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Attempt, LockError> {
        let keys = vec![
            self.key(lock),
            self.redis.key(&format!("lock-token:{lock}")),
        ];
        let args = vec![holder.to_owned(), millis(lease).to_string()];
        let (granted, n): (i64, i64) = self.run(&self.acquire, keys, args).await?;
        Ok(if granted == 1 {
            Attempt::Granted(u64::try_from(n).unwrap_or(0))
        } else {
            Attempt::Busy(positive(n))
        })
    }

    async fn extend(&self, lock: &str, token: u64, lease: Duration) -> Result<bool, LockError> {
        let args = vec![token.to_string(), millis(lease).to_string()];
        let done: i64 = self.run(&self.extend, vec![self.key(lock)], args).await?;
        Ok(done == 1)
    }

    async fn release(&self, lock: &str, token: u64) -> Result<bool, LockError> {
        let args = vec![token.to_string()];
        let done: i64 = self.run(&self.release, vec![self.key(lock)], args).await?;
        Ok(done == 1)
    }

    async fn status(&self, lock: &str) -> Result<Option<Held>, LockError> {
        let reply: Vec<redis::Value> = self.run(&self.status, vec![self.key(lock)], vec![]).await?;
        let [token, holder, pttl] = reply.as_slice() else {
            return Ok(None);
        };
        let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).ok();
        let token = text(token).and_then(|t| t.parse::<u64>().ok());
        let pttl = redis::from_redis_value_ref::<i64>(pttl).unwrap_or(-2);
        // A key with less than a millisecond left answers PTTL 0 and is still held
        // (an extend would still succeed); -2 is a key gone between the two reads.
        Ok(match token {
            Some(token) if pttl != -2 => Some(Held {
                holder: text(holder).unwrap_or_default(),
                token,
                remaining: positive(pttl).max(Duration::from_millis(1)),
            }),
            _ => None,
        })
    }
}
