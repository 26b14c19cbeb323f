//! Three nodes on loopback sharing the test NATS (a fresh registry bucket and call
//! prefix per test): a service with an instance on each of two nodes, called from
//! the third. Calls are balanced across the two, carry their correlation id and
//! caller across, and when one node stops answering, idempotent calls fail over to
//! the other with no failure seen by the caller. A node that runs the service
//! itself keeps its calls, and sends them to another node's instance only while
//! its own is out (its breaker open).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plexus_cluster::{KvRegistry, KvRegistryConfig, LinkConfig, NatsLink};
use plexus_core::{
    CallContext, CallResult, CorrelationId, MethodDescriptor, Service, ServiceDescriptor,
    ServiceError, async_trait,
};
use plexus_node::policy::CallsConfig;
use plexus_node::{ClusterLink, Node};
use serde_json::{Value, json};

fn nats_url() -> String {
    std::env::var("PLEXUS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Answers `where` (idempotent) with the node it runs on and what travelled.
struct Echo {
    node: &'static str,
}

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("echo", "test")
            .with_instance(format!("echo-{}", self.node))
            .with_method(MethodDescriptor::new("where").idempotent())
            .with_method(MethodDescriptor::new("fail"))
    }

    async fn call(&self, method: &str, _params: Value, ctx: CallContext) -> CallResult {
        match method {
            "where" => Ok(json!({
                "node": self.node,
                "correlation_id": ctx.correlation_id.to_string(),
                "caller": ctx.caller,
                "has_deadline": ctx.deadline.is_some(),
            })),
            _ => Err(ServiceError::InvalidParams {
                field: "x".into(),
                reason: "always refused".into(),
            }),
        }
    }
}

/// A node named `name` on the shared bucket and prefix, with `services`.
async fn node(
    name: &'static str,
    bucket: &str,
    prefix: &str,
    services: Vec<Arc<dyn Service>>,
) -> (Node, Arc<NatsLink>) {
    node_with(name, bucket, prefix, services, CallsConfig::default()).await
}

