//! [`CacheFamily`]: the cache entering the node through the family door. Its
//! `[cache]` section builds the store (moka in process, or Redis through the node's
//! one connection, which brings the `redis` health component), the `cache`
//! service, and its metrics; once the node runs, the service is attached to it so
//! `cache.get` can load through the call path.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_redis::RedisSlot;

use crate::config::{Backend, CacheConfig, SECTION};
use crate::{Cache, CacheMetrics, CacheService, CacheStore, MemoryStore, RedisStore};

/// The Cache family.
#[derive(Clone, Debug, Default)]
pub struct CacheFamily {
    redis: RedisSlot,
}

impl CacheFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self { redis }
    }
}

#[plexus_core::async_trait]
impl SectionFamily for CacheFamily {
    type Config = CacheConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: CacheConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let mut parts = Parts::default();
        let metrics = CacheMetrics::new();
        let store: Arc<dyn CacheStore> = match settings.backend {
            Backend::Memory => Arc::new(MemoryStore::new(settings.max_bytes, metrics.clone())),
            Backend::Redis => {
                let redis = self.redis.connect(SECTION, &mut parts)?;
                Arc::new(RedisStore::new(redis, &settings, metrics.clone()))
            }
        };
        tracing::info!(backend = store.backend(), "cache open");
        let service = CacheService::new(Cache::new(store, settings, metrics.clone()));
        let attach = service.clone();
        Ok(parts.service(Arc::new(service)).metrics(move |node| {
            node.metrics()
                .with_registry(|registry| metrics.register(registry));
            attach.attach(node);
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn memory_by_default_off_when_disabled_and_redis_needs_the_redis_family() {
        let node = NodeSection::default();
        let parts = CacheFamily::default().open(None, &node).await.unwrap();
        assert_eq!(parts.services.len(), 1);
        assert!(parts.components.is_empty());

        let off = json!({"enabled": false});
        let parts = CacheFamily::default()
            .open(Some(&off), &node)
            .await
            .unwrap();
        assert!(parts.services.is_empty());

        let redis = json!({"backend": "redis"});
        let Err(err) = CacheFamily::default().open(Some(&redis), &node).await else {
            panic!("redis without the redis family opened");
        };
        assert!(err.to_string().contains("cache.backend"), "{err}");
        assert!(matches!(err, FamilyError::Invalid { .. }), "{err:?}");
    }
}
