//! The `script` service on a node: a script calling another service through the
//! call path as its caller, publishing on the bus, stored scripts in the DataStore,
//! and the metrics in the node's registry.

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_core::CallContext;
use plexus_datastore::DataStoreService;
use plexus_node::CallError;
use plexus_node::metrics::Format;
use plexus_store::BackendKind;
use plexus_store::testing::TestStore;
use serde_json::json;

use crate::support::{invalid, node, node_with, run, still_serving};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_calls_echo_through_the_node_as_its_caller() {
    let (node, _, _) = node().await;
    let ctx = CallContext::new().with_timeout(Duration::from_secs(4));
    let id = ctx.correlation_id.to_string();
    let ran = node
        .call(
            "script.run",
            json!({
                "source": "let answer = call(\"echo.say\", #{text: greeting + \" \" + args.name});\nanswer",
                "args": {"greeting": "hello", "name": "ada"},
            }),
            ctx,
        )
        .await
        .unwrap();
    let value = &ran["value"];
    assert_eq!(value["text"], "hello ada");
    // The call carried the caller's correlation id and a deadline within the
    // script's (the earlier of max_duration_ms, 5 s, and the caller's, 4 s).
    assert_eq!(value["correlation_id"], id);
    let left = value["remaining_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 4_000, "{left}");
    assert!(ran["operations"].as_u64().unwrap() > 0);
    assert!(ran["duration_us"].as_u64().is_some());
    assert_eq!(ran["output"], json!([]));

    // A call to a method that does not exist is thrown; uncaught, it names it.
    let err = run(&node, "call(\"echo.shout\", #{})").await.unwrap_err();
    match &err {
        CallError::Failed {
            detail: Some(d), ..
        } => {
            assert_eq!(
                (d["kind"].clone(), d["method"].clone()),
                (json!("call"), json!("echo.shout"))
            );
            assert_eq!(d["line"], 1);
        }
        other => panic!("expected a failed call, got {other:?}"),
    }
    // Params that are not a map, or a bad `log` level, are the script's errors.
    assert!(run(&node, "call(\"echo.say\", 3)").await.is_err());
    assert!(run(&node, "log(\"loud\", \"x\")").await.is_err());
    let ran = run(&node, "log(\"info\", \"from a script\"); 1")
        .await
        .unwrap();
    assert_eq!(ran["value"], 1);

    // The budget of calls: max_calls (100) and the run ends.
    let err = run(&node, "loop { call(\"echo.say\", #{text: \"x\"}); }")
        .await
        .unwrap_err();
    assert_eq!(crate::support::limit_of(&err), "calls");
    still_serving(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_publishes_on_the_bus() {
    let (node, _, _) = node().await;
    let mut sub = node
        .bus()
        .subscribe("orders.*", SubscribeOptions::default())
        .unwrap();
    let ran = run(&node, "publish(\"orders.created\", #{id: 7})")
        .await
        .unwrap();
    assert_eq!(ran["value"]["matched"], 1);
    let event = sub.recv().await.unwrap();
    assert_eq!(event.topic().as_str(), "orders.created");
    let payload: serde_json::Value =
        serde_json::from_slice(&event.payload().encode().unwrap()).unwrap();
    assert_eq!(payload, json!({"id": 7}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_scripts_are_saved_versioned_compiled_once_and_run_by_name() {
    let store = TestStore::open(BackendKind::Sqlite, |_| {}).await;
    let datastore = Arc::new(DataStoreService::new(store.ds.clone()));
    let (node, engine, _) = node_with(crate::support::config(), vec![datastore]).await;
    let call = |method: &str, params: serde_json::Value| {
        let node = node.clone();
        let method = method.to_owned();
        async move { node.call(&method, params, CallContext::new()).await }
    };

    let saved = call(
        "script.save",
        json!({"name": "double", "source": "args.n * 2"}),
    )
    .await
    .unwrap();
    assert_eq!(saved, json!({"name": "double", "version": 1}));
    let ran = call("script.run", json!({"name": "double", "args": {"n": 21}}))
        .await
        .unwrap();
    assert_eq!(ran["value"], 42);
    // Compiled when saved: the run found it compiled.
    assert_eq!(
        (
            engine.metrics().compiles(true),
            engine.metrics().compiles(false)
        ),
        (1, 0)
    );
    call("script.run", json!({"name": "double", "args": {"n": 1}}))
        .await
        .unwrap();
    assert_eq!(engine.metrics().compiles(true), 2);

    // A new version runs the new source.
    let saved = call(
        "script.save",
        json!({"name": "double", "source": "args.n * 3"}),
    )
    .await
    .unwrap();
    assert_eq!(saved["version"], 2);
    let ran = call("script.run", json!({"name": "double", "args": {"n": 2}}))
        .await
        .unwrap();
    assert_eq!(ran["value"], 6);
    let got = call("script.get", json!({"name": "double"})).await.unwrap();
    assert_eq!(
        got,
        json!({"name": "double", "version": 2, "source": "args.n * 3"})
    );

    // A script that does not compile is not saved.
    let err = call(
        "script.save",
        json!({"name": "broken", "source": "let = 1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(invalid(&err).0, "/source");
    call(
        "script.save",
        json!({"name": "hello", "source": "\"hello\""}),
    )
    .await
    .unwrap();
    let listed = call("script.list", json!({})).await.unwrap();
    assert_eq!(
        listed,
        json!({"scripts": [{"name": "double", "version": 2}, {"name": "hello", "version": 1}], "next_cursor": null})
    );
    let page = call("script.list", json!({"limit": 1})).await.unwrap();
    assert_eq!(page["scripts"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string());

    // Deleted: gone, and running it names the field.
    let deleted = call("script.delete", json!({"name": "double"}))
        .await
        .unwrap();
    assert_eq!(deleted, json!({"deleted": true}));
    let err = call("script.run", json!({"name": "double"}))
        .await
        .unwrap_err();
    assert_eq!(invalid(&err).0, "/name");
    // Saved again after a delete (version 1 again), the new source runs.
    call(
        "script.save",
        json!({"name": "double", "source": "args.n * 4"}),
    )
    .await
    .unwrap();
    let ran = call("script.run", json!({"name": "double", "args": {"n": 1}}))
        .await
        .unwrap();
    assert_eq!(ran["value"], 4);

    // Bad params name the field.
    for (params, field) in [
        (json!({}), "/source"),
        (json!({"source": "1", "name": "double"}), "/name"),
        (json!({"name": "no spaces"}), "/name"),
    ] {
        let err = call("script.run", params.clone()).await.unwrap_err();
        assert_eq!(invalid(&err).0, field, "{params}");
    }
    still_serving(&node).await;
    drop(node);
    store.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_scripts_without_a_datastore_are_unavailable_and_metrics_are_exported() {
    let (node, _, _) = node().await;
    let err = node
        .call("script.get", json!({"name": "x"}), CallContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err:?}");
    run(&node, "1").await.unwrap();
    let _ = run(&node, "loop {}").await;
    let text = node.metrics().render(Format::Prometheus);
    for needle in [
        "plexus_script_runs_total{outcome=\"ok\"} 1",
        "plexus_script_runs_total{outcome=\"limit\"} 1",
        "plexus_script_limits_total{limit=\"operations\"} 1",
        "plexus_script_operations_total",
        "plexus_script_duration_seconds_count 2",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}
