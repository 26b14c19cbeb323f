//! One-for-one, one-for-all and rest-for-one, with task and service children.

use std::time::Duration;

use plexus_supervisor::{
    ChildState, ExitReason, Restart, Strategy, Supervisor, SupervisorEvent, SupervisorState,
};

use crate::support::{Log, Probe, Recorder, is_exit_of, is_restart_of, settle, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

fn probes(names: &[&str], log: &Log) -> Vec<Probe> {
    names.iter().map(|name| Probe::new(name, log)).collect()
}

fn restarts(handle: &plexus_supervisor::SupervisorHandle) -> Vec<(String, u32)> {
    handle
        .children()
        .into_iter()
        .map(|c| (c.name, c.restarts))
        .collect()
}

fn counts(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = Log::default();
    let p = probes(&["a", "b", "c"], &log);
    let sup = Supervisor::builder("root")
        .strategy(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .children(p.iter().map(Probe::spec))
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    wait_for(
        &mut events,
        WITHIN,
        |e| matches!(e, SupervisorEvent::ChildStarted { child, .. } if child == "c"),
    )
    .await;
    let mark = log.len();

    p[1].exit(Err("boom".into())).await;
    let exited = wait_for(&mut events, WITHIN, |e| is_exit_of(e, "b")).await;
    assert!(matches!(
        exited,
        SupervisorEvent::ChildExited { abnormal: true, reason: ExitReason::Error { ref message }, .. } if message == "boom"
    ));
    let restarted = wait_for(&mut events, WITHIN, |e| is_restart_of(e, "b")).await;
    assert!(matches!(
        restarted,
        SupervisorEvent::ChildRestarted { restarts: 1, .. }
    ));
    settle(&handle).await;

    assert_eq!(log.since(mark), ["exit:b", "start:b"]);
    assert_eq!(restarts(&handle), counts(&[("a", 0), ("b", 1), ("c", 0)]));
    assert!(
        handle
            .children()
            .iter()
            .all(|c| c.state == ChildState::Running)
    );
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() {
    let log = Log::default();
    let p = probes(&["a", "b", "c"], &log);
    let sup = Supervisor::builder("root")
        .strategy(Strategy::OneForAll)
        .intensity(5, Duration::from_secs(10))
        .children(p.iter().map(Probe::spec))
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let mut events = handle.events();
    assert_eq!(log.entries(), ["start:a", "start:b", "start:c"]);
    let mark = log.len();

    p[1].exit(Err("boom".into())).await;
    wait_for(&mut events, WITHIN, |e| is_restart_of(e, "c")).await;
    settle(&handle).await;

    assert_eq!(
        log.since(mark),
        [
            "exit:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"
        ]
    );
    assert_eq!(restarts(&handle), counts(&[("a", 1), ("b", 1), ("c", 1)]));

    // A second failure, of the first child, restarts all of them again.
    let mark = log.len();
    p[0].exit(Err("again".into())).await;
    wait_for(&mut events, WITHIN, |e| is_restart_of(e, "c")).await;
    settle(&handle).await;
    assert_eq!(
        log.since(mark),
        [
            "exit:a", "stop:c", "stop:b", "start:a", "start:b", "start:c"
        ]
    );
    assert_eq!(restarts(&handle), counts(&[("a", 2), ("b", 2), ("c", 2)]));
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let log = Log::default();
    let p = probes(&["a", "b", "c", "d"], &log);
    let sup = Supervisor::builder("root")
        .strategy(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(10))
        .children(p.iter().map(Probe::spec))
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let mut events = handle.events();
    let mark = log.len();

    p[1].exit(Err("boom".into())).await;
    wait_for(&mut events, WITHIN, |e| is_restart_of(e, "d")).await;
    settle(&handle).await;

    assert_eq!(
        log.since(mark),
        [
            "exit:b", "stop:d", "stop:c", "start:b", "start:c", "start:d"
        ]
    );
    assert_eq!(
        restarts(&handle),
        counts(&[("a", 0), ("b", 1), ("c", 1), ("d", 1)])
    );

    // The last child failing restarts only itself.
    let mark = log.len();
    p[3].exit(Err("late".into())).await;
    wait_for(&mut events, WITHIN, |e| is_restart_of(e, "d")).await;
    settle(&handle).await;
    assert_eq!(log.since(mark), ["exit:d", "start:d"]);
    assert_eq!(
        restarts(&handle),
        counts(&[("a", 0), ("b", 1), ("c", 1), ("d", 2)])
    );
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_does_not_restart_a_temporary_sibling() {
    let log = Log::default();
    let p = probes(&["a", "temp", "c"], &log);
    let sup = Supervisor::builder("root")
        .strategy(Strategy::OneForAll)
        .intensity(5, Duration::from_secs(10))
        .child(p[0].spec())
        .child(p[1].spec().restart(Restart::Temporary))
        .child(p[2].spec())
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let mut events = handle.events();
    let mark = log.len();

    p[2].exit(Err("boom".into())).await;
    wait_for(&mut events, WITHIN, |e| is_restart_of(e, "c")).await;
    settle(&handle).await;

    assert_eq!(
        log.since(mark),
        ["exit:c", "stop:temp", "stop:a", "start:a", "start:c"]
    );
    let temp = handle.child("temp").unwrap();
    assert_eq!(temp.state, ChildState::Stopped);
    assert_eq!(temp.restarts, 0);
    assert_eq!(temp.last_exit, Some(ExitReason::Shutdown));
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reported_service_failures_follow_the_strategy() {
    let log = Log::default();
    let db = Recorder::new("db", &log);
    let cache = Recorder::new("cache", &log);
    let api = Recorder::new("api", &log);
    let sup = Supervisor::builder("services")
        .strategy(Strategy::RestForOne)
        .intensity(5, Duration::from_secs(10))
        .children([db.spec(), cache.spec(), api.spec()])
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let mut events = handle.events();
    assert_eq!(log.entries(), ["start:db", "start:cache", "start:api"]);
    log.clear();

    let after = handle
        .report_failure("cache", "health check failed 3 times")
        .await
        .unwrap();
    assert_eq!(after.state, ChildState::Running);
    assert_eq!(after.restarts, 1);
    assert_eq!(
        after.last_exit,
        Some(ExitReason::Failed {
            reason: "health check failed 3 times".into()
        })
    );
    // The failed service is stopped first, then the one after it; both start again.
    assert_eq!(
        log.entries(),
        ["stop:cache", "stop:api", "start:cache", "start:api"]
    );
    let exited = wait_for(&mut events, WITHIN, |e| is_exit_of(e, "cache")).await;
    assert!(matches!(
        exited,
        SupervisorEvent::ChildExited { abnormal: true, .. }
    ));
    assert_eq!(handle.child("db").unwrap().restarts, 0);
    assert_eq!(handle.child("api").unwrap().restarts, 1);
    assert_eq!(handle.state(), SupervisorState::Running);
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_fresh_service_is_built_for_every_start_by_a_factory() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let log = Log::default();
    let built = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&built);
    let factory_log = log.clone();
    let spec = plexus_supervisor::ChildSpec::service_factory("fresh", move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Recorder::new(&format!("fresh{n}"), &factory_log) as Arc<dyn plexus_core::Service>
    });
    let handle = Supervisor::builder("root")
        .child(spec)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    handle.report_failure("fresh", "stale").await.unwrap();
    assert_eq!(built.load(Ordering::SeqCst), 2);
    assert_eq!(
        log.entries(),
        ["start:fresh1", "stop:fresh1", "start:fresh2"]
    );
    handle.shutdown().await;
}