/// As [`node`], with call policies.
async fn node_with(
    name: &'static str,
    bucket: &str,
    prefix: &str,
    services: Vec<Arc<dyn Service>>,
    calls: CallsConfig,
) -> (Node, Arc<NatsLink>) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client.clone());
    let registry = KvRegistry::open(
        &jetstream,
        &KvRegistryConfig {
            bucket: bucket.to_owned(),
            ..KvRegistryConfig::default()
        },
    )
    .await
    .unwrap();
    let link = Arc::new(NatsLink::new(
        client,
        registry,
        LinkConfig {
            call_prefix: prefix.to_owned(),
            ..LinkConfig::node(name)
        },
    ));
    let mut builder = Node::builder(name).cluster(link.clone()).calls(calls);
    for service in services {
        builder = builder.service(service);
    }
    (builder.start().await.unwrap(), link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_two_nodes_is_balanced_from_a_third_and_fails_over() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let bucket = format!("plexus_test_calls_{id}");
    let prefix = format!("plexus.test.{id}.call");
    let (a, link_a) = node("a", &bucket, &prefix, vec![Arc::new(Echo { node: "a" })]).await;
    let (_b, link_b) = node("b", &bucket, &prefix, vec![Arc::new(Echo { node: "b" })]).await;
    let (c, link_c) = node("c", &bucket, &prefix, vec![]).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        c.registry().until_routable(&"echo".into(), 2),
    )
    .await
    .expect("node c sees both echo instances within 10 s");

    let mut answered = BTreeMap::<String, u32>::new();
    for _ in 0..40 {
        let correlation = CorrelationId::new();
        let ctx = CallContext {
            caller: Some("tester".into()),
            ..CallContext::new().with_correlation_id(correlation)
        };
        let answer = c.call("echo.where", json!({}), ctx).await.unwrap();
        assert_eq!(answer["correlation_id"], json!(correlation.to_string()));
        assert_eq!(answer["caller"], json!("tester"));
        assert_eq!(answer["has_deadline"], json!(true));
        *answered
            .entry(answer["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(answered.len(), 2, "both nodes answered: {answered:?}");

    // A typed error crosses with its kind: invalid params name their field.
    let err = c
        .call("echo.fail", json!({}), CallContext::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains('x'), "{err}");

    // Node b stops answering (its registration is still there, as after a crash):
    // idempotent calls go to node a, and the caller sees no failure.
    // A node that runs the service itself keeps its calls: local first.
    for _ in 0..10 {
        let answer = a
            .call("echo.where", json!({}), CallContext::new())
            .await
            .unwrap();
        assert_eq!(answer["node"], json!("a"));
    }

    // Instance ids carry their node, so nodes running the same services never
    // collide in the shared registry.
    let mut ids: Vec<String> = c
        .registry()
        .instances_named("echo")
        .iter()
        .map(|r| r.instance().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["echo-a@a", "echo-b@b"]);
    link_b.unserve(&"echo-b@b".into());
    let mut failures = 0;
    let mut from_a = 0;
    for _ in 0..40 {
        match c.call("echo.where", json!({}), CallContext::new()).await {
            Ok(answer) => {
                assert_eq!(answer["node"], json!("a"));
                from_a += 1;
            }
            Err(_) => failures += 1,
        }
    }
    assert_eq!((failures, from_a), (0, 40));

    // The counters: every call c made crossed (80 answered, 1 typed error, and the
    // attempts at b that found nobody); a served what came its way.
    let (ok, failed, _, _) = link_c.metrics().snapshot();
    assert_eq!(ok, 80);
    assert!(
        failed >= 2,
        "the typed error and at least one attempt at b: {failed}"
    );
    let (_, _, served_ok, _) = link_a.metrics().snapshot();
    assert!(served_ok >= 40, "{served_ok}");
    async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap())
        .delete_key_value(&bucket)
        .await
        .unwrap();
}

/// `echo` on node `a` that answers `unavailable` while `failing` is set.
struct Flaky {
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl Service for Flaky {
    fn descriptor(&self) -> ServiceDescriptor {
        Echo { node: "a" }.descriptor()
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        if self.failing.load(Ordering::SeqCst) {
            return Err(ServiceError::unavailable("failing on purpose"));
        }
        Echo { node: "a" }.call(method, params, ctx).await
    }
}

/// Node `a` runs `echo` and keeps its calls while its instance answers; when the
/// instance fails until its breaker opens, `a`'s calls go to node `b`'s instance
/// with no failure, and come back once the breaker lets a call through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_to_another_nodes_instance_while_the_local_breaker_is_open() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let bucket = format!("plexus_test_failover_{id}");
    let prefix = format!("plexus.test.{id}.call");
    // No retries, so every failure of a's instance reaches the caller; the breaker
    // opens after 4 calls of which half failed, and stays open for 2 s.
    let calls: CallsConfig = serde_json::from_value(json!({
        "services": {"echo": {
            "retry": {"max_attempts": 1},
            "breaker": {
                "minimum_calls": 4,
                "failure_rate_threshold": 50.0,
                "window": {"kind": "count", "size": 4},
                "wait_in_open_ms": 2000,
                "permitted_calls_in_half_open": 1
            }
        }}
    }))
    .unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let flaky = Arc::new(Flaky {
        failing: failing.clone(),
    });
    let (a, _) = node_with("a", &bucket, &prefix, vec![flaky], calls).await;
    let (_b, _) = node("b", &bucket, &prefix, vec![Arc::new(Echo { node: "b" })]).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        a.registry().until_routable(&"echo".into(), 2),
    )
    .await
    .expect("node a sees both echo instances within 10 s");
    let call = || a.call("echo.where", json!({}), CallContext::new());

    // Local first while a's instance answers.
    for _ in 0..10 {
        assert_eq!(call().await.unwrap()["node"], json!("a"));
    }
    // a's instance fails: its failures reach the caller until its breaker opens
    // (calls still prefer it while it is closed).
    failing.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for _ in 0..4 {
        if call().await.is_err() {
            failed += 1;
        }
    }
    assert!(failed >= 2, "a's instance failed {failed} of 4 calls");
    // Open: every call goes to b, none fails.
    let mut answered = BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let answer = call()
            .await
            .expect("b's instance answers while a's breaker is open");
        *answered
            .entry(answer["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(answered, BTreeMap::from([("b".to_owned(), 20)]));

    // a's instance recovers: once its breaker lets a trial call through (after
    // 2 s), calls are local again.
    failing.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if call().await.unwrap()["node"] == json!("a") {
                return;
            }
        }
    })
    .await
    .expect("calls come back to a within 10 s");
    for _ in 0..10 {
        assert_eq!(call().await.unwrap()["node"], json!("a"));
    }
    async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap())
        .delete_key_value(&bucket)
        .await
        .unwrap();
}
