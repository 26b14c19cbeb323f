//! Sessions on the test Redis under fresh key prefixes; the shared helpers (a
//! private `redis-server` a test may kill and restart, `eventually`) are
//! `plexus_redis::testing`.

use std::sync::Arc;

use plexus_redis::Redis;
use plexus_sessions::{RedisBackend, SessionMetrics, Sessions, SessionsConfig};

pub(crate) use plexus_redis::testing::{
    FAIL_FAST, PrivateRedis, redis_url, test_config as redis_config, unique_prefix,
};

/// Sessions on the Redis at `url` under `prefix` (one client of it: each call
/// opens its own connection).
pub(crate) fn client(config: SessionsConfig, url: &str, prefix: &str) -> Sessions {
    let redis = Redis::open(&redis_config(url, prefix)).unwrap();
    let config = SessionsConfig {
        backend: plexus_sessions::Backend::Redis,
        ..config
    };
    Sessions::new(
        Arc::new(RedisBackend::new(redis)),
        config,
        SessionMetrics::new(),
    )
}

/// Fresh sessions on the test Redis.
pub(crate) fn redis_sessions(config: SessionsConfig) -> Sessions {
    client(config, &redis_url(), &unique_prefix())
}
