//! Faults against a private `redis-server` on a free port (never the shared one):
//! killed while locks are held and a guard is watching its lease, then restarted
//! without persistence (every key gone, the token counters too).

use std::sync::Arc;
use std::time::Duration;

use plexus_locks::{LockError, LockService, LocksConfig};
use plexus_redis::Redis;
use plexus_redis::testing::{assert_down_through, assert_up_through, node_with};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{FAIL_FAST, PrivateRedis, eventually, on_redis, redis_config, unique_prefix};

/// While Redis is down every lock operation fails within a bound with a typed
/// `Unavailable` (through the node too, and the `redis` health component says so),
/// and a guard that cannot extend its lease reports the lock lost before the lease
/// is over. Once Redis is back the same node works again, and no two holders
/// overlap across the outage: the restart forgot every lease and counter, but the
/// tokens granted after it are greater than every token granted before (they are
/// floored by the server's clock), so the old holder's extend is refused and its
/// fenced writes would be too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_fails_fast_then_recovers_with_greater_tokens() {
    let ms = Duration::from_millis;
    let mut server = PrivateRedis::start().await;
    let redis = Redis::open(&redis_config(&server.url(), &unique_prefix())).unwrap();
    let locks = on_redis(redis.clone(), LocksConfig::default());
    let node = node_with(Arc::new(LockService::new(locks.clone())), redis).await;

    let mut before = 0;
    for _ in 0..20 {
        let g = locks.grant("cycle", ms(30_000), ms(0), "").await.unwrap();
        before = before.max(g.token);
        locks.release("cycle", g.token).await.unwrap();
    }
    let held = locks.grant("job", ms(30_000), ms(0), "old").await.unwrap();
    before = before.max(held.token);
    let guard = locks
        .acquire("watched", ms(1_500), ms(0), "")
        .await
        .unwrap();
    before = before.max(guard.token());

    server.kill().await;
    let at = Instant::now();
    let err = locks.grant("job", ms(1_000), ms(0), "").await.unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    let err = locks
        .extend("job", held.token, ms(1_000))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST, "took {:?}", at.elapsed());
    assert!(locks.metrics().errors("unavailable") >= 2);
    assert_down_through(
        &node,
        "lock.acquire",
        json!({"name": "job", "lease_ms": 1000}),
    )
    .await;

    // The guard gives up before its lease could have run out on the server.
    let lost_at = tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .map(|()| Instant::now());
    assert!(lost_at.is_ok(), "the guard never reported the lock lost");
    assert!(guard.is_lost());
    assert_eq!(locks.metrics().counts().lost, 1);

    server.restart().await;
    eventually("locks work again", || async {
        locks.status("job").await.is_ok()
    })
    .await;
    // Without persistence the old lease is gone: the lock is free at once, but the
    // new grant's token is above every token granted before the outage...
    let after = locks.grant("job", ms(30_000), ms(0), "new").await.unwrap();
    assert!(after.token > before, "{} after {before}", after.token);
    // ...and the old holder learns it lost the lock.
    let err = locks
        .extend("job", held.token, ms(1_000))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotHolder { .. }), "{err:?}");
    let again = assert_up_through(
        &node,
        "lock.acquire",
        json!({"name": "cycle", "lease_ms": 1000}),
    )
    .await;
    assert!(again["token"].as_u64().unwrap() > before);
}
