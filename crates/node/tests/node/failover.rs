//! Failing over, with the default policies (nothing lowered): a hung instance (its
//! calls never answer, as a process stopped with SIGSTOP) costs an idempotent call
//! one attempt, not its deadline; its breaker counts the timed-out attempts and
//! opens; it comes back through half-open. And the breaker counters in `/metrics`:
//! rejections are counted when every breaker is open, and no counter goes down when
//! a policy change replaces the breakers. And an external instance is a health
//! component whose status follows the one its connection reports; what a breaker
//! counts as a failure follows the table in `plexus_node::policy`.

use std::time::Duration;

use futures::future::join_all;
use plexus_core::{
    CallContext, InstanceId, MethodDescriptor, Service, ServiceDescriptor, ServiceError,
    ServiceStatus,
};
use plexus_node::{CallError, Node};
use plexus_registry::health::{ComponentStatus, SystemStatus};
use serde_json::json;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_hung_instance_fails_no_idempotent_call_and_its_breaker_opens_then_recovers() {
    let [s1, s2] = ["storage-1", "storage-2"].map(|i| Module::new("storage", i));
    let node = start(Node::builder("failover"), &[&s1, &s2]).await;
    for n in 0..10 {
        work(&node, n).await.unwrap();
    }

    // storage-2 hangs mid-load: eight clients make 25 calls each.
    s2.hang(true);
    let started = tokio::time::Instant::now();
    let clients = (0..8).map(|_| {
        let node = node.clone();
        tokio::spawn(async move {
            let mut failed = Vec::new();
            for n in 0..25 {
                if let Err(e) = work(&node, n).await {
                    failed.push(e.to_string());
                }
            }
            failed
        })
    });
    let failed: Vec<String> = join_all(clients)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}",
        failed.len()
    );
    assert_eq!(breaker_state(&node, "storage-2"), "open");
    let failures = metric(
        &node,
        "plexus_breaker_calls_total",
        &[("instance", "storage-2"), ("outcome", "failure")],
    );
    // It opened once its window held `minimum_calls` (20): the 5 earlier successes
    // and at least 15 timed-out attempts.
    assert!(
        failures >= 15.0,
        "the breaker opened at its threshold: {failures}"
    );
    // Each timed-out attempt cost a third of the 5 s deadline, not all of it; once
    // the breaker opened the rest went straight to storage-1.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // SIGCONT: after the breaker's wait its trial calls succeed and it closes.
    s2.hang(false);
    tokio::time::advance(Duration::from_secs(11)).await;
    let before = s2.calls();
    for n in 0..20 {
        work(&node, n).await.unwrap();
    }
    assert_eq!(breaker_state(&node, "storage-2"), "closed");
    assert!(s2.calls() > before + 5, "traffic is shared again");
}

