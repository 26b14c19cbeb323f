//! Permanent, transient and temporary children after normal and abnormal exits.

use std::time::Duration;

use plexus_supervisor::{
    ChildSpec, ChildState, ExitReason, Restart, Supervisor, SupervisorError, SupervisorEvent,
};

use crate::support::{Log, Probe, Recorder, is_exit_of, is_gave_up, settle, start, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

/// Runs one child of type `restart` that exits with `result`, and returns whether it
/// was restarted, its state afterwards and the exit event.
async fn exit_once(
    restart: Restart,
    result: Result<(), String>,
) -> (u32, ChildState, SupervisorEvent) {
    let log = Log::default();
    let probe = Probe::new("worker", &log);
    let sup = Supervisor::builder("root")
        .intensity(5, Duration::from_secs(10))
        .child(probe.spec().restart(restart))
        .build()
        .unwrap();
    let handle = sup.start().await.unwrap();
    let mut events = handle.events();
    probe.exit(result).await;
    let exited = wait_for(&mut events, WITHIN, |e| is_exit_of(e, "worker")).await;
    settle(&handle).await;
    let info = handle.child("worker").unwrap();
    let starts = log
        .entries()
        .iter()
        .filter(|e| e.starts_with("start:"))
        .count();
    assert_eq!(starts as u32, info.restarts + 1, "log: {:?}", log.entries());
    handle.shutdown().await;
    (info.restarts, info.state, exited)
}

#[tokio::test(start_paused = true)]
async fn permanent_children_restart_after_any_exit() {
    let (restarts, state, exited) = exit_once(Restart::Permanent, Ok(())).await;
    assert_eq!((restarts, state), (1, ChildState::Running));
    assert!(matches!(
        exited,
        SupervisorEvent::ChildExited {
            abnormal: false,
            reason: ExitReason::Normal,
            ..
        }
    ));

    let (restarts, state, exited) = exit_once(Restart::Permanent, Err("bad".into())).await;
    assert_eq!((restarts, state), (1, ChildState::Running));
    assert!(matches!(
        exited,
        SupervisorEvent::ChildExited { abnormal: true, .. }
    ));
}

/// Asserts the restarts and state of a `restart` child after a normal exit, then
/// after an abnormal one.
async fn assert_outcomes(restart: Restart, expected: [(u32, ChildState); 2]) {
    for (result, expected) in [Ok(()), Err("bad".into())].into_iter().zip(expected) {
        let (restarts, state, _) = exit_once(restart, result).await;
        assert_eq!((restarts, state), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn transient_children_restart_only_after_an_abnormal_exit() {
    use ChildState::{Running, Stopped};
    assert_outcomes(Restart::Transient, [(0, Stopped), (1, Running)]).await;
}

#[tokio::test(start_paused = true)]
async fn temporary_children_never_restart() {
    use ChildState::{Failed, Stopped};
    assert_outcomes(Restart::Temporary, [(0, Stopped), (0, Failed)]).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_exits_abnormally_and_is_restarted() {
    let spec = ChildSpec::task("flaky", |_ctx| async {
        panic!("index out of range");
    })
    .restart(Restart::Transient);
    let sup = Supervisor::builder("root")
        .intensity(1, Duration::from_secs(10))
        .child(spec)
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();
    let exited = wait_for(&mut events, WITHIN, |e| is_exit_of(e, "flaky")).await;
    assert_eq!(
        exited,
        SupervisorEvent::ChildExited {
            supervisor: "root".into(),
            child: "flaky".into(),
            reason: ExitReason::Panic {
                message: "index out of range".into()
            },
            abnormal: true,
            pid: None,
        }
    );
    // It panics again at once: the second restart within the window is refused.
    let gave_up = wait_for(&mut events, WITHIN, is_gave_up).await;
    assert!(matches!(
        gave_up,
        SupervisorEvent::GaveUp { restarts: 2, .. }
    ));
    assert_eq!(handle.child("flaky").unwrap().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn transient_and_temporary_services_reported_failed() {
    let log = Log::default();
    let [transient, temporary] = ["transient", "temporary"].map(|name| Recorder::new(name, &log));
    let handle = start(
        Supervisor::builder("root")
            .intensity(5, Duration::from_secs(10))
            .child(transient.spec().restart(Restart::Transient))
            .child(temporary.spec().restart(Restart::Temporary)),
    )
    .await;

    let info = handle.report_failure("transient", "stuck").await.unwrap();
    assert_eq!((info.state, info.restarts), (ChildState::Running, 1));

    let info = handle.report_failure("temporary", "stuck").await.unwrap();
    assert_eq!((info.state, info.restarts), (ChildState::Failed, 0));
    assert_eq!(
        log.entries(),
        [
            "start:transient",
            "start:temporary",
            "stop:transient",
            "start:transient",
            "stop:temporary"
        ]
    );

    // A child that does not run cannot fail again, and unknown names are refused.
    let err = handle
        .report_failure("temporary", "again")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SupervisorError::ChildNotRunning { state: ChildState::Failed, ref child, .. } if child == "temporary"
    ));
    let err = handle.report_failure("nobody", "x").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NoSuchChild { ref child, .. } if child == "nobody"));

    // A manual restart brings the temporary child back without counting as a failure.
    let info = handle.restart_child("temporary").await.unwrap();
    assert_eq!((info.state, info.restarts), (ChildState::Running, 1));
    assert_eq!(log.entries().last().unwrap(), "start:temporary");
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restart_child_stops_and_starts_a_running_child() {
    let log = Log::default();
    let [a, b] = ["a", "b"].map(|name| Probe::new(name, &log));
    let handle = start(
        Supervisor::builder("root")
            .intensity(0, Duration::from_secs(10))
            .children([a.spec(), b.spec()]),
    )
    .await;
    let mark = log.len();
    let info = handle.restart_child("a").await.unwrap();
    assert_eq!((info.state, info.restarts), (ChildState::Running, 1));
    assert_eq!(log.since(mark), ["stop:a", "start:a"]);
    // Intensity 0 allows no automatic restart, yet the manual one did not count.
    assert_eq!(handle.state(), plexus_supervisor::SupervisorState::Running);
    handle.shutdown().await;
}
