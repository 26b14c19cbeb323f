//! Bad input and failing handlers: typed errors, counted failures, nothing lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plexus_bus::{
    Bus, BusConfig, BusError, DEAD_LETTER_ERROR, DEAD_LETTER_REASON, DEAD_LETTER_TOPIC,
    SubscribeOptions,
};
use plexus_core::{Envelope, Payload, Timestamp, Topic};

use crate::support::*;

fn with_dead_letters() -> (Bus, plexus_bus::Subscription) {
    let config = BusConfig::default().with_dead_letter_topic(Topic::from_static("dead"));
    let bus = Bus::with_config(config).unwrap();
    let letters = bus.subscribe("dead", SubscribeOptions::new()).unwrap();
    (bus, letters)
}

#[tokio::test]
async fn a_panicking_handler_is_counted_dead_lettered_and_keeps_running() {
    let (bus, mut letters) = with_dead_letters();
    let handled = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&handled);
    let handler = bus
        .handle("jobs", SubscribeOptions::new(), move |e: Arc<Envelope>| {
            let seen = Arc::clone(&seen);
            async move {
                if number(&e) % 2 == 1 {
                    panic!("odd job {}", number(&e));
                }
                seen.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        })
        .unwrap();
    for n in 0..6 {
        bus.publish(numbered("jobs", n)).await.unwrap();
    }
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(within(letters.recv()).await.unwrap());
    }
    assert_eq!(
        dead.iter().map(|e| number(e)).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    assert_eq!(
        dead[0].headers().get(DEAD_LETTER_REASON),
        Some("handler_panicked")
    );
    assert_eq!(dead[0].headers().get(DEAD_LETTER_TOPIC), Some("jobs"));
    assert_eq!(
        dead[0].headers().get(DEAD_LETTER_ERROR),
        Some("panicked: odd job 1")
    );
    // The handler survived its panics and handled every even job.
    bus.shutdown(Duration::from_secs(5)).await;
    handler.join().await;
    assert_eq!(handled.load(Ordering::SeqCst), 3);
    assert_eq!(bus.stats().handler_failures, 3);
}

#[tokio::test]
async fn a_failing_handler_fails_the_request_at_once() {
    let bus = Bus::new();
    let handler = bus
        .handle("calc", SubscribeOptions::new(), |_e: Arc<Envelope>| async {
            Err::<Payload, _>("division by zero")
        })
        .unwrap();
    let err = bus
        .request(numbered("calc", 1), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::HandlerFailed { message, .. } if message == "division by zero"),
        "{err:?}"
    );
    assert_eq!(handler.stats().failed, 1);
}

#[tokio::test]
async fn oversized_payloads_and_headers_are_refused() {
    let config = BusConfig {
        max_payload_bytes: 16,
        max_header_bytes: 8,
        ..BusConfig::default()
    };
    let bus = Bus::with_config(config).unwrap();
    let mut sub = bus.subscribe("big", SubscribeOptions::new()).unwrap();
    let err = bus
        .publish(Envelope::new(topic("big"), Payload::bytes(vec![0u8; 17])))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::PayloadTooLarge {
                size: 17,
                limit: 16,
                ..
            }
        ),
        "{err:?}"
    );
    let err = bus
        .publish(Envelope::new(topic("big"), Payload::Empty).with_header("key", "value-long"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::HeadersTooLarge { limit: 8, .. }),
        "{err:?}"
    );
    // At the limit is fine, and nothing refused was delivered.
    bus.publish(Envelope::new(topic("big"), Payload::bytes(vec![0u8; 16])))
        .await
        .unwrap();
    assert_eq!(std::iter::from_fn(|| sub.try_recv()).count(), 1);
}

#[tokio::test]
async fn expired_events_are_not_delivered_and_are_counted() {
    let bus = Bus::new();
    let mut sub = bus.subscribe("t", SubscribeOptions::new()).unwrap();
    let past = Timestamp::from_micros(1);
    let receipt = bus
        .publish(numbered("t", 1).with_expiry(past))
        .await
        .unwrap();
    assert!(receipt.expired);
    assert_eq!(receipt.enqueued, 0);
    assert_eq!(bus.stats().expired, 1);

    // Expires while queued: queued first, not delivered after.
    let soon = Timestamp::now().saturating_add(Duration::from_millis(2));
    bus.publish(numbered("t", 2).with_expiry(soon))
        .await
        .unwrap();
    bus.publish(numbered("t", 3)).await.unwrap();
    while Timestamp::now() < soon {
        tokio::task::yield_now().await;
    }
    assert_eq!(number(&sub.recv().await.unwrap()), 3);
    let stats = sub.stats();
    assert_eq!((stats.expired, stats.delivered), (1, 1));
}

#[tokio::test]
async fn unmatched_events_go_to_the_dead_letter_topic() {
    let (bus, mut letters) = with_dead_letters();
    let receipt = bus.publish(numbered("nobody.home", 9)).await.unwrap();
    assert_eq!(receipt.matched, 0);
    let letter = letters.recv().await.unwrap();
    assert_eq!(number(&letter), 9);
    assert_eq!(
        letter.headers().get(DEAD_LETTER_REASON),
        Some("no_subscribers")
    );
    let stats = bus.stats();
    assert_eq!((stats.unmatched, stats.dead_lettered), (1, 1));
}

#[tokio::test]
async fn a_handler_given_the_wrong_payload_counts_a_failure() {
    let (bus, mut letters) = with_dead_letters();
    let handler = bus
        .handle_event::<Ping, _, _, _, String>(SubscribeOptions::new(), |_p, _e| async { Ok(()) })
        .unwrap();
    let wrong = Payload::json(&serde_json_like()).unwrap();
    bus.publish(Envelope::new(topic("test.ping"), wrong))
        .await
        .unwrap();
    let letter = within(letters.recv()).await.unwrap();
    assert_eq!(
        letter.headers().get(DEAD_LETTER_REASON),
        Some("handler_failed")
    );
    assert_eq!(handler.stats().failed, 1);
}

fn serde_json_like() -> std::collections::BTreeMap<&'static str, &'static str> {
    [("not", "a ping")].into_iter().collect()
}
