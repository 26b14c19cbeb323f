//! Redis as a health component (`redis`, a dependency): a `PING` that fails or does
//! not answer in time is a check failure. The connection re-establishes itself at
//! the next command, so the heal action is one more `PING` that makes it try now.

use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, HealAction, check_fn};

use crate::Redis;

/// The component's name in `node.health` and `/health`.
pub const COMPONENT: &str = "redis";

/// The health component of `redis`, with its reconnect heal action.
pub fn redis_component(redis: Redis) -> ComponentSpec {
    let heal = redis.clone();
    ComponentSpec::new(
        COMPONENT,
        ComponentKind::Dependency,
        check_fn(move || {
            let redis = redis.clone();
            async move {
                redis
                    .ping()
                    .await
                    .map(|()| plexus_core::HealthReport::healthy())
                    .map_err(|e| CheckError::new(e.to_string()))
            }
        }),
    )
    .with_heal(HealAction::reconnect("reconnect", move || {
        let redis = heal.clone();
        async move { redis.ping().await.map_err(|e| e.to_string()) }
    }))
}
