//! [`RedisStore`]: entries on Redis/Valkey, shared by every node that uses the same
//! server and key prefix, optionally with a local tier in front.
//!
//! Each entry is one string key, `{prefix}cache:{namespace}:{key}`, written with
//! `SET … PX ttl`: a header line with the load time in milliseconds (for early
//! refresh), then the value as JSON. A read is `GET` and `PTTL` in one pipeline;
//! `get_many` is one pipeline of them all. Prefix invalidation walks the keys with
//! `SCAN MATCH` (the prefix's glob characters escaped) and removes them with
//! `UNLINK`. The loader lease is `{prefix}cache-lease:{namespace}:{key}`, taken with
//! `SET NX PX` and given back by a script that deletes it only if it still holds
//! this taker's token.
//!
//! **Two-tier** (`two_tier = true`): a local moka tier in front of Redis, kept
//! coherent by messages on the channel `{prefix}cache:invalidate`. Every Redis
//! store (with a local tier or not) announces each write, delete or invalidation in
//! the same pipeline as the command itself, and every node with a local tier evicts
//! the named key or prefix from it; see
//! [`tier`](self::tier) for what happens when the subscription is lost.

mod tier;

use std::time::Duration;

use plexus_redis::Redis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CacheError;
use crate::config::CacheConfig;
use crate::metrics::CacheMetrics;
use crate::store::{CacheStore, Entry, LocalStats};

use self::tier::Tier;

/// Deletes a lease only if it still holds the caller's token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 500;

/// The TTL reported for a key Redis keeps without one (never written by Plexus).
const NO_EXPIRY: Duration = Duration::from_secs(86_400);

/// A message on the invalidation channel: a key or a prefix, from a node.
#[derive(Debug, Serialize, Deserialize)]
struct Invalidation {
    /// The sending node's tier id (a node skips its own messages).
    o: String,
    /// A full key to evict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// A full-key prefix to evict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
}

/// Entries on Redis.
pub struct RedisStore {
    redis: Redis,
    /// `{prefix}cache:`.
    keys: String,
    /// `{prefix}cache-lease:`.
    leases: String,
    release: redis::Script,
    /// `{prefix}cache:invalidate`.
    channel: String,
    /// This store's id in invalidation messages.
    origin: String,
    tier: Option<Tier>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .field("two_tier", &self.tier.is_some())
            .finish_non_exhaustive()
    }
}

/// `text` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An entry as stored: `{delta_ms}\n{json}`.
fn encode(entry: &Entry, json: &[u8]) -> Vec<u8> {
    let header = u64::try_from(entry.delta.as_millis())
        .unwrap_or(u64::MAX)
        .to_string();
    let mut out = Vec::with_capacity(header.len() + 1 + json.len());
    out.extend_from_slice(header.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(json);
    out
}

/// A stored entry with the time Redis says it has left; `None` for a key that is
/// gone or not one of ours.
fn decode(key: &str, data: Option<Vec<u8>>, pttl: i64) -> Option<Entry> {
    let data = data?;
    let ttl = match pttl {
        -2 => return None,
        ms if ms < 0 => NO_EXPIRY,
        ms => Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    };
    let split = data.iter().position(|&b| b == b'\n')?;
    let (header, json) = (&data[..split], &data[split + 1..]);
    let delta = std::str::from_utf8(header).ok()?.parse::<u64>().ok();
    let value = serde_json::from_slice::<Value>(json).ok();
    match (delta, value) {
        (Some(delta), Some(value)) => Some(Entry {
            value,
            size: json.len(),
            ttl,
            delta: Duration::from_millis(delta),
        }),
        _ => {
            tracing::warn!(
                key,
                "a cache key holds something that is not a cache entry; read as a miss"
            );
            None
        }
    }
}

impl RedisStore {
    /// A store on `redis` held to `config` (a local tier when `config.two_tier`),
    /// counting in `metrics`. With a local tier, it subscribes in the background.
    pub fn new(redis: Redis, config: &CacheConfig, metrics: CacheMetrics) -> Self {
        let channel = redis.key("cache:invalidate");
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let tier = config.two_tier.then(|| {
            Tier::start(
                redis.clone(),
                channel.clone(),
                origin.clone(),
                config,
                metrics,
            )
        });
        Self {
            keys: redis.key("cache:"),
            leases: redis.key("cache-lease:"),
            redis,
            release: redis::Script::new(RELEASE),
            channel,
            origin,
            tier,
        }
    }

    /// Whether the local tier (if any) is subscribed and in use.
    pub fn local_tier_live(&self) -> bool {
        self.tier.as_ref().is_some_and(Tier::live)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.keys)
    }

    /// The invalidation message for a key or a prefix. Every Redis store sends them,
    /// local tier or not, so nodes with local tiers stay coherent with nodes
    /// without.
    fn announce(&self, key: Option<&str>, prefix: Option<&str>) -> Option<(String, String)> {
        let message = Invalidation {
            o: self.origin.clone(),
            k: key.map(str::to_owned),
            p: prefix.map(str::to_owned),
        };
        let text = serde_json::to_string(&message).ok()?;
        Some((self.channel.clone(), text))
    }

    async fn fetch(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let sent = full.clone();
        let replies: Vec<(Option<Vec<u8>>, i64)> = self
            .redis
            .run(move |mut c| async move {
                let mut pipe = redis::pipe();
                for key in &sent {
                    pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
                }
                let flat: Vec<redis::Value> = pipe.query_async(&mut c).await?;
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(data), Some(pttl)) = (it.next(), it.next()) {
                    pairs.push((
                        redis::from_redis_value::<Option<Vec<u8>>>(data)?,
                        redis::from_redis_value::<i64>(pttl)?,
                    ));
                }
                Ok(pairs)
            })
            .await?;
        Ok(replies
            .into_iter()
            .zip(&full)
            .map(|((data, pttl), key)| decode(key, data, pttl))
            .collect())
    }
}

