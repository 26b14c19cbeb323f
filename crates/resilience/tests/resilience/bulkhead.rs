//! Bulkhead: the cap, the bounded queue, the wait limit, typed rejection.

use std::sync::Arc;
use std::time::Duration;

use plexus_resilience::{Bulkhead, BulkheadFull, BulkheadLayer};
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn};

use crate::support::MockError;

/// A service whose calls wait until `gate` is notified.
fn gated(
    gate: Arc<Notify>,
) -> impl tower::Service<u32, Response = u32, Error = MockError, Future: Send> + Clone + Send {
    service_fn(move |n: u32| {
        let gate = gate.clone();
        async move {
            gate.notified().await;
            Ok(n)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_cap_are_rejected_without_a_queue() {
    let bulkhead = Bulkhead::builder("db").max_concurrent(2).build().unwrap();
    let gate = Arc::new(Notify::new());
    let service = BulkheadLayer::new(bulkhead.clone()).layer(gated(gate.clone()));
    let a = tokio::spawn(service.clone().oneshot(1));
    let b = tokio::spawn(service.clone().oneshot(2));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.metrics().in_flight, 2);

    let err = service.clone().oneshot(3).await.unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().expect("typed rejection");
    assert_eq!(
        (full.max_concurrent, full.max_queue, full.waited),
        (2, 0, None)
    );
    assert_eq!(&*full.name, "db");

    gate.notify_waiters();
    assert_eq!(a.await.unwrap().unwrap() + b.await.unwrap().unwrap(), 3);
    assert_eq!(bulkhead.metrics().in_flight, 0);
    let m = bulkhead.metrics();
    assert_eq!((m.admitted_total, m.rejected_total), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_bounded_queue_waits_then_admits_and_rejects_when_full() {
    let bulkhead = Bulkhead::builder("db")
        .max_concurrent(1)
        .max_queue(1)
        .build()
        .unwrap();
    let gate = Arc::new(Notify::new());
    let service = BulkheadLayer::new(bulkhead.clone()).layer(gated(gate.clone()));
    let first = tokio::spawn(service.clone().oneshot(1));
    tokio::task::yield_now().await;
    let second = tokio::spawn(service.clone().oneshot(2));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.metrics().queued, 1);

    let err = service.clone().oneshot(3).await.unwrap_err();
    assert!(err.downcast_ref::<BulkheadFull>().is_some(), "queue full");

    gate.notify_one();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.metrics().queued, 0);
    assert_eq!(
        bulkhead.metrics().in_flight,
        1,
        "the waiting call took the slot"
    );
    gate.notify_one();
    assert_eq!(second.await.unwrap().unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_gives_up_after_max_wait() {
    let bulkhead = Bulkhead::builder("db")
        .max_concurrent(1)
        .max_queue(4)
        .max_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let started = tokio::time::Instant::now();
    let err = bulkhead
        .run(async { Ok::<_, MockError>(()) })
        .await
        .unwrap_err();
    let full = err.downcast_ref::<BulkheadFull>().unwrap();
    assert_eq!(full.waited, Some(Duration::from_millis(200)));
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(bulkhead.metrics().queued, 0);
    drop(held);
    bulkhead
        .run(async { Ok::<_, MockError>(()) })
        .await
        .unwrap();
}
