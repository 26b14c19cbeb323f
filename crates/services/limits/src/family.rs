//! [`LimitsFamily`]: the limiter entering the node through the family door. Its
//! `[limits]` section builds the backend (in process, or Redis through the node's
//! one connection, which brings the `redis` health component), the `ratelimit`
//! service, and its metrics; once the node runs, the limiter is installed as the
//! node's shared limiter, which `shared_rate_limit` call policies take from.

use std::sync::Arc;

use plexus_node::family::{FamilyError, NodeSection, Parts, SectionFamily};
use plexus_redis::RedisSlot;

use crate::config::{Backend, LimitsConfig, SECTION};
use crate::{Limiter, LimitsService};

/// The Rate Limits family.
#[derive(Clone, Debug, Default)]
pub struct LimitsFamily {
    redis: RedisSlot,
}

impl LimitsFamily {
    /// The family, reaching Redis (for `backend = "redis"`) through `redis`: the
    /// slot of the node's [`RedisFamily`](plexus_redis::RedisFamily).
    pub fn new(redis: RedisSlot) -> Self {
        Self { redis }
    }
}

#[plexus_core::async_trait]
impl SectionFamily for LimitsFamily {
    type Config = LimitsConfig;
    const SECTION: &'static str = SECTION;

    async fn open_with(
        &self,
        settings: LimitsConfig,
        _node: &NodeSection,
    ) -> Result<Parts, FamilyError> {
        if !settings.enabled {
            return Ok(Parts::default());
        }
        let mut parts = Parts::default();
        let limiter = match settings.backend {
            Backend::Memory => Limiter::in_memory(settings),
            Backend::Redis => {
                let redis = self.redis.connect(SECTION, &mut parts)?;
                Limiter::on_redis(redis, settings)
            }
        };
        tracing::info!(
            backend = limiter.backend(),
            rules = limiter.rules().len(),
            "rate limits open"
        );
        let metrics = limiter.metrics().clone();
        let shared = Arc::new(limiter.clone());
        Ok(parts
            .service(Arc::new(LimitsService::new(limiter)))
            .metrics(move |node| {
                node.metrics()
                    .with_registry(|registry| metrics.register(registry));
                // `shared_rate_limit` policies of the call path take from it.
                node.install_shared_limiter(shared);
            }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexus_node::family::Family;
    use serde_json::json;

    use super::*;

    /// What each section opens: (section, services, Redis components), or the
    /// field its error names.
    #[tokio::test]
    async fn the_section_decides_what_opens() {
        let node = NodeSection::default();
        let cases = [
            (None, Ok(1)),
            (Some(json!({"enabled": false})), Ok(0)),
            (Some(json!({"backend": "redis"})), Err("limits.backend")),
            (Some(json!({"max_cost": 0})), Err("limits.max_cost")),
        ];
        for (section, expected) in cases {
            let opened = LimitsFamily::default().open(section.as_ref(), &node).await;
            match (opened, expected) {
                (Ok(parts), Ok(services)) => {
                    assert_eq!(parts.services.len(), services, "{section:?}");
                    assert!(parts.components.is_empty(), "{section:?}");
                }
                (Err(err), Err(field)) => {
                    assert!(err.to_string().contains(field), "{err}");
                    assert!(matches!(err, FamilyError::Invalid { .. }), "{err:?}");
                }
                (Ok(_), Err(field)) => panic!("{section:?} opened; expected {field}"),
                (Err(err), Ok(_)) => panic!("{section:?}: {err}"),
            }
        }
    }
}
