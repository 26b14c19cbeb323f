//! Bridged buses on a Redis under a fresh key prefix.

use std::sync::Arc;

use plexus_bus::Bus;
use plexus_pubsub::conformance::{Ends, eventually};
use plexus_pubsub::{Backend, Bridge, PubSubConfig, PubSubMetrics};
use plexus_redis::Redis;
use plexus_redis::testing::{redis_url, test_config, unique_prefix};

/// `[pubsub]` on Redis sharing `topics`.
pub(crate) fn on_redis(topics: Vec<String>) -> PubSubConfig {
    PubSubConfig {
        backend: Backend::Redis,
        topics,
        ..PubSubConfig::default()
    }
}

/// A bus bridged through its own connection to `url` under `prefix`, once its
/// subscription is live.
pub(crate) async fn bridged(config: &PubSubConfig, url: &str, prefix: &str) -> (Bus, Arc<Bridge>) {
    let redis = Redis::open(&test_config(url, prefix)).unwrap();
    let bus = Bus::new();
    let bridge = Arc::new(Bridge::redis(redis, config, PubSubMetrics::new()));
    bridge.start(&bus).unwrap();
    eventually("the bridge subscribes", || async { bridge.live() }).await;
    (bus, bridge)
}

/// Two buses bridged through the test Redis under a fresh prefix.
pub(crate) async fn pair(topics: Vec<String>) -> (Ends, Arc<Bridge>, Arc<Bridge>) {
    let config = on_redis(topics);
    let prefix = unique_prefix();
    let (a, bridge_a) = bridged(&config, &redis_url(), &prefix).await;
    let (b, bridge_b) = bridged(&config, &redis_url(), &prefix).await;
    let keep: Vec<Arc<dyn std::any::Any + Send + Sync>> = vec![bridge_a.clone(), bridge_b.clone()];
    (Ends { a, b, keep }, bridge_a, bridge_b)
}
