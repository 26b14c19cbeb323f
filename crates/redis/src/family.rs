//! [`RedisFamily`]: the `[redis]` section entering the node through the family door,
//! and [`RedisSlot`], through which the families that use Redis share one
//! connection.
//!
//! The section is read, checked and registered like any family's, but it brings no
//! service: it fills the slot with its settings. A family that uses Redis (the cache
//! with `backend = "redis"`) is built with a clone of the slot and asks it for the
//! connection when it opens; the first to ask opens it and adds the `redis` health
//! component to its parts. The Redis family must therefore come before the families
//! that use it in the node's list of families ([`default_families`] does so).
//!
//! [`default_families`]: https://docs.rs/plexus-app

use std::sync::{Arc, Mutex, MutexGuard};

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};

use crate::config::SECTION;
use crate::{Redis, RedisConfig, redis_component};

/// Where the families of one node find the shared Redis connection.
#[derive(Clone, Debug, Default)]
pub struct RedisSlot {
    inner: Arc<Mutex<Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    settings: Option<RedisConfig>,
    redis: Option<Redis>,
}

impl RedisSlot {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the settings the connection will be opened with (what the Redis family
    /// does with `[redis]`); a connection already open is kept.
    pub fn configure(&self, settings: RedisConfig) {
        self.lock().settings = Some(settings);
    }

    /// The connection, for the family `user` (its section, for errors): the first
    /// call opens it and adds the `redis` health component to `parts`.
    pub fn connect(&self, user: &str, parts: &mut Parts) -> Result<Redis, FamilyError> {
        let mut slot = self.lock();
        if let Some(redis) = &slot.redis {
            return Ok(redis.clone());
        }
        let Some(settings) = slot.settings.clone() else {
            return Err(FamilyError::invalid(
                format!("{user}.backend"),
                "is `redis`, but this node reads no `[redis]` section (add `RedisFamily` \
                 before this family)",
            ));
        };
        let redis = Redis::open(&settings)
            .map_err(|e| FamilyError::invalid(format!("{SECTION}.url"), e.to_string()))?;
        tracing::info!(url = %settings.url, user, "redis opened");
        parts.components.push(redis_component(redis.clone()));
        slot.redis = Some(redis.clone());
        Ok(redis)
    }
}

/// The `[redis]` section's family.
#[derive(Clone, Debug, Default)]
pub struct RedisFamily {
    slot: RedisSlot,
}

impl RedisFamily {
    /// A family with a slot of its own; give [`RedisFamily::slot`] to the families
    /// that use Redis.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot through which other families reach the connection.
    pub fn slot(&self) -> RedisSlot {
        self.slot.clone()
    }
}

#[plexus_core::async_trait]
impl SectionFamily for RedisFamily {
    type Config = RedisConfig;
    const SECTION: &'static str = SECTION;

    /// Keeps the settings for the families that connect through the slot; the
    /// connection opens on first use.
    async fn open_with(
        &self,
        settings: RedisConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        self.slot.configure(settings);
        Ok(Parts::default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_section_is_checked_naming_the_field() {
        let node = NodeSection::default();
        let err = RedisFamily::new()
            .check(Some(&json!({"url": "nope://x"})), &node)
            .unwrap_err();
        assert!(err.to_string().contains("redis.url"), "{err}");
        let err = RedisFamily::new()
            .check(Some(&json!({"timeout": 3})), &node)
            .unwrap_err();
        assert!(err.to_string().contains("redis.timeout"), "{err}");
    }

    #[tokio::test]
    async fn the_first_user_brings_the_health_component_once() {
        let family = RedisFamily::new();
        let slot = family.slot();
        let mut parts = Parts::default();
        let Err(err) = slot.connect("cache", &mut parts) else {
            panic!("connected with no settings");
        };
        assert!(err.to_string().contains("cache.backend"), "{err}");

        let section = json!({"url": "redis://127.0.0.1:1"});
        let opened = family.open(Some(&section), &NodeSection::default()).await;
        assert!(opened.unwrap().components.is_empty());
        let first = slot.connect("cache", &mut parts).unwrap();
        let again = slot.connect("locks", &mut parts).unwrap();
        assert_eq!(parts.components.len(), 1);
        assert_eq!(parts.components[0].name(), crate::COMPONENT);
        assert_eq!(first.config(), again.config());
        // Nothing listens on port 1: a command fails fast and typed.
        let err = first.ping().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }
}
