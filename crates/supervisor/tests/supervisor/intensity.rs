//! Restart intensity: more than R restarts within T and the supervisor gives up.

use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions};
use plexus_supervisor::{
    ChildSpec, ChildState, ExitReason, Supervisor, SupervisorEvent, SupervisorHandle,
    SupervisorState, Termination,
};
use tokio::time::Instant;

use crate::support::{Log, Recorder, is_gave_up, is_restart_of, wait_for};

const WITHIN: Duration = Duration::from_secs(600);

/// A task that runs for `life` and then fails.
fn failing_after(name: &str, life: Duration) -> ChildSpec {
    ChildSpec::task(name, move |_ctx| async move {
        tokio::time::sleep(life).await;
        Err("lost connection".to_owned())
    })
}

#[tokio::test(start_paused = true)]
async fn more_restarts_than_allowed_within_the_window_gives_up() {
    let bus = Bus::new();
    let mut on_bus = bus
        .subscribe("plexus.supervisor.gave_up", SubscribeOptions::new())
        .unwrap();
    let log = Log::default();
    let steady = Recorder::new("steady", &log);
    let sup = Supervisor::builder("root")
        .intensity(3, Duration::from_secs(10))
        .child(steady.spec())
        .child(failing_after("worker", Duration::from_secs(2)))
        .bus(bus)
        .build()
        .unwrap();
    let mut events = sup.events();
    let started = Instant::now();
    let handle = sup.start().await.unwrap();

    let gave_up = wait_for(&mut events, WITHIN, is_gave_up).await;
    // Failures at 2, 4, 6 and 8 s: the fourth restart within 10 s is one too many.
    assert_eq!(started.elapsed(), Duration::from_secs(8));
    let expected = SupervisorEvent::GaveUp {
        supervisor: "root".into(),
        child: "worker".into(),
        restarts: 4,
        max_restarts: 3,
        window_ms: 10_000,
        reason: ExitReason::Error {
            message: "lost connection".into(),
        },
    };
    assert_eq!(gave_up, expected);

    // Everything is stopped, the supervisor is failed, and waiting on it says why.
    assert_eq!(handle.state(), SupervisorState::Failed);
    assert_eq!(log.entries(), ["start:steady", "stop:steady"]);
    let worker = handle.child("worker").unwrap();
    assert_eq!((worker.state, worker.restarts), (ChildState::Failed, 3));
    match handle.terminated().await {
        Termination::GaveUp {
            child,
            restarts,
            report,
            ..
        } => {
            assert_eq!((child.as_str(), restarts), ("worker", 4));
            assert_eq!(report.order(), ["steady"]);
        }
        other => panic!("expected a give-up, got {other:?}"),
    }

    // The same event went onto the bus, as JSON once it leaves the process.
    let envelope = tokio::time::timeout(WITHIN, on_bus.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(envelope.topic().as_str(), "plexus.supervisor.gave_up");
    assert_eq!(
        *envelope.payload().decode::<SupervisorEvent>().unwrap(),
        expected
    );
    let json: serde_json::Value =
        serde_json::from_slice(&envelope.payload().encode().unwrap()).unwrap();
    assert_eq!(json["event"], "gave_up");
    assert_eq!(json["child"], "worker");
    assert_eq!(json["reason"]["message"], "lost connection");

    // A terminated supervisor takes no more commands.
    assert!(handle.report_failure("steady", "x").await.is_err());
}

/// Starts a supervisor allowing two restarts in ten seconds of a worker that fails
/// after `life`; returns its events and when it started.
async fn start_failing_after(
    life: Duration,
) -> (
    SupervisorHandle,
    tokio::sync::broadcast::Receiver<SupervisorEvent>,
    Instant,
) {
    let sup = Supervisor::builder("root")
        .intensity(2, Duration::from_secs(10))
        .child(failing_after("worker", life))
        .build()
        .unwrap();
    let events = sup.events();
    let started = Instant::now();
    (sup.start().await.unwrap(), events, started)
}

#[tokio::test(start_paused = true)]
async fn restarts_spaced_wider_than_the_window_go_on() {
    let (handle, mut events, started) = start_failing_after(Duration::from_secs(6)).await;
    for n in 1..=8u32 {
        let event = wait_for(&mut events, WITHIN, |e| is_restart_of(e, "worker")).await;
        assert!(matches!(event, SupervisorEvent::ChildRestarted { restarts, .. } if restarts == n));
    }
    // At most two restarts (6 s apart) ever fall within one 10 s window.
    assert_eq!(started.elapsed(), Duration::from_secs(48));
    assert_eq!(handle.state(), SupervisorState::Running);
    assert_eq!(handle.child("worker").unwrap().restarts, 8);
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restarts_just_inside_the_window_give_up() {
    // Same intensity, failures 4 s apart: the third restart falls within 10 s.
    let (handle, mut events, started) = start_failing_after(Duration::from_secs(4)).await;
    let gave_up = wait_for(&mut events, WITHIN, is_gave_up).await;
    assert!(matches!(
        gave_up,
        SupervisorEvent::GaveUp { restarts: 3, .. }
    ));
    assert_eq!(started.elapsed(), Duration::from_secs(12));
    assert_eq!(handle.child("worker").unwrap().restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_fails_to_start_again_counts_against_the_intensity() {
    let log = Log::default();
    let db = Recorder::new("db", &log);
    let sup = Supervisor::builder("root")
        .intensity(2, Duration::from_secs(10))
        .child(db.spec())
        .build()
        .unwrap();
    let mut events = sup.events();
    let handle = sup.start().await.unwrap();

    // The next two starts fail; the third succeeds: three restarts would be one too
    // many, so the supervisor gives up on the second failed start.
    db.fail_starts.store(2, std::sync::atomic::Ordering::SeqCst);
    let info = handle.report_failure("db", "unhealthy").await.unwrap();
    assert_eq!(info.state, ChildState::Failed);
    let gave_up = wait_for(&mut events, WITHIN, is_gave_up).await;
    match gave_up {
        SupervisorEvent::GaveUp {
            restarts, reason, ..
        } => {
            assert_eq!(restarts, 3);
            assert!(
                matches!(&reason, ExitReason::StartFailed { error } if error.contains("database unreachable")),
                "{reason:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        log.entries(),
        ["start:db", "stop:db", "start-failed:db", "start-failed:db"]
    );
    assert_eq!(handle.state(), SupervisorState::Failed);
}
