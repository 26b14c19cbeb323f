//! [`PubSubFamily`]: `[pubsub]` entering the node through the family door. On the
//! bus (default) it brings only the `pubsub` service; on Redis it takes the node's
//! one connection from the [`RedisSlot`] (which brings the `redis` health
//! component); on NATS it connects to `nats_url` and brings the `nats` health
//! component. It starts the bridge on the node's bus once the node runs.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_redis::RedisSlot;

use crate::config::{Backend, PubSubConfig, SECTION};
use crate::{Bridge, NatsConnection, PubSubMetrics, PubSubService};

/// The Pub/Sub family.
#[derive(Clone, Debug, Default)]
pub struct PubSubFamily {
    redis: RedisSlot,
}

impl PubSubFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self { redis }
    }
}

#[plexus_core::async_trait]
impl SectionFamily for PubSubFamily {
    type Config = PubSubConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: PubSubConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        let mut parts = Parts::default();
        if settings.backend == Backend::Bus {
            return Ok(parts.service(Arc::new(PubSubService::new(settings, None))));
        }
        let metrics = PubSubMetrics::new();
        let bridge = match settings.backend {
            Backend::Redis => {
                let redis = self.redis.connect(SECTION, &mut parts)?;
                Bridge::redis(redis, &settings, metrics.clone())
            }
            Backend::Nats | Backend::Bus => {
                let url = settings.nats_url.clone().unwrap_or_default();
                let nats = NatsConnection::connect(&url, "plexus pubsub")
                    .await
                    .map_err(|e| {
                        FamilyError::invalid("pubsub.nats_url", format!("`{url}`: {e}"))
                    })?;
                parts = parts.component(crate::nats::nats_component(nats.clone()));
                Bridge::nats(nats, &settings, metrics.clone())
            }
        };
        let bridge = Arc::new(bridge);
        tracing::info!(topics = ?settings.topics, backend = <&str>::from(settings.backend), "pub/sub bridged");
        let service = PubSubService::new(settings, Some(bridge.clone()));
        Ok(parts.service(Arc::new(service)).metrics(move |node| {
            node.metrics()
                .with_registry(|registry| metrics.register(registry));
            if let Err(error) = bridge.start(node.bus()) {
                tracing::error!(%error, "the pub/sub bridge could not subscribe to the bus");
            }
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
    async fn the_bus_by_default_and_redis_needs_topics_and_the_redis_family() {
        let node = NodeSection::default();
        let parts = PubSubFamily::default().open(None, &node).await.unwrap();
        assert_eq!(parts.services.len(), 1);
        assert!(parts.components.is_empty());

        let cases = [
            (json!({"backend": "redis"}), "pubsub.topics"),
            (json!({"topics": ["a..b"]}), "pubsub.topics[0]"),
            (
                json!({"backend": "redis", "topics": ["a.>"]}),
                "pubsub.backend",
            ),
            (json!({"queue": 0}), "pubsub.queue"),
        ];
        for (section, key) in cases {
            let Err(err) = PubSubFamily::default().open(Some(&section), &node).await else {
                panic!("{section} opened");
            };
            assert!(matches!(err, FamilyError::Invalid { .. }), "{err:?}");
            assert!(err.to_string().contains(key), "{section}: {err}");
        }
    }
}
