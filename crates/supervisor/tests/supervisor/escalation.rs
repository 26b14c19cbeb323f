//! A nested supervisor that gives up makes its parent see it fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use plexus_bus::{Bus, SubscribeOptions};
use plexus_supervisor::{
    ChildKind, ChildSpec, ChildState, ExitReason, Supervisor, SupervisorEvent, SupervisorState,
};

use crate::support::{Log, Probe, is_gave_up, is_restart_of, wait_for};

const WITHIN: Duration = Duration::from_secs(60);

/// A task that fails at once on its first `failures` starts and then runs until
/// stopped.
fn fails_first(name: &str, failures: u32) -> (ChildSpec, Arc<AtomicU32>) {
    let starts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&starts);
    let spec = ChildSpec::task(name, move |ctx| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                return Err(format!("start {n} failed"));
            }
            ctx.stopped().await;
            Ok(())
        }
    });
    (spec, starts)
}

/// A supervisor "inner" allowing one restart in five seconds of a worker that fails
/// its first `failures` starts; the worker's start count.
fn inner_failing_first(failures: u32) -> (Supervisor, Arc<AtomicU32>) {
    let (worker, starts) = fails_first("worker", failures);
    let inner = Supervisor::builder("inner")
        .intensity(1, Duration::from_secs(5))
        .child(worker)
        .build()
        .unwrap();
    (inner, starts)
}

#[tokio::test(start_paused = true)]
async fn the_parent_restarts_a_nested_supervisor_that_gave_up() {
    // The inner supervisor allows one restart; its worker fails twice in a row, so
    // the first inner run gives up. The parent restarts it, and the worker (now past
    // its failures) stays up under a fresh restart history.
    let (inner, starts) = inner_failing_first(2);
    let log = Log::default();
    let sibling = Probe::new("sibling", &log);
    let outer = Supervisor::builder("outer")
        .intensity(3, Duration::from_secs(5))
        .child(sibling.spec())
        .child(ChildSpec::supervisor(inner.clone()))
        .build()
        .unwrap();
    let mut outer_events = outer.events();
    let mut inner_events = inner.events();
    let handle = outer.start().await.unwrap();

    let inner_gave_up = wait_for(&mut inner_events, WITHIN, is_gave_up).await;
    assert!(matches!(
        inner_gave_up,
        SupervisorEvent::GaveUp { ref supervisor, ref child, restarts: 2, .. }
            if supervisor == "inner" && child == "worker"
    ));
    let exited = wait_for(
        &mut outer_events,
        WITHIN,
        |e| matches!(e, SupervisorEvent::ChildExited { child, .. } if child == "inner"),
    )
    .await;
    match exited {
        SupervisorEvent::ChildExited {
            reason: ExitReason::GaveUp { child, reason },
            abnormal: true,
            ..
        } => {
            assert_eq!(child, "worker");
            assert_eq!(reason, "returned an error: start 2 failed");
        }
        other => panic!("{other:?}"),
    }
    wait_for(&mut outer_events, WITHIN, |e| is_restart_of(e, "inner")).await;

    assert_eq!(handle.state(), SupervisorState::Running);
    let info = handle.child("inner").unwrap();
    assert_eq!(
        (info.kind, info.state, info.restarts),
        (ChildKind::Supervisor, ChildState::Running, 1)
    );
    let nested = handle.nested("inner").unwrap();
    assert_eq!(nested.state(), SupervisorState::Running);
    assert_eq!(nested.child("worker").unwrap().restarts, 0);
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    assert_eq!(handle.child("sibling").unwrap().restarts, 0);

    // Shutting the parent down shuts the nested supervisor down with it.
    let report = handle.shutdown().await;
    assert_eq!(report.order(), ["inner", "sibling"]);
    assert_eq!(nested.state(), SupervisorState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_parent_gives_up_when_its_nested_supervisor_keeps_giving_up() {
    let (inner, _) = inner_failing_first(u32::MAX);
    let bus = Bus::new();
    let mut gave_up_on_bus = bus
        .subscribe("plexus.supervisor.gave_up", SubscribeOptions::new())
        .unwrap();
    let outer = Supervisor::builder("outer")
        .intensity(2, Duration::from_secs(5))
        .child(ChildSpec::supervisor(inner.clone()))
        .bus(bus)
        .build()
        .unwrap();
    let mut inner_events = inner.events();
    let handle = outer.start().await.unwrap();

    match handle.terminated().await {
        plexus_supervisor::Termination::GaveUp {
            child,
            reason,
            restarts,
            ..
        } => {
            assert_eq!((child.as_str(), restarts), ("inner", 3));
            assert!(matches!(reason, ExitReason::GaveUp { ref child, .. } if child == "worker"));
        }
        other => panic!("{other:?}"),
    }
    // The inner supervisor gave up once per run: its first run and two restarts.
    let mut inner_give_ups = 0;
    while let Ok(event) = inner_events.try_recv() {
        if matches!(event, SupervisorEvent::GaveUp { .. }) {
            inner_give_ups += 1;
        }
    }
    assert_eq!(inner_give_ups, 3);

    // Both levels published their give-ups on the parent's bus (the inner one has
    // none of its own).
    let mut who = Vec::new();
    for _ in 0..4 {
        let envelope = tokio::time::timeout(WITHIN, gave_up_on_bus.recv())
            .await
            .unwrap()
            .unwrap();
        let event = envelope.payload().decode::<SupervisorEvent>().unwrap();
        who.push(event.supervisor().to_owned());
    }
    who.sort();
    assert_eq!(who, ["inner", "inner", "inner", "outer"]);
}
