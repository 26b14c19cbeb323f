//! [`LocksFamily`]: the locks entering the node through the family door. Its
//! `[locks]` section builds the backend (in process; Redis through the node's one
//! connection, which brings the `redis` health component; or PostgreSQL at
//! `locks.postgres_url`), the `lock` service, and its metrics.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_redis::RedisSlot;

use crate::config::{Backend, LocksConfig, SECTION};
use crate::{
    LockBackend, LockMetrics, LockService, Locks, MemoryBackend, PostgresBackend, RedisBackend,
};

/// The Locks family.
#[derive(Clone, Debug, Default)]
pub struct LocksFamily {
    redis: RedisSlot,
}

impl LocksFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self { redis }
    }
}

#[plexus_core::async_trait]
impl SectionFamily for LocksFamily {
    type Config = LocksConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: LocksConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let mut parts = Parts::default();
        let backend: Arc<dyn LockBackend> = match settings.backend {
            Backend::Memory => Arc::new(MemoryBackend::new(settings.max_locks)),
            Backend::Redis => Arc::new(RedisBackend::new(self.redis.connect(SECTION, &mut parts)?)),
            Backend::Postgres => {
                let url = settings.postgres_url.as_deref().unwrap_or_default();
                let backend = PostgresBackend::connect(url, settings.postgres_schema.as_deref())
                    .await
                    .map_err(|e| FamilyError::open(SECTION, e))?;
                Arc::new(backend)
            }
        };
        tracing::info!(backend = backend.name(), "locks open");
        let metrics = LockMetrics::new();
        let service = LockService::new(Locks::new(backend, settings, metrics.clone()));
        Ok(parts.service(Arc::new(service)).metrics(move |node| {
            node.metrics()
                .with_registry(|registry| metrics.register(registry));
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
    async fn the_section_chooses_the_backend() {
        let node = NodeSection::default();
        let parts = LocksFamily::default().open(None, &node).await.unwrap();
        let names: Vec<String> = parts
            .services
            .iter()
            .map(|s| s.descriptor().name.to_string())
            .collect();
        assert_eq!(names, ["lock"]);
        assert!(
            parts.components.is_empty(),
            "in process: no health component"
        );

        let disabled = json!({"enabled": false});
        let none = LocksFamily::default()
            .open(Some(&disabled), &node)
            .await
            .unwrap();
        assert!(none.services.is_empty());

        // Redis needs the node's [redis] family; PostgreSQL needs its URL.
        for (section, key) in [
            (json!({"backend": "redis"}), "locks.backend"),
            (json!({"backend": "postgres"}), "locks.postgres_url"),
        ] {
            let Err(err) = LocksFamily::default().open(Some(&section), &node).await else {
                panic!("{section} opened");
            };
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
    }
}
