//! Scripts run off the async workers, on a bounded pool: a spinning script leaves
//! the node answering, and a run past the pool and its queue is refused at once.

use std::time::Duration;

use plexus_core::CallContext;
use plexus_node::CallError;
use plexus_script::{Failure, Ran, Script, ScriptConfig, ScriptEngine, ScriptError};
use serde_json::json;

use crate::support::{limit_of, node_with, run, still_serving};

/// Runs `source`, trying again while the pool's one thread is on its way back from
/// its last run (with no queue, a run is taken only by a thread waiting for one).
async fn run_when_free(engine: &ScriptEngine, source: &str) -> Result<Ran, Failure> {
    loop {
        let script = Script::Source(source.to_owned());
        match engine
            .run(script, Default::default(), CallContext::new())
            .await
        {
            Err(f) if matches!(f.error, ScriptError::Overloaded { .. }) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_the_pool_and_its_queue_is_refused() {
    let config = ScriptConfig {
        max_concurrent: 1,
        max_queued: 0,
        ..crate::support::config()
    };
    let (node, engine, mut probe) = node_with(config, Vec::new()).await;
    let held = tokio::spawn({
        let engine = engine.clone();
        async move { run_when_free(&engine, "call(\"probe.hold\")").await }
    });
    // The one thread is inside the script, which waits in probe.hold.
    probe.entered.recv().await.unwrap();
    let refused_before = engine.metrics().runs("overloaded");
    let err = run(&node, "1").await.unwrap_err();
    match &err {
        CallError::Failed {
            detail: Some(d),
            retryable,
            ..
        } => {
            assert_eq!(d["kind"], "overloaded");
            assert_eq!(
                (d["max_concurrent"].clone(), d["max_queued"].clone()),
                (json!(1), json!(0))
            );
            assert!(!retryable, "a burst must not open the breaker");
        }
        other => panic!("expected overloaded, got {other:?}"),
    }
    assert_eq!(engine.metrics().runs("overloaded"), refused_before + 1);
    probe.release();
    assert_eq!(held.await.unwrap().unwrap().value, "released");
    // The thread is back: the next run is taken (once the thread waits again).
    let mut ran = run(&node, "40 + 2").await;
    for _ in 0..1000 {
        if ran.is_ok() {
            break;
        }
        tokio::task::yield_now().await;
        ran = run(&node, "40 + 2").await;
    }
    assert_eq!(ran.unwrap()["value"], 42);
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_script_does_not_stall_the_nodes_only_worker() {
    let config = ScriptConfig {
        max_operations: 1_000_000_000_000,
        max_duration_ms: 2_000,
        ..crate::support::config()
    };
    let (node, _, mut probe) = node_with(config, Vec::new()).await;
    let spinning = tokio::spawn({
        let node = node.clone();
        async move {
            run(
                &node,
                "call(\"probe.enter\");\nlet i = 0;\nloop { i += 1; }",
            )
            .await
        }
    });
    probe.entered.recv().await.unwrap();
    // The script spins on its pool thread; this runtime's one worker still answers.
    for _ in 0..20 {
        let echoed = node
            .call(
                "echo.say",
                json!({"text": "still here"}),
                CallContext::new(),
            )
            .await
            .unwrap();
        assert_eq!(echoed["text"], "still here");
        assert!(!spinning.is_finished());
    }
    let err = tokio::time::timeout(Duration::from_secs(10), spinning)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(limit_of(&err), "duration");
    still_serving(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_stops_its_script() {
    let config = ScriptConfig {
        max_concurrent: 1,
        max_queued: 0,
        max_operations: 1_000_000_000_000,
        max_duration_ms: 600_000,
        ..crate::support::config()
    };
    let (node, engine, mut probe) = node_with(config, Vec::new()).await;
    // Spinning in the VM, then waiting inside a host call that never answers.
    for source in ["call(\"probe.enter\");\nloop { }", "call(\"probe.hold\")"] {
        let running = tokio::spawn({
            let engine = engine.clone();
            async move {
                // The one thread may still be on its way back from the last run.
                loop {
                    let script = plexus_script::Script::Source(source.to_owned());
                    match engine
                        .run(script, Default::default(), CallContext::new())
                        .await
                    {
                        Err(f) if matches!(f.error, ScriptError::Overloaded { .. }) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        other => return other,
                    }
                }
            }
        });
        probe.entered.recv().await.unwrap();
        // The only thread is busy (its own limits are minutes away); the caller goes.
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        // The thread is freed at once: the next run is taken.
        let started = std::time::Instant::now();
        loop {
            match run(&node, "40 + 2").await {
                Ok(ran) => {
                    assert_eq!(ran["value"], 42);
                    break;
                }
                Err(err) => {
                    assert_eq!(crate::support::detail(&err)["kind"], "overloaded", "{err}");
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "the abandoned script still holds the thread: {source}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    // A script ran just above; with one thread and no queue, another run right
    // away may find the thread still on its way back to the pool, so the rest of
    // the node is what is checked here.
    let echoed = node
        .call("echo.say", json!({"text": "hi"}), CallContext::new())
        .await
        .unwrap();
    assert_eq!(echoed["text"], "hi");
}
