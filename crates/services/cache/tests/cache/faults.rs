//! Faults against a private `redis-server` on a free port (never the shared one):
//! killed while a load is in flight and restarted.

use std::sync::Arc;
use std::time::Duration;

use plexus_cache::conformance::Gate;
use plexus_cache::{Backend, Cache, CacheConfig, CacheMetrics, CacheService, RedisStore};
use plexus_redis::Redis;
use plexus_redis::testing::{assert_down_through, assert_up_through, node_with};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{FAIL_FAST, PrivateRedis, eventually, redis_config, unique_prefix};

fn on_redis(two_tier: bool) -> CacheConfig {
    CacheConfig {
        backend: Backend::Redis,
        two_tier,
        ..CacheConfig::default()
    }
}

/// Redis killed while a load is in flight: the loader's caller still gets its value;
/// while Redis is down every operation fails within a bound with a typed
/// `Unavailable`, through the node too, and the `redis` health component says so;
/// once Redis is back the same node works again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_load_fails_fast_then_recovers_without_a_restart() {
    let mut server = PrivateRedis::start().await;
    let redis = Redis::open(&redis_config(&server.url(), &unique_prefix())).unwrap();
    let metrics = CacheMetrics::new();
    let store = RedisStore::new(redis.clone(), &on_redis(false), metrics.clone());
    let cache = Cache::new(Arc::new(store), on_redis(false), metrics);
    let node = node_with(Arc::new(CacheService::new(cache.clone())), redis).await;
    cache.set(None, "warm", json!(1), None).await.unwrap();

    let (gate, started) = (Gate::new(), Gate::new());
    let loading = {
        let (cache, gate, started) = (cache.clone(), gate.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(None, "k", None, move || async move {
                    started.open();
                    gate.wait().await;
                    Ok(json!("loaded"))
                })
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(10), started.wait())
        .await
        .unwrap();
    server.kill().await;
    gate.open();
    let got = loading.await.unwrap().unwrap();
    assert_eq!(
        got.value,
        Some(json!("loaded")),
        "the load's value reaches its caller"
    );

    let at = Instant::now();
    let err = cache.get(None, "warm").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = cache.set(None, "warm", json!(2), None).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST, "took {:?}", at.elapsed());
    assert!(cache.metrics().errors("unavailable") >= 2);

    assert_down_through(&node, "cache.get", json!({"key": "warm"})).await;

    server.restart().await;
    eventually("the cache works again", || async {
        cache.set(None, "warm", json!(3), None).await.is_ok()
    })
    .await;
    assert_eq!(cache.get(None, "warm").await.unwrap(), Some(json!(3)));
    let got = assert_up_through(&node, "cache.get", json!({"key": "warm"})).await;
    assert_eq!(got["value"], json!(3));
}

/// A local tier whose subscription is lost stops serving (its copies could miss
/// invalidations) and is emptied; once Redis is back it subscribes again and
/// another node's writes evict its copies as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_tier_resubscribes_after_redis_comes_back() {
    let mut server = PrivateRedis::start().await;
    let prefix = unique_prefix();
    let open = |config: CacheConfig| {
        let redis = Redis::open(&redis_config(&server.url(), &prefix)).unwrap();
        let metrics = CacheMetrics::new();
        let store = Arc::new(RedisStore::new(redis, &config, metrics.clone()));
        (Cache::new(store.clone(), config, metrics), store)
    };
    let (a, a_store) = open(on_redis(true));
    let (b, _) = open(on_redis(false));
    eventually("the local tier subscribes", || async {
        a_store.local_tier_live()
    })
    .await;
    b.set(None, "k", json!(1), None).await.unwrap();
    // The message of b's write may reach a after a's first read and evict its copy.
    eventually("a keeps a local copy", || async {
        a.get(None, "k").await.unwrap() == Some(json!(1)) && a.stats().local_entries == Some(1)
    })
    .await;

    server.kill().await;
    eventually("the lost subscription is noticed", || async {
        !a_store.local_tier_live()
    })
    .await;
    assert_eq!(a.stats().local_entries, Some(0));
    let err = a.get(None, "k").await.unwrap_err();
    assert!(
        err.is_unavailable(),
        "no stale local copy is served: {err:?}"
    );

    server.restart().await;
    eventually("the local tier subscribes again", || async {
        a_store.local_tier_live()
    })
    .await;
    eventually("b writes again", || async {
        b.set(None, "k", json!(2), None).await.is_ok()
    })
    .await;
    assert_eq!(a.get(None, "k").await.unwrap(), Some(json!(2)));
    b.set(None, "k", json!(3), None).await.unwrap();
    eventually("a sees b's write", || async {
        a.get(None, "k").await.unwrap() == Some(json!(3))
    })
    .await;
}