#[tokio::test(start_paused = true)]
async fn a_call_with_every_breaker_open_is_counted_as_rejected() {
    let db = Module::new("storage", "storage-1");
    let node = start(Node::builder("rejected").calls(breakers_of_four()), &[&db]).await;
    db.fail(true);
    for n in 0..4 {
        assert!(work(&node, n).await.is_err());
    }
    assert_eq!(breaker_state(&node, "storage-1"), "open");
    let rejected = [("service", "storage"), ("instance", "storage-1")];
    assert_eq!(
        metric(&node, "plexus_breaker_rejected_total", &rejected),
        0.0
    );
    for n in 0..5 {
        match work(&node, n).await {
            Err(CallError::CircuitOpen { .. }) => {}
            other => panic!("expected circuit open, got {other:?}"),
        }
    }
    assert_eq!(
        metric(&node, "plexus_breaker_rejected_total", &rejected),
        5.0
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_counters_never_go_down_when_a_policy_change_replaces_the_breakers() {
    let db = Module::new("storage", "storage-1");
    let node = start(Node::builder("monotonic"), &[&db]).await;
    for n in 0..5 {
        work(&node, n).await.unwrap();
    }
    let success = [("instance", "storage-1"), ("outcome", "success")];
    assert_eq!(metric(&node, "plexus_breaker_calls_total", &success), 5.0);

    node.config()
        .set(
            "calls.default.breaker.failure_rate_threshold",
            json!(80),
            "ops",
        )
        .await
        .unwrap();
    work(&node, 6).await.unwrap();
    assert_eq!(metric(&node, "plexus_breaker_calls_total", &success), 6.0);
    assert_eq!(
        metric(
            &node,
            "plexus_breaker_state",
            &[("instance", "storage-1"), ("state", "closed")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn an_external_instance_is_a_health_component_that_follows_its_status() {
    let node = Node::builder("external").start().await.unwrap();
    let mut watch = node.health().watch();
    let search = Module::new("search", "search-1");
    node.attach(search.descriptor(), search.clone())
        .await
        .unwrap();
    let id = InstanceId::new("search-1");
    let set = |status, why: &'static str| {
        let node = node.clone();
        let id = id.clone();
        async move {
            node.registry()
                .set_status(&id, status, Some(why.to_owned()))
                .await
                .unwrap();
        }
    };
    set(ServiceStatus::Healthy, "registered").await;
    component_becomes(&node, &mut watch, "search-1", ComponentStatus::Healthy).await;
    assert_eq!(node.system_health().status, SystemStatus::Healthy);

    // Its connection reports it Unhealthy: the component follows with the reason,
    // and the system, for which it is critical by default, is Critical.
    set(ServiceStatus::Unhealthy, "index corrupt").await;
    let detail = component_becomes(&node, &mut watch, "search-1", ComponentStatus::Unhealthy).await;
    assert!(detail.contains("index corrupt"), "{detail}");
    assert_eq!(node.system_health().status, SystemStatus::Critical);

    // Detached, it is no longer a component.
    node.detach(&id).await.unwrap();
    assert!(node.health().component("search-1").is_none());
    assert!(node.system_health().component("search-1").is_none());
    assert_ne!(node.system_health().status, SystemStatus::Critical);

    // One whose descriptor says it is optional only degrades the system.
    let cache = Module::new("cache", "cache-1");
    let optional = cache.descriptor().with_metadata("critical", "false");
    node.attach(optional, cache.clone()).await.unwrap();
    node.registry()
        .set_status(
            &InstanceId::new("cache-1"),
            ServiceStatus::Unhealthy,
            Some("evicting".to_owned()),
        )
        .await
        .unwrap();
    component_becomes(&node, &mut watch, "cache-1", ComponentStatus::Unhealthy).await;
    assert_eq!(node.system_health().status, SystemStatus::Degraded);
}

/// A service whose every call fails with the error it is given.
struct Failing {
    instance: &'static str,
    error: ServiceError,
}

#[plexus_core::async_trait]
impl Service for Failing {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("answers", "test")
            .with_instance(self.instance)
            .with_method(MethodDescriptor::new("ask"))
    }

    async fn call(
        &self,
        _method: &str,
        _params: serde_json::Value,
        _ctx: CallContext,
    ) -> Result<serde_json::Value, ServiceError> {
        Err(self.error.clone())
    }
}

/// Whether ten calls answered with `error` open the instance's breaker, under the
/// `failures` policy given.
async fn opens(error: ServiceError, failures: serde_json::Value) -> bool {
    let policy = calls(json!({"default": {
        "breaker": {"window": {"kind": "count", "size": 10}, "minimum_calls": 5,
                    "failure_rate_threshold": 50},
        "retry": {"max_attempts": 1},
        "failures": failures,
    }}));
    let node = Node::builder("classes")
        .calls(policy)
        .service(std::sync::Arc::new(Failing {
            instance: "answers-1",
            error,
        }))
        .start()
        .await
        .unwrap();
    for _ in 0..10 {
        let _ = node
            .call("answers.ask", json!({}), CallContext::new())
            .await;
    }
    breaker_state(&node, "answers-1") == "open"
}

#[tokio::test(start_paused = true)]
async fn what_a_breaker_counts_as_a_failure_follows_the_table_and_the_policy() {
    let internal = || ServiceError::Internal {
        message: "boom (-32603)".into(),
        data: None,
    };
    let own = |code: i64| ServiceError::Failed {
        message: "no such customer".into(),
        data: Some(plexus_node::ServiceCode::new(code).unwrap().attach(None)),
        retryable: false,
    };
    // Internal errors, unavailability and retryable failures open it by default.
    assert!(opens(internal(), json!({})).await);
    assert!(opens(ServiceError::unavailable("db down"), json!({})).await);
    assert!(opens(ServiceError::transient("try again"), json!({})).await);
    // A service's own code and a caller's mistake are answers.
    assert!(!opens(own(1001), json!({})).await);
    assert!(!opens(ServiceError::invalid_params("/n", "too big"), json!({})).await);
    assert!(!opens(ServiceError::failed("business rule"), json!({})).await);
    // Per policy: a listed own code counts; internal errors can be made answers.
    assert!(opens(own(1503), json!({"codes": [1503]})).await);
    assert!(!opens(internal(), json!({"internal": false})).await);
    assert!(!opens(ServiceError::transient("x"), json!({"retryable": false})).await);
    // Unavailability always counts.
    assert!(
        opens(
            ServiceError::unavailable("down"),
            json!({"internal": false, "retryable": false})
        )
        .await
    );
}
