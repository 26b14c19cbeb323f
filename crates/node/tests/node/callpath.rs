//! Calls through the whole path: resolve, schema, balancer, breakers, errors.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::{CallContext, ServiceStatus};
use plexus_node::policy::CallsConfig;
use plexus_node::{CallError, Node, codes};
use serde_json::json;

use crate::support::*;

/// Breakers that open after 5 calls at 50% failures and wait 30 s; no retries.
fn strict() -> CallsConfig {
    calls(json!({"default": {
        "breaker": {"window": {"kind": "count", "size": 10}, "minimum_calls": 5,
                    "failure_rate_threshold": 50, "wait_in_open_ms": 30000,
                    "max_wait_in_open_ms": 30000, "permitted_calls_in_half_open": 2},
        "retry": {"max_attempts": 1}
    }}))
}

#[tokio::test(start_paused = true)]
async fn traffic_leaves_a_failing_instance_and_returns_when_it_recovers() {
    let [s1, s2, s3] = ["storage-1", "storage-2", "storage-3"].map(|i| Module::new("storage", i));
    let node = start(Node::builder("lb").calls(strict()), &[&s1, &s2, &s3]).await;

    for n in 0..30 {
        work(&node, n).await.unwrap();
    }
    assert_eq!([s1.calls(), s2.calls(), s3.calls()], [10, 10, 10]);

    // storage-2's dependency goes down: its breaker opens after 5 failed calls and
    // every later call goes to the other two.
    s2.fail(true);
    let mut failures = 0;
    for n in 0..60 {
        if work(&node, n).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    assert_eq!(s2.calls(), 15);
    let (a, b) = (s1.calls() - 10, s3.calls() - 10);
    assert_eq!(a + b, 55);
    assert!(a.abs_diff(b) <= 1, "{a} vs {b}");
    assert_eq!(breaker_state(&node, "storage-2"), "open");

    // It recovers; once the breaker's wait is over its trial calls succeed, it
    // closes, and traffic is shared by three again.
    s2.fail(false);
    tokio::time::advance(Duration::from_secs(31)).await;
    for n in 0..6 {
        work(&node, n).await.unwrap();
    }
    assert_eq!(breaker_state(&node, "storage-2"), "closed");
    let before = [s1.calls(), s2.calls(), s3.calls()];
    for n in 0..30 {
        work(&node, n).await.unwrap();
    }
    let after = [s1.calls(), s2.calls(), s3.calls()];
    assert_eq!(
        [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2]
        ],
        [10, 10, 10]
    );
}

