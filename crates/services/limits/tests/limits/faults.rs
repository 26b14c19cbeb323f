//! Faults against a private `redis-server` on a free port (never the shared one):
//! killed while in use and restarted.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::CallContext;
use plexus_limits::conformance::{eventually, with_rules};
use plexus_limits::{Limiter, LimitsService, RuleConfig};
use plexus_node::{CallError, Node};
use plexus_redis::testing::{FAIL_FAST, PrivateRedis, test_config, unique_prefix};
use plexus_redis::{COMPONENT, Redis, redis_component};
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
    let node = Node::builder("faults")
        .service(Arc::new(LimitsService::new(limiter.clone())))
        .component(redis_component(redis))
        .start()
        .await
        .unwrap();
    assert!(limiter.acquire("api", "k", 1).await.unwrap().allowed);

    server.kill().await;
    let at = Instant::now();
    let err = limiter.acquire("api", "k", 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = limiter.check("api", "k", 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST, "took {:?}", at.elapsed());
    assert!(limiter.metrics().errors("unavailable") >= 2);

    let at = Instant::now();
    let err = node
        .call(
            "ratelimit.acquire",
            json!({"rule": "api", "key": "k"}),
            CallContext::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err:?}");
    assert!(at.elapsed() < FAIL_FAST * 4, "took {:?}", at.elapsed());
    let health = node.health().check_now(COMPONENT).await.unwrap();
    assert!(health.consecutive_failures >= 1, "{health:?}");

    server.restart().await;
    eventually("the limiter works again", || async {
        limiter.acquire("api", "k", 1).await.is_ok()
    })
    .await;
    let got = node
        .call(
            "ratelimit.acquire",
            json!({"rule": "api", "key": "k"}),
            CallContext::new(),
        )
        .await
        .unwrap();
    assert_eq!(got["allowed"], json!(true));
    let health = node.health().check_now(COMPONENT).await.unwrap();
    assert_eq!(health.consecutive_failures, 0, "{health:?}");
    node.shutdown(Duration::from_secs(1)).await;
}
