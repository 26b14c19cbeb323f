//! Locks on the test servers; the shared helpers (a private `redis-server` a test
//! may kill and restart, `eventually`) are `plexus_redis::testing`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use plexus_locks::{LockMetrics, Locks, LocksConfig, PostgresBackend, RedisBackend};
use plexus_redis::Redis;

pub(crate) use plexus_redis::testing::{
    FAIL_FAST, PrivateRedis, eventually, redis_url, test_config as redis_config, unique_prefix,
};

/// Locks on `redis`.
pub(crate) fn on_redis(redis: Redis, config: LocksConfig) -> Locks {
    Locks::new(
        Arc::new(RedisBackend::new(redis)),
        config,
        LockMetrics::new(),
    )
}

/// Locks on the shared test Redis under a fresh prefix.
pub(crate) fn redis_locks(config: LocksConfig) -> Locks {
    let redis = Redis::open(&redis_config(&redis_url(), &unique_prefix())).unwrap();
    on_redis(redis, config)
}

/// The schema the PostgreSQL lock tests share: named after the store's PostgreSQL
/// migrations, so a change to them starts a fresh schema instead of tripping over
/// the old one. Tests keep apart by their lock names.
fn postgres_schema() -> String {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../store/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        std::fs::read(file).unwrap().hash(&mut hasher);
    }
    format!("plexus_locks_{:x}", hasher.finish() & 0xffff_ffff)
}

/// Locks on the test PostgreSQL.
pub(crate) async fn postgres_locks(config: LocksConfig) -> Locks {
    let url = plexus_store::testing::postgres_url();
    let backend = PostgresBackend::connect(&url, Some(&postgres_schema()))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable for these tests: {e}"));
    Locks::new(Arc::new(backend), config, LockMetrics::new())
}
