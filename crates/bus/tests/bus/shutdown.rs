//! Graceful shutdown: stop accepting, drain, report exactly what was not delivered.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use plexus_bus::{Bus, BusError, Overflow, RejectReason, SubscribeOptions};
use plexus_core::{Envelope, Priority};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn shutdown_with_full_queues_reports_every_undelivered_event() {
    let bus = Bus::new();
    let stuck = bus
        .subscribe(
            "jobs",
            SubscribeOptions::new()
                .capacity(8)
                .name("stuck")
                .overflow(Overflow::Reject),
        )
        .unwrap();
    let mut reader = bus.subscribe("jobs", SubscribeOptions::new()).unwrap();
    let mut accepted = BTreeSet::new();
    for n in 0..8 {
        bus.publish(numbered("jobs", n)).await.unwrap();
        accepted.insert(n);
    }
    bus.publish(numbered_at("jobs", 100, Priority::Critical))
        .await
        .unwrap();
    accepted.insert(100);
    // The reader takes everything during the drain; the stuck subscriber never reads.
    let drain = tokio::spawn(async move {
        let mut got = 0;
        while reader.recv().await.is_some() {
            got += 1;
        }
        got
    });
    let report = bus.shutdown(Duration::from_millis(500)).await;
    assert!(!report.drained);
    assert_eq!(
        within(drain).await.unwrap(),
        9,
        "the reader got all it was sent"
    );
    let undelivered: BTreeSet<u64> = report
        .undelivered
        .iter()
        .map(|u| number(&u.envelope))
        .collect();
    assert_eq!(
        undelivered, accepted,
        "exactly the stuck subscriber's events"
    );
    assert!(
        report
            .undelivered
            .iter()
            .all(|u| u.subscription == stuck.id())
    );
    assert_eq!(report.undelivered[0].name.as_deref(), Some("stuck"));
    assert_eq!(
        number(&report.undelivered[0].envelope),
        100,
        "critical first"
    );
    // Nothing new is accepted.
    assert!(matches!(
        bus.publish(numbered("jobs", 9)).await,
        Err(BusError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_publisher_blocked_at_shutdown_is_released_with_an_error() {
    let bus = Bus::new();
    let _stuck = bus
        .subscribe(
            "q",
            SubscribeOptions::new()
                .capacity(1)
                .overflow(Overflow::Block {
                    timeout: Duration::from_secs(3600),
                }),
        )
        .unwrap();
    bus.publish(numbered("q", 0)).await.unwrap();
    let blocked = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(numbered("q", 1)).await })
    };
    tokio::task::yield_now().await;
    let report = bus.shutdown(Duration::from_millis(10)).await;
    let err = within(blocked).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Rejected {
                reason: RejectReason::Closed,
                ..
            }
        ),
        "{err:?}"
    );
    // The blocked event was refused (its publisher knows); the queued one is reported.
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(number(&report.undelivered[0].envelope), 0);
}

#[tokio::test(start_paused = true)]
async fn a_clean_shutdown_drains_handlers_and_fails_waiting_requests() {
    let bus = Bus::new();
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = Arc::clone(&counted);
    let handler = bus
        .handle("work", SubscribeOptions::new(), move |_e: Arc<Envelope>| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, String>(())
            }
        })
        .unwrap();
    let _silent = bus.subscribe("ask", SubscribeOptions::new()).unwrap();
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.request(numbered("ask", 0), Duration::from_secs(3600))
                .await
        })
    };
    for n in 0..100 {
        bus.publish(numbered("work", n)).await.unwrap();
    }
    while bus.stats().pending_requests == 0 {
        tokio::task::yield_now().await;
    }
    let report = bus.shutdown(Duration::from_secs(10)).await;
    handler.join().await;
    assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 100);
    assert_eq!(report.requests_failed, 1);
    assert!(matches!(
        within(waiting).await.unwrap(),
        Err(BusError::ShuttingDown)
    ));
    // The silent subscriber holds the request itself: reported, not lost.
    assert_eq!(report.undelivered.len(), 1);
}
