//! Caches on the test Redis under fresh key prefixes; the shared helpers (a private
//! `redis-server` a test may kill and restart, `eventually`) are `plexus_redis::testing`.

use std::sync::Arc;

use plexus_cache::{Cache, CacheConfig, CacheMetrics, RedisStore};
use plexus_redis::Redis;

pub(crate) use plexus_redis::testing::{
    FAIL_FAST, PrivateRedis, eventually, redis_url, test_config as redis_config, unique_prefix,
};

/// A cache on the test Redis under `prefix` (one client of it: each call opens its
/// own connection), with its store.
pub(crate) fn client(config: CacheConfig, url: &str, prefix: &str) -> (Cache, Arc<RedisStore>) {
    let redis = Redis::open(&redis_config(url, prefix)).unwrap();
    let metrics = CacheMetrics::new();
    let store = Arc::new(RedisStore::new(redis, &config, metrics.clone()));
    (Cache::new(store.clone(), config, metrics), store)
}

/// A fresh cache on the test Redis, two-tier or not; a two-tier one is returned
/// once its local tier is subscribed.
pub(crate) async fn redis_cache(config: CacheConfig, two_tier: bool) -> Cache {
    let config = CacheConfig {
        backend: plexus_cache::Backend::Redis,
        two_tier,
        ..config
    };
    let (cache, store) = client(config, &redis_url(), &unique_prefix());
    if two_tier {
        eventually("the local tier subscribes", || async {
            store.local_tier_live()
        })
        .await;
    }
    cache
}
