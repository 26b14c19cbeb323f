//! Request/reply with deadlines.

use std::sync::Arc;
use std::time::Duration;

use plexus_bus::{Bus, BusError, SubscribeOptions};
use plexus_core::{Envelope, Payload};

use crate::support::*;

#[tokio::test]
async fn a_reply_follows_up_the_request() {
    let bus = Bus::new();
    let _doubler = bus
        .handle_event::<Ping, _, _, _, String>(SubscribeOptions::new(), |p, _e| async move {
            Ok(Payload::typed(Ping { n: p.n * 2 }))
        })
        .unwrap();
    let request = Envelope::event(Ping { n: 21 });
    let (id, correlation) = (request.id(), request.correlation_id());
    let reply = bus.request(request, Duration::from_secs(5)).await.unwrap();
    assert_eq!(number(&reply), 42);
    assert_eq!(reply.causation_id(), Some(id));
    assert_eq!(reply.correlation_id(), correlation);
    assert_eq!(bus.stats().pending_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_nobody_answers_times_out_at_its_deadline() {
    let bus = Bus::new();
    let mut silent = bus.subscribe("ask", SubscribeOptions::new()).unwrap();
    let started = tokio::time::Instant::now();
    let err = bus
        .request(numbered("ask", 1), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::RequestTimeout { after, .. } if after == Duration::from_millis(300))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(bus.stats().pending_requests, 0, "the waiter is cleaned up");
    // A late answer is a typed error, not a crash.
    let late = silent.recv().await.unwrap();
    assert!(matches!(
        bus.reply(&late, Payload::Empty),
        Err(BusError::NoPendingRequest(id)) if id == late.id()
    ));
}

#[tokio::test]
async fn a_request_nobody_subscribed_to_fails_fast() {
    let bus = Bus::new();
    let err = bus
        .request(numbered("void", 1), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoResponders { .. }), "{err:?}");
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_reply() {
    let bus = Bus::new();
    let _echo = bus
        .handle("echo", SubscribeOptions::new(), |e: Arc<Envelope>| async move {
            Ok::<_, String>(Payload::typed(Ping { n: number(&e) }))
        })
        .unwrap();
    let mut calls = Vec::new();
    for n in 0..50 {
        let bus = bus.clone();
        calls.push(tokio::spawn(async move {
            let reply = bus
                .request(numbered("echo", n), Duration::from_secs(5))
                .await;
            (n, number(&reply.unwrap()))
        }));
    }
    for call in calls {
        let (asked, answered) = within(call).await.unwrap();
        assert_eq!(asked, answered);
    }
}
