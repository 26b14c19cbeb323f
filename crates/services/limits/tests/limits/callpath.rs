//! The call path's `shared_rate_limit` policy on the shared limiter: two nodes on
//! one Redis, each with a `work` service, enforce one limit on its calls; a node
//! whose limiter's Redis is gone refuses calls as unavailable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexus_core::methods::{Effect, MethodTable, NoParams};
use plexus_core::{CallContext, CallResult, Service, ServiceDescriptor, ServiceError, async_trait};
use plexus_limits::conformance::with_rules;
use plexus_limits::{Limiter, RuleConfig};
use plexus_node::policy::CallsConfig;
use plexus_node::{CallError, Node};
use plexus_redis::Redis;
use plexus_redis::testing::{PrivateRedis, redis_url, test_config, unique_prefix};
use serde_json::{Value, json};

/// A `work` service that counts its calls.
struct Work(Arc<AtomicUsize>);

async fn run(s: &Work, _: CallContext, _: NoParams) -> Result<Value, ServiceError> {
    s.0.fetch_add(1, Ordering::SeqCst);
    Ok(json!("done"))
}

static WORK: std::sync::LazyLock<MethodTable<Work>> = std::sync::LazyLock::new(|| {
    MethodTable::new().method::<NoParams, Value, _>("run", "Work", Effect::Idempotent, run)
});

#[async_trait]
impl Service for Work {
    fn descriptor(&self) -> ServiceDescriptor {
        WORK.describe(ServiceDescriptor::new("work", "work"))
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        WORK.call(self, method, params, ctx).await
    }
}

/// A node with a `work` service limited by the shared rule `api`, taken from
/// `limiter`.
async fn node(name: &str, limiter: Limiter, calls: Arc<AtomicUsize>) -> Node {
    let node = bare(name, calls).await;
    assert!(node.install_shared_limiter(Arc::new(limiter)));
    node
}

/// A node with a `work` service limited by the shared rule `api`, and no shared
/// limiter yet.
async fn bare(name: &str, calls: Arc<AtomicUsize>) -> Node {
    let mut policy = CallsConfig::default();
    policy.services.insert(
        "work".to_owned(),
        json!({"shared_rate_limit": {"rule": "api"}}),
    );
    Node::builder(name)
        .calls(policy)
        .service(Arc::new(Work(calls)))
        .start()
        .await
        .unwrap()
}

fn rule() -> plexus_limits::LimitsConfig {
    with_rules(&[("api", RuleConfig::sliding_window(10, 60_000))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_enforce_one_limit_on_a_service() {
    let prefix = unique_prefix();
    let limiter = || {
        Limiter::on_redis(
            Redis::open(&test_config(&redis_url(), &prefix)).unwrap(),
            rule(),
        )
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let a = node("a", limiter(), calls.clone()).await;
    let b = node("b", limiter(), calls.clone()).await;
    let (mut ok, mut limited) = (0, 0);
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        match node.call("work.run", json!({}), CallContext::new()).await {
            Ok(_) => ok += 1,
            Err(CallError::RateLimited {
                service,
                retry_after,
            }) => {
                assert_eq!(service, "work");
                assert!(retry_after > Duration::ZERO);
                limited += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, limited), (10, 20));
    assert_eq!(calls.load(Ordering::SeqCst), 10, "refused calls never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_out_of_reach_refuses_calls_as_unavailable() {
    let mut server = PrivateRedis::start().await;
    let redis = Redis::open(&test_config(&server.url(), &unique_prefix())).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let node = node("c", Limiter::on_redis(redis, rule()), calls.clone()).await;
    node.call("work.run", json!({}), CallContext::new())
        .await
        .unwrap();
    server.kill().await;
    let err = node
        .call("work.run", json!({}), CallContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no call ran unlimited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_limiter_the_policy_refuses_calls() {
    let calls = Arc::new(AtomicUsize::new(0));
    let node = bare("d", calls.clone()).await;
    let err = node
        .call("work.run", json!({}), CallContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
