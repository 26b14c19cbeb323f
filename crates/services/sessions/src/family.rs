//! [`SessionsFamily`]: the sessions entering the node through the family door. Its
//! `[sessions]` section builds the backend (in process, a SQLite file in the data
//! directory, or Redis through the node's one connection, which brings the `redis` health component), the
//! `session` service and its metrics; once the node runs, the sessions announce on
//! its bus (the service's sweeper, started with the service, waits for it).

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_redis::RedisSlot;

use crate::config::{Backend, SECTION, SessionsConfig};
use crate::{
    MemoryBackend, RedisBackend, SessionBackend, SessionMetrics, SessionService, Sessions,
    SqliteBackend,
};

/// The Sessions family.
#[derive(Clone, Debug, Default)]
pub struct SessionsFamily {
    redis: RedisSlot,
}

impl SessionsFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self { redis }
    }
}

#[plexus_core::async_trait]
impl SectionFamily for SessionsFamily {
    type Config = SessionsConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: SessionsConfig,
        node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let mut parts = Parts::default();
        let backend: Arc<dyn SessionBackend> = match settings.backend {
            Backend::Memory => Arc::new(MemoryBackend::new(settings.max_sessions)),
            Backend::Sqlite => {
                let path = match settings.sqlite_path.as_str() {
                    "" => node.data_dir.join("sessions.sqlite"),
                    path => path.into(),
                };
                let backend = SqliteBackend::open(&path, settings.max_sessions)
                    .await
                    .map_err(|e| FamilyError::open(SECTION, e))?;
                Arc::new(backend)
            }
            Backend::Redis => Arc::new(RedisBackend::new(self.redis.connect(SECTION, &mut parts)?)),
        };
        tracing::info!(backend = backend.name(), "sessions open");
        let metrics = SessionMetrics::new();
        let sessions = Sessions::new(backend, settings, metrics.clone());
        let service = SessionService::new(sessions.clone());
        Ok(parts.service(Arc::new(service)).metrics(move |node| {
            node.metrics()
                .with_registry(|registry| metrics.register(registry));
            // The service's sweeper sweeps once the sessions can announce.
            sessions.attach_bus(node.bus().clone());
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
    async fn memory_by_default_sqlite_in_a_file_off_when_disabled_and_redis_needs_the_redis_family()
    {
        let node = NodeSection::default();
        let parts = SessionsFamily::default().open(None, &node).await.unwrap();
        assert_eq!(parts.services.len(), 1);
        assert!(parts.components.is_empty());

        let off = json!({"enabled": false});
        let parts = SessionsFamily::default()
            .open(Some(&off), &node)
            .await
            .unwrap();
        assert!(parts.services.is_empty());

        let dir = std::env::temp_dir().join(format!("plexus-sessions-{}", &crate::new_id()[..16]));
        let sqlite = json!({"backend": "sqlite", "sqlite_path": dir.join("s.sqlite")});
        let parts = SessionsFamily::default()
            .open(Some(&sqlite), &node)
            .await
            .unwrap();
        assert_eq!(parts.services.len(), 1);
        assert!(dir.join("s.sqlite").exists());
        let _ = std::fs::remove_dir_all(&dir);

        let redis = json!({"backend": "redis"});
        let Err(err) = SessionsFamily::default().open(Some(&redis), &node).await else {
            panic!("redis without the redis family opened");
        };
        assert!(err.to_string().contains("sessions.backend"), "{err}");
    }
}
