//! Each overflow policy when a subscriber does not keep up.

use std::time::Duration;

use plexus_bus::{
    Bus, BusConfig, BusError, DEAD_LETTER_REASON, Overflow, RejectReason, SubscribeOptions,
};
use plexus_core::Topic;

use crate::support::*;

fn full(bus: &Bus, overflow: Overflow) -> plexus_bus::Subscription {
    bus.subscribe(
        "slow",
        SubscribeOptions::new().capacity(4).overflow(overflow),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn blocked_publisher_is_released_at_its_timeout() {
    let bus = Bus::new();
    let timeout = Duration::from_millis(250);
    let never_reads = full(&bus, Overflow::Block { timeout });
    for n in 0..4 {
        bus.publish(numbered("slow", n)).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    let err = bus.publish(numbered("slow", 4)).await.unwrap_err();
    assert!(
        matches!(err, BusError::Rejected { reason: RejectReason::BlockTimeout(t), enqueued: 0, .. } if t == timeout),
        "{err:?}"
    );
    assert_eq!(
        started.elapsed(),
        timeout,
        "released exactly at the timeout (virtual time)"
    );
    assert_eq!(never_reads.stats().rejected, 1);
    assert_eq!(never_reads.stats().queued, 4);
}

#[tokio::test(start_paused = true)]
async fn blocked_publisher_resumes_when_room_appears() {
    let bus = Bus::new();
    let mut slow = full(
        &bus,
        Overflow::Block {
            timeout: Duration::from_secs(60),
        },
    );
    for n in 0..4 {
        bus.publish(numbered("slow", n)).await.unwrap();
    }
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(numbered("slow", 4)).await })
    };
    // The publisher is parked on a full lane until the subscriber takes one.
    tokio::task::yield_now().await;
    assert!(!publisher.is_finished());
    assert_eq!(number(&slow.recv().await.unwrap()), 0);
    let receipt = within(publisher).await.unwrap().unwrap();
    assert_eq!(receipt.enqueued, 1);
    let rest: Vec<u64> = std::iter::from_fn(|| slow.try_recv())
        .map(|e| number(&e))
        .collect();
    assert_eq!(rest, [1, 2, 3, 4]);
}

#[tokio::test]
async fn reject_policy_refuses_at_once_with_a_typed_error() {
    let bus = Bus::new();
    let sub = full(&bus, Overflow::Reject);
    let mut other = bus.subscribe("slow", SubscribeOptions::new()).unwrap();
    for n in 0..4 {
        bus.publish(numbered("slow", n)).await.unwrap();
    }
    match bus.publish(numbered("slow", 4)).await {
        Err(BusError::Rejected {
            subscription,
            reason: RejectReason::Full,
            enqueued,
            ..
        }) => {
            assert_eq!(subscription, sub.id());
            assert_eq!(enqueued, 1, "the other subscriber still got it");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(sub.stats().rejected, 1);
    assert_eq!(std::iter::from_fn(|| other.try_recv()).count(), 5);
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let bus = Bus::new();
    let mut sub = full(&bus, Overflow::DropOldest);
    let mut dropped = 0;
    for n in 0..10 {
        dropped += bus
            .publish(numbered("slow", n))
            .await
            .unwrap()
            .dropped_oldest;
    }
    assert_eq!(dropped, 6);
    assert_eq!(sub.stats().dropped, 6);
    let kept: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|e| number(&e))
        .collect();
    assert_eq!(kept, [6, 7, 8, 9]);
}

#[tokio::test]
async fn dead_letter_policy_sends_overflow_to_the_dead_letter_topic() {
    let config = BusConfig::default().with_dead_letter_topic(Topic::from_static("dead"));
    let bus = Bus::with_config(config).unwrap();
    let mut letters = bus.subscribe("dead", SubscribeOptions::new()).unwrap();
    let sub = full(&bus, Overflow::DeadLetter);
    for n in 0..6 {
        bus.publish(numbered("slow", n)).await.unwrap();
    }
    assert_eq!(sub.stats().dead_lettered, 2);
    let got: Vec<_> = std::iter::from_fn(|| letters.try_recv()).collect();
    assert_eq!(got.iter().map(|e| number(e)).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(
        got[0].headers().get(DEAD_LETTER_REASON),
        Some("subscriber_full")
    );
    assert_eq!(bus.stats().dead_lettered, 2);
}

#[tokio::test]
async fn dead_letter_policy_needs_a_dead_letter_topic() {
    let bus = Bus::new();
    let err = bus
        .subscribe("x", SubscribeOptions::new().overflow(Overflow::DeadLetter))
        .unwrap_err();
    assert!(matches!(err, BusError::DeadLetterNotConfigured));
}

#[tokio::test]
async fn capacity_bounds_are_checked() {
    let bus = Bus::new();
    for capacity in [0, bus.config().max_capacity + 1] {
        let err = bus
            .subscribe("x", SubscribeOptions::new().capacity(capacity))
            .unwrap_err();
        assert!(
            matches!(
                err,
                BusError::InvalidOption {
                    field: "capacity",
                    ..
                }
            ),
            "{err}"
        );
    }
}
