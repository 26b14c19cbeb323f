//! Faults against a private `redis-server` on a free port (never the shared one):
//! killed while in use and restarted.

use std::sync::Arc;

use plexus_limits::conformance::{eventually, with_rules};
use plexus_limits::{Limiter, LimitsService, RuleConfig};
use plexus_redis::Redis;
use plexus_redis::testing::{FAIL_FAST, PrivateRedis, test_config, unique_prefix};
use plexus_redis::testing::{assert_down_through, assert_up_through, node_with};
use serde_json::json;
use tokio::time::Instant;

/// While Redis is down every call fails within a bound with a typed `Unavailable`
/// (through the node too, and the `redis` health component says so), never a
/// silent allow; once Redis is back the same node works again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_fails_fast_then_recovers_without_a_restart() {
    let mut server = PrivateRedis::start().await;
    let redis = Redis::open(&test_config(&server.url(), &unique_prefix())).unwrap();
    let config = with_rules(&[("api", RuleConfig::sliding_window(100, 60_000))]);
    let limiter = Limiter::on_redis(redis.clone(), config);
    let node = node_with(Arc::new(LimitsService::new(limiter.clone())), redis).await;
    assert!(limiter.acquire("api", "k", 1).await.unwrap().allowed);

    server.kill().await;
    let at = Instant::now();
    let err = limiter.acquire("api", "k", 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = limiter.check("api", "k", 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST, "took {:?}", at.elapsed());
    assert!(limiter.metrics().errors("unavailable") >= 2);

    assert_down_through(
        &node,
        "ratelimit.acquire",
        json!({"rule": "api", "key": "k"}),
    )
    .await;

    server.restart().await;
    eventually("the limiter works again", || async {
        limiter.acquire("api", "k", 1).await.is_ok()
    })
    .await;
    let got = assert_up_through(
        &node,
        "ratelimit.acquire",
        json!({"rule": "api", "key": "k"}),
    )
    .await;
    assert_eq!(got["allowed"], json!(true));
}
