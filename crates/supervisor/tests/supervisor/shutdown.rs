//! Shutdown in reverse start order, kills after the timeout, and failed starts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use plexus_supervisor::{
    ChildSpec, ChildState, ExitReason, Shutdown, StartError, Supervisor, SupervisorError,
    SupervisorEvent, SupervisorState, Termination,
};
use tokio::time::Instant;

use crate::support::{Log, Probe, Recorder, is_stopped, start, start_err, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn children_stop_in_reverse_start_order() {
    let log = Log::default();
    let [a, c] = [Recorder::new("a", &log), Recorder::new("c", &log)];
    let b = Probe::new("b", &log);
    let sup = Supervisor::builder("root")
        .children([a.spec(), b.spec(), c.spec()])
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    log.clear();

    let report = handle.shutdown().await;
    assert_eq!(log.entries(), ["stop:c", "stop:b", "stop:a"]);
    assert_eq!(report.order(), ["c", "b", "a"]);
    assert!(report.killed().is_empty());
    assert!(
        report
            .stopped
            .iter()
            .all(|s| s.reason == ExitReason::Shutdown)
    );
    assert_eq!(handle.state(), SupervisorState::Stopped);
    assert!(
        handle
            .children()
            .iter()
            .all(|c| c.state == ChildState::Stopped)
    );
    let stopped = wait_for(&mut events, WITHIN, is_stopped).await;
    assert_eq!(
        stopped,
        SupervisorEvent::Stopped {
            supervisor: "root".into(),
            killed: vec![]
        }
    );
    assert!(matches!(handle.terminated().await, Termination::Shutdown(r) if r == report));
    // A second shutdown reports the first.
    assert_eq!(handle.shutdown().await, report);
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_stop_is_killed_after_its_timeout() {
    let log = Log::default();
    let polite = Recorder::new("polite", &log);
    let stuck_service = Recorder::new("stuck-service", &log);
    stuck_service.hang_on_stop.store(true, Ordering::SeqCst);
    let stubborn = ChildSpec::task("stubborn", |_ctx| async {
        // Ignores the stop request.
        std::future::pending::<()>().await;
        Ok(())
    })
    .shutdown_timeout(Duration::from_secs(2));
    let sup = Supervisor::builder("root")
        .child(polite.spec())
        .child(
            stuck_service
                .spec()
                .shutdown_timeout(Duration::from_secs(3)),
        )
        .child(stubborn)
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();

    let started = Instant::now();
    let report = handle.shutdown().await;
    // 2 s for the task, then 3 s for the service, one after the other.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(report.order(), ["stubborn", "stuck-service", "polite"]);
    assert_eq!(report.killed(), ["stubborn", "stuck-service"]);
    assert_eq!(report.stopped[0].reason, ExitReason::Killed);
    assert_eq!(report.stopped[2].reason, ExitReason::Shutdown);
    assert!(!report.stopped[2].killed);
}

#[tokio::test(start_paused = true)]
async fn brutal_kill_does_not_wait() {
    let log = Log::default();
    let probe = Probe::new("worker", &log);
    let handle =
        start(Supervisor::builder("root").child(probe.spec().shutdown(Shutdown::BrutalKill))).await;
    let started = Instant::now();
    let report = handle.shutdown().await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(report.killed(), ["worker"]);
    // It never saw the stop request.
    assert_eq!(log.entries(), ["start:worker"]);
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_to_start_fails_the_start_and_stops_the_others() {
    let log = Log::default();
    let services = Recorder::many(&["a", "b", "c"], &log);
    services[1].fail_starts.store(1, Ordering::SeqCst);
    let err =
        start_err(Supervisor::builder("root").children(services.iter().map(|s| s.spec()))).await;
    match err {
        SupervisorError::StartFailed {
            supervisor,
            child,
            source: StartError::Service(_),
        } => assert_eq!((supervisor.as_str(), child.as_str()), ("root", "b")),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.entries(), ["start:a", "start-failed:b", "stop:a"]);
    assert_eq!(services[2].starts.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_start_that_takes_too_long_fails() {
    let slow = ChildSpec::supervisor(
        Supervisor::builder("inner")
            .child(ChildSpec::task("t", |ctx| async move {
                ctx.stopped().await;
                Ok(())
            }))
            .build()
            .unwrap(),
    );
    // A nested supervisor starts at once; a service that never finishes starting
    // hits its start timeout.
    struct Hangs;
    #[plexus_core::async_trait]
    impl plexus_core::Service for Hangs {
        fn descriptor(&self) -> plexus_core::ServiceDescriptor {
            plexus_core::ServiceDescriptor::new("hangs", "test")
        }
        async fn start(&self) -> Result<(), plexus_core::ServiceError> {
            std::future::pending().await
        }
        async fn call(
            &self,
            _: &str,
            _: serde_json::Value,
            _: plexus_core::CallContext,
        ) -> Result<serde_json::Value, plexus_core::ServiceError> {
            Ok(serde_json::Value::Null)
        }
    }
    let err = start_err(
        Supervisor::builder("root")
            .child(slow.start_timeout(Duration::from_secs(1)))
            .child(
                ChildSpec::service("hangs", std::sync::Arc::new(Hangs))
                    .start_timeout(Duration::from_secs(1)),
            ),
    )
    .await;
    assert!(matches!(
        err,
        SupervisorError::StartFailed { ref child, source: StartError::Timeout(d), .. }
            if child == "hangs" && d == Duration::from_secs(1)
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_shuts_the_supervisor_down() {
    let log = Log::default();
    let probe = Probe::new("worker", &log);
    let sup = Supervisor::builder("root")
        .child(probe.spec())
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    drop(handle);
    wait_for(&mut events, WITHIN, is_stopped).await;
    assert_eq!(log.entries(), ["start:worker", "stop:worker"]);
}

#[test]
fn bad_definitions_are_refused_with_the_reason() {
    let task = || {
        ChildSpec::task("t", |ctx| async move {
            ctx.stopped().await;
            Ok(())
        })
    };
    let err = Supervisor::builder("root")
        .child(task())
        .child(task())
        .build()
        .unwrap_err();
    assert!(matches!(err, SupervisorError::DuplicateChild { ref child, .. } if child == "t"));
    assert_eq!(
        err.to_string(),
        "supervisor `root` has two children named `t`; child names must be unique"
    );

    let err = Supervisor::builder("").build().unwrap_err();
    assert!(matches!(err, SupervisorError::InvalidName { .. }));

    let err = Supervisor::builder("root")
        .intensity(1, Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        SupervisorError::InvalidConfig {
            field: "intensity.within",
            ..
        }
    ));

    let err = Supervisor::builder("root")
        .child(ChildSpec::process(
            "p",
            plexus_supervisor::ProcessSpec::new("  "),
        ))
        .build()
        .unwrap_err();
    assert!(matches!(err, SupervisorError::InvalidChild { ref child, .. } if child == "p"));

    let err = Supervisor::builder("root")
        .config(plexus_supervisor::SupervisorConfig {
            event_capacity: 0,
            ..Default::default()
        })
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        SupervisorError::InvalidConfig {
            field: "event_capacity",
            ..
        }
    ));
}
