//! Priority lanes and per-publisher order.

use std::collections::HashMap;

use plexus_bus::{Bus, Overflow, SubscribeOptions};
use plexus_core::Priority;

use crate::support::*;

#[tokio::test]
async fn critical_overtakes_a_full_normal_lane() {
    let bus = Bus::new();
    let mut sub = bus
        .subscribe(
            "work",
            SubscribeOptions::new()
                .capacity(64)
                .overflow(Overflow::Reject),
        )
        .unwrap();
    for n in 0..64 {
        bus.publish(numbered("work", n)).await.unwrap();
    }
    // The Normal lane is full: one more Normal event is refused...
    assert!(bus.publish(numbered("work", 64)).await.is_err());
    // ...but a Critical one is accepted and comes out first.
    bus.publish(numbered_at("work", 1000, Priority::Critical))
        .await
        .unwrap();
    let first = sub.recv().await.unwrap();
    assert_eq!(first.priority(), Priority::Critical);
    assert_eq!(number(&first), 1000);
    assert_eq!(
        number(&sub.recv().await.unwrap()),
        0,
        "then the backlog, in order"
    );
    assert_eq!(sub.stats().queued_by_lane, [0, 63, 0, 0]);
}

#[tokio::test]
async fn lanes_drain_highest_first_and_fifo_within_a_lane() {
    let bus = Bus::new();
    let mut sub = bus.subscribe("p", SubscribeOptions::new()).unwrap();
    let order = [
        (1, Priority::Low),
        (2, Priority::Normal),
        (3, Priority::High),
        (4, Priority::Low),
        (5, Priority::Critical),
        (6, Priority::Normal),
        (7, Priority::High),
    ];
    for (n, p) in order {
        bus.publish(numbered_at("p", n, p)).await.unwrap();
    }
    let mut got = Vec::new();
    while let Some(e) = sub.try_recv() {
        got.push(number(&e));
    }
    assert_eq!(got, [5, 3, 7, 2, 6, 1, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_publishers_order_is_kept_under_concurrency() {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 5_000;
    let bus = Bus::new();
    let mut sub = bus
        .subscribe("seq.>", SubscribeOptions::new().capacity(256))
        .unwrap();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let priority = if n % 3 == 0 {
                    Priority::High
                } else {
                    Priority::Normal
                };
                bus.publish(numbered_at(&format!("seq.{p}"), n, priority))
                    .await
                    .unwrap();
            }
        }));
    }
    let mut last: HashMap<(String, Priority), u64> = HashMap::new();
    let mut count = 0;
    while count < PUBLISHERS * EACH {
        let e = within(sub.recv()).await.unwrap();
        let key = (e.topic().to_string(), e.priority());
        let n = number(&e);
        if let Some(prev) = last.insert(key, n) {
            assert!(n > prev, "out of order on {}: {n} after {prev}", e.topic());
        }
        count += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sub.stats().delivered, PUBLISHERS * EACH);
}