#[plexus_core::async_trait]
impl CacheStore for RedisStore {
    fn backend(&self) -> &'static str {
        if self.tier.is_some() {
            "redis+local"
        } else {
            "redis"
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        if let Some(tier) = &self.tier
            && let Some(entry) = tier.read(key)
        {
            return Ok(Some(entry));
        }
        let epoch = self.tier.as_ref().map(Tier::epoch);
        let found = self.fetch(&[key.to_owned()]).await?.pop().flatten();
        if let (Some(tier), Some(epoch), Some(entry)) = (&self.tier, epoch, &found) {
            tier.keep(key, entry.clone(), epoch);
        }
        Ok(found)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError> {
        let Some(tier) = &self.tier else {
            return self.fetch(keys).await;
        };
        let mut found: Vec<Option<Entry>> = keys.iter().map(|k| tier.read(k)).collect();
        let missing: Vec<String> = keys
            .iter()
            .zip(&found)
            .filter(|(_, e)| e.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let epoch = tier.epoch();
        let mut fetched = self.fetch(&missing).await?.into_iter();
        for (key, slot) in keys.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                *slot = fetched.next().flatten();
                if let Some(entry) = slot {
                    tier.keep(key, entry.clone(), epoch);
                }
            }
        }
        Ok(found)
    }

    async fn set(&self, key: &str, entry: Entry, json: &[u8]) -> Result<(), CacheError> {
        let full = self.key(key);
        let data = encode(&entry, json);
        let ttl_ms = u64::try_from(entry.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let announce = self.announce(Some(key), None);
        self.redis
            .run(move |mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(&full)
                    .arg(data)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
                if let Some((channel, message)) = &announce {
                    pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await?;
        if let Some(tier) = &self.tier {
            tier.keep(key, entry, tier.epoch());
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let full = self.key(key);
        let announce = self.announce(Some(key), None);
        let (removed,): (u64,) = self
            .redis
            .run(move |mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("DEL").arg(&full);
                if let Some((channel, message)) = &announce {
                    pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
                }
                pipe.query_async(&mut c).await
            })
            .await?;
        if let Some(tier) = &self.tier {
            tier.forget(key);
        }
        Ok(removed > 0)
    }

    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (pattern, at) = (pattern.clone(), cursor);
            let (next, keys): (u64, Vec<String>) = self
                .redis
                .run(move |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(at)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let n: u64 = self
                    .redis
                    .run(move |mut c| async move {
                        redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await
                    })
                    .await?;
                removed += n;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if let Some((channel, message)) = self.announce(None, Some(prefix)) {
            self.redis
                .run(move |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&message)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await?;
        }
        if let Some(tier) = &self.tier {
            tier.forget_prefix(prefix);
        }
        Ok(removed)
    }

    async fn lease(&self, key: &str, ttl: Duration) -> Result<Option<String>, CacheError> {
        let lease = format!("{}{key}", self.leases);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let sent = token.clone();
        let granted: Option<String> = self
            .redis
            .run(move |mut c| async move {
                redis::cmd("SET")
                    .arg(&lease)
                    .arg(&sent)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(granted.map(|_| token))
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), CacheError> {
        let lease = format!("{}{key}", self.leases);
        let token = token.to_owned();
        let script = self.release.clone();
        self.redis
            .run(move |mut c| async move {
                let mut call = script.key(&lease);
                call.arg(&token);
                call.invoke_async::<i64>(&mut c).await
            })
            .await?;
        Ok(())
    }

    fn local(&self) -> Option<LocalStats> {
        self.tier.as_ref().map(Tier::occupancy)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn entries_round_trip_and_foreign_data_is_a_miss() {
        let entry = Entry {
            value: serde_json::json!({"a": [1, "x\ny"]}),
            size: 0,
            ttl: Duration::from_secs(5),
            delta: Duration::from_millis(42),
        };
        let json = serde_json::to_vec(&entry.value).unwrap();
        let stored = encode(&entry, &json);
        let read = decode("k", Some(stored), 1_500).unwrap();
        assert_eq!(read.value, entry.value);
        assert_eq!(read.delta, Duration::from_millis(42));
        assert_eq!(read.ttl, Duration::from_millis(1_500));
        assert_eq!(read.size, json.len());
        assert!(decode("k", Some(b"plain text".to_vec()), 100).is_none());
        assert!(decode("k", Some(b"7\n{not json".to_vec()), 100).is_none());
        assert!(decode("k", None, -2).is_none());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
