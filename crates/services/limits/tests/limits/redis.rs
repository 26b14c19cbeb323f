//! The Redis backend on the shared test server: the conformance suite, one limit
//! shared by two clients (as two nodes would be), and keys that expire once they no
//! longer matter.

use plexus_limits::conformance::{eventually, with_rules};
use plexus_limits::{Limiter, RuleConfig};
use plexus_redis::Redis;
use plexus_redis::testing::{redis_url, shared, test_config, unique_prefix};

plexus_limits::limits_conformance!(paused: false, |config| async move {
    Limiter::on_redis(shared(), config)
});

/// Two limiters, each with its own connection to one Redis (two nodes, one
/// limit): 40 callers at once across both get exactly the limit of 10, under both
/// algorithms; what one takes the other sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_of_one_redis_enforce_one_limit() {
    let config = with_rules(&[
        ("window", RuleConfig::sliding_window(10, 60_000)),
        ("gcra", RuleConfig::gcra(10, 60_000, 10)),
    ]);
    let prefix = unique_prefix();
    let client = || {
        Limiter::on_redis(
            Redis::open(&test_config(&redis_url(), &prefix)).unwrap(),
            config.clone(),
        )
    };
    let (a, b) = (client(), client());
    for rule in ["window", "gcra"] {
        let mut callers = Vec::new();
        for i in 0..40 {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            callers.push(tokio::spawn(async move {
                limiter.acquire(rule, "shared", 1).await
            }));
        }
        let mut allowed = 0;
        for caller in callers {
            allowed += u64::from(caller.await.unwrap().unwrap().allowed);
        }
        assert_eq!(allowed, 10, "{rule}");
        let total = |l: &Limiter| l.metrics().decisions(rule, true, true);
        assert_eq!(total(&a) + total(&b), 10, "{rule}");

        b.reset(rule, "shared").await.unwrap();
        assert!(a.acquire(rule, "shared", 7).await.unwrap().allowed);
        let seen = b.check(rule, "shared", 1).await.unwrap();
        assert_eq!(seen.remaining, 3, "{rule}: b sees what a took");
    }
}

/// A key is written only when units are taken, and expires once it no longer
/// matters: after the next window (sliding), after its arrival time (GCRA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_once_they_no_longer_matter() {
    let redis = shared();
    let config = with_rules(&[
        ("window", RuleConfig::sliding_window(10, 200)),
        ("gcra", RuleConfig::gcra(10, 200, 10)),
    ]);
    let limiter = Limiter::on_redis(redis.clone(), config);
    let exists = |key: String| {
        let redis = redis.clone();
        async move {
            redis
                .run(|mut c| async move {
                    redis::cmd("PTTL")
                        .arg(&key)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await
                .unwrap()
        }
    };
    for (rule, tag, most_ms) in [("window", "sw", 400), ("gcra", "gcra", 201)] {
        let key = redis.key(&format!("limits:{tag}:{rule}:k"));
        limiter.check(rule, "k", 1).await.unwrap();
        assert_eq!(
            exists(key.clone()).await,
            -2,
            "{rule}: a check writes nothing"
        );
        limiter.acquire(rule, "k", 10).await.unwrap();
        let ttl = exists(key.clone()).await;
        assert!((1..=most_ms).contains(&ttl), "{rule}: PTTL {ttl}");
        eventually("the key expires", || async {
            exists(key.clone()).await == -2
        })
        .await;
    }
}
