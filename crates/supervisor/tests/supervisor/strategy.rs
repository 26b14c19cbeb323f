//! One-for-one, one-for-all and rest-for-one, with task and service children.

use std::time::Duration;

use tokio::sync::broadcast;

use plexus_supervisor::{
    ChildState, ExitReason, Restart, Strategy, Supervisor, SupervisorEvent, SupervisorHandle,
    SupervisorState,
};

use crate::support::{Log, Probe, Recorder, is_exit_of, is_restart_of, settle, start, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

/// Probes running under one supervisor, its events, and what the probes logged.
struct Run {
    probes: Vec<Probe>,
    handle: SupervisorHandle,
    events: broadcast::Receiver<SupervisorEvent>,
    log: Log,
}

impl Run {
    /// Starts probes named `names` under `strategy`, allowing five restarts in ten
    /// seconds; the events are those from before the start on.
    async fn start(strategy: Strategy, names: &[&str]) -> Self {
        Self::with_temporary(strategy, names, &[]).await
    }

    /// As [`Run::start`], with the probes named in `temporary` never restarted.
    async fn with_temporary(strategy: Strategy, names: &[&str], temporary: &[&str]) -> Self {
        let log = Log::default();
        let probes: Vec<Probe> = names.iter().map(|name| Probe::new(name, &log)).collect();
        let specs = probes.iter().zip(names).map(|(probe, name)| {
            let restart = if temporary.contains(name) {
                Restart::Temporary
            } else {
                Restart::Permanent
            };
            probe.spec().restart(restart)
        });
        let sup = Supervisor::builder("root")
            .strategy(strategy)
            .intensity(5, Duration::from_secs(10))
            .children(specs)
            .build()
            .unwrap();
        let events = sup.events();
        let handle = sup.start().await.unwrap();
        Self {
            probes,
            handle,
            events,
            log,
        }
    }

    /// Makes probe `child` fail with `message`, waits until `last` is restarted and
    /// the supervisor has settled, and returns what the probes logged meanwhile.
    async fn fail(&mut self, child: usize, message: &str, last: &str) -> Vec<String> {
        let mark = self.log.len();
        self.probes[child].exit(Err(message.into())).await;
        wait_for(&mut self.events, WITHIN, |e| is_restart_of(e, last)).await;
        settle(&self.handle).await;
        self.log.since(mark)
    }

    fn restarts(&self) -> Vec<(String, u32)> {
        self.handle
            .children()
            .into_iter()
            .map(|c| (c.name, c.restarts))
            .collect()
    }
}

fn counts(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let mut run = Run::start(Strategy::OneForOne, &["a", "b", "c"]).await;
    wait_for(
        &mut run.events,
        WITHIN,
        |e| matches!(e, SupervisorEvent::ChildStarted { child, .. } if child == "c"),
    )
    .await;
    let mark = run.log.len();

    run.probes[1].exit(Err("boom".into())).await;
    let exited = wait_for(&mut run.events, WITHIN, |e| is_exit_of(e, "b")).await;
    assert!(matches!(
        exited,
        SupervisorEvent::ChildExited { abnormal: true, reason: ExitReason::Error { ref message }, .. } if message == "boom"
    ));
    let restarted = wait_for(&mut run.events, WITHIN, |e| is_restart_of(e, "b")).await;
    assert!(matches!(
        restarted,
        SupervisorEvent::ChildRestarted { restarts: 1, .. }
    ));
    settle(&run.handle).await;

    assert_eq!(run.log.since(mark), ["exit:b", "start:b"]);
    assert_eq!(run.restarts(), counts(&[("a", 0), ("b", 1), ("c", 0)]));
    assert!(
        run.handle
            .children()
            .iter()
            .all(|c| c.state == ChildState::Running)
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() {
    let mut run = Run::start(Strategy::OneForAll, &["a", "b", "c"]).await;
    assert_eq!(run.log.entries(), ["start:a", "start:b", "start:c"]);

    assert_eq!(
        run.fail(1, "boom", "c").await,
        [
            "exit:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"
        ]
    );
    assert_eq!(run.restarts(), counts(&[("a", 1), ("b", 1), ("c", 1)]));

    // A second failure, of the first child, restarts all of them again.
    assert_eq!(
        run.fail(0, "again", "c").await,
        [
            "exit:a", "stop:c", "stop:b", "start:a", "start:b", "start:c"
        ]
    );
    assert_eq!(run.restarts(), counts(&[("a", 2), ("b", 2), ("c", 2)]));
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let mut run = Run::start(Strategy::RestForOne, &["a", "b", "c", "d"]).await;

    assert_eq!(
        run.fail(1, "boom", "d").await,
        [
            "exit:b", "stop:d", "stop:c", "start:b", "start:c", "start:d"
        ]
    );
    assert_eq!(
        run.restarts(),
        counts(&[("a", 0), ("b", 1), ("c", 1), ("d", 1)])
    );

    // The last child failing restarts only itself.
    assert_eq!(run.fail(3, "late", "d").await, ["exit:d", "start:d"]);
    assert_eq!(
        run.restarts(),
        counts(&[("a", 0), ("b", 1), ("c", 1), ("d", 2)])
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_does_not_restart_a_temporary_sibling() {
    let mut run = Run::with_temporary(Strategy::OneForAll, &["a", "temp", "c"], &["temp"]).await;

    assert_eq!(
        run.fail(2, "boom", "c").await,
        ["exit:c", "stop:temp", "stop:a", "start:a", "start:c"]
    );
    let handle = run.handle;
    let temp = handle.child("temp").unwrap();
    assert_eq!(temp.state, ChildState::Stopped);
    assert_eq!(temp.restarts, 0);
    assert_eq!(temp.last_exit, Some(ExitReason::Shutdown));
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reported_service_failures_follow_the_strategy() {
    let log = Log::default();
    let services = Recorder::many(&["db", "cache", "api"], &log);
    let handle = start(
        Supervisor::builder("services")
            .strategy(Strategy::RestForOne)
            .intensity(5, Duration::from_secs(10))
            .children(services.iter().map(|s| s.spec())),
    )
    .await;
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