/// Reports `instance` Unhealthy, as its connection would.
async fn mark_unhealthy(node: &Node, instance: &str) {
    let why = Some("test".to_owned());
    node.registry()
        .set_status(&instance.into(), ServiceStatus::Unhealthy, why)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_instance_gets_no_calls() {
    let [s1, s2] = ["storage-1", "storage-2"].map(|i| Module::new("storage", i));
    let node = start(Node::builder("lb"), &[&s1, &s2]).await;
    mark_unhealthy(&node, "storage-1").await;
    for n in 0..10 {
        work(&node, n).await.unwrap();
    }
    assert_eq!([s1.calls(), s2.calls()], [0, 10]);
    mark_unhealthy(&node, "storage-2").await;
    let err = work(&node, 1).await.unwrap_err();
    assert_eq!(err.code(), codes::UNAVAILABLE, "{err}");
    let CallError::Unavailable { instances, .. } = err else {
        unreachable!()
    };
    assert_eq!(instances.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalid_params_never_reach_the_service() {
    let storage = Module::new("storage", "storage-1");
    let node = start(Node::builder("schema"), &[&storage]).await;
    let bad = [
        (json!({"n": "seven"}), "/n"),
        (json!({}), "/n"),
        (json!({"n": 1, "extra": true}), "/extra"),
        (json!({"n": -1}), "/n"),
        (json!([1, 2]), ""),
    ];
    for (params, field) in bad {
        let err = node
            .call("storage.work", params.clone(), CallContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::INVALID_PARAMS, "{params}: {err}");
        assert_eq!(err.data()["field"], field, "{params}: {err}");
    }
    assert_eq!(storage.calls(), 0);
    let ok = node
        .call(
            "storage.work",
            json!({"n": 3, "tag": "x"}),
            CallContext::new(),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({"n": 3, "instance": "storage-1"}));
    assert_eq!(storage.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_methods_and_services_say_what_exists() {
    let node = start(
        Node::builder("names"),
        &[&Module::new("storage", "storage-1")],
    )
    .await;
    for (method, hint) in [
        ("storage.nope", "echo, work"),
        ("nothing.here", "no service `nothing`"),
        ("noservice", "service.method"),
    ] {
        let err = node
            .call(method, json!({}), CallContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::METHOD_NOT_FOUND);
        assert!(err.to_string().contains(hint), "{err}");
    }
    let long = "a".repeat(300) + ".b";
    let err = node
        .call(&long, json!({}), CallContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::METHOD_NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_retry_on_another_instance_and_deadlines_hold() {
    let [s1, s2] = ["storage-1", "storage-2"].map(|i| Module::new("storage", i));
    let retry_elsewhere = calls(
        json!({"default": {"retry": {"max_attempts": 2, "budget": null,
        "backoff": {"kind": "fixed", "delay_ms": 10}}}}),
    );
    let node = start(Node::builder("retry").calls(retry_elsewhere), &[&s1, &s2]).await;
    s1.fail(true);
    // Turns alternate: each call's first attempt lands on storage-1, fails, and its
    // retry takes the next turn, storage-2, which answers.
    for n in 0..10 {
        work(&node, n).await.unwrap();
    }
    assert_eq!([s1.calls(), s2.calls()], [10, 10]);
    // `echo` is not idempotent: a failure on storage-1 comes back to the caller.
    let mut failed = 0;
    for _ in 0..4 {
        if node
            .call("storage.echo", json!({}), CallContext::new())
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    assert_eq!(failed, 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_deadline_that_passed_fails_as_a_timeout() {
    let node = Node::builder("deadline")
        .service(Module::new("storage", "storage-1"))
        .start()
        .await
        .unwrap();
    let ctx = CallContext::new().with_timeout(Duration::ZERO);
    let err = node
        .call("storage.work", json!({"n": 1}), ctx)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TIMEOUT, "{err}");
    let _ = Arc::new(());
}

#[tokio::test(start_paused = true)]
async fn a_re_attached_instance_is_called_through_its_new_transport() {
    let node = Node::builder("attach").start().await.unwrap();
    let first = Module::new("remote", "remote-1");
    let second = Module::new("remote", "remote-1");
    attach_healthy(&node, &first).await;
    node.call("remote.work", json!({"n": 1}), CallContext::new())
        .await
        .unwrap();
    // The same instance comes back over a new connection.
    attach_healthy(&node, &second).await;
    node.call("remote.work", json!({"n": 2}), CallContext::new())
        .await
        .unwrap();
    assert_eq!([first.calls(), second.calls()], [1, 1]);
    let gone = node
        .call("nothing.work", json!({}), CallContext::new())
        .await
        .unwrap_err();
    assert_eq!(gone.data()["method"], "nothing.work");
}

/// Keeps every record it is given.
#[derive(Default)]
struct Trail(parking_lot::Mutex<Vec<plexus_node::CallRecord>>);

#[plexus_core::async_trait]
impl plexus_node::CallObserver for Trail {
    async fn record(&self, record: plexus_node::CallRecord) {
        self.0.lock().push(record);
    }
}

#[tokio::test(start_paused = true)]
async fn every_mutating_call_is_recorded_and_no_idempotent_one() {
    let trail = Arc::new(Trail::default());
    let storage = Module::new("storage", "storage-1");
    let node = start(Node::builder("audit").audit(trail.clone()), &[&storage]).await;
    let ctx = CallContext::new().with_caller("ops");
    let correlation = ctx.correlation_id;
    // `echo` is not idempotent: recorded; `work` is: not recorded.
    node.call("storage.echo", json!({"x": 1}), ctx)
        .await
        .unwrap();
    work(&node, 1).await.unwrap();
    storage.fail(true);
    node.call("storage.echo", json!({"x": 2}), CallContext::new())
        .await
        .unwrap_err();
    let records = trail.0.lock().clone();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].method, "storage.echo");
    assert_eq!(records[0].caller.as_deref(), Some("ops"));
    assert_eq!(records[0].correlation_id, correlation);
    assert_eq!(records[0].params, json!({"x": 1}));
    assert_eq!(
        (records[0].outcome.as_str(), records[0].error.is_none()),
        ("ok", true)
    );
    assert_eq!(records[1].outcome, "unavailable");
    assert_eq!(records[1].error.as_ref().unwrap().0, codes::UNAVAILABLE);
}

/// Never finishes writing a record, as an audit log whose database is unreachable.
struct StuckTrail;

#[plexus_core::async_trait]
impl plexus_node::CallObserver for StuckTrail {
    async fn record(&self, _: plexus_node::CallRecord) {
        std::future::pending::<()>().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_audit_record_that_cannot_be_written_holds_the_answer_at_most_100_ms() {
    let storage = Module::new("storage", "storage-1");
    let node = start(
        Node::builder("audit").audit(Arc::new(StuckTrail)),
        &[&storage],
    )
    .await;
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        node.call("storage.echo", json!({"x": 1}), CallContext::new()),
    )
    .await
    .expect("the answer waited on the audit record past 1 s");
    assert_eq!(answer.unwrap(), json!({"x": 1}));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(150),
        "waited {waited:?}"
    );
}

/// Writes each record only once the test lets it, as an audit log on a database
/// that answers late; says when it wrote one.
#[derive(Default)]
struct SlowTrail {
    written: parking_lot::Mutex<Vec<plexus_node::CallRecord>>,
    release: tokio::sync::Notify,
    wrote: tokio::sync::Notify,
}

#[plexus_core::async_trait]
impl plexus_node::CallObserver for SlowTrail {
    async fn record(&self, record: plexus_node::CallRecord) {
        self.release.notified().await;
        self.written.lock().push(record);
        self.wrote.notify_one();
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_audit_record_is_still_written_after_the_answer_went() {
    let storage = Module::new("storage", "storage-1");
    let trail = Arc::new(SlowTrail::default());
    let node = start(Node::builder("audit").audit(trail.clone()), &[&storage]).await;
    let answer = node.call("storage.echo", json!({"x": 1}), CallContext::new());
    assert_eq!(answer.await.unwrap(), json!({"x": 1}));
    assert!(
        trail.written.lock().is_empty(),
        "answered before the record was written"
    );
    // The store answers now: the record the answer did not wait for is written.
    trail.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), trail.wrote.notified())
        .await
        .expect("the record was given up");
    let written = trail.written.lock().clone();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].params, json!({"x": 1}));
}
