//! [`Envelope::handled`] on the bus: it resolves once every subscriber that got the
//! event is done with it, not when the event was queued.

use std::sync::Arc;

use futures::FutureExt;
use plexus_bus::{Bus, SubscribeOptions};
use plexus_core::Envelope;
use tokio::sync::Notify;

use crate::support::*;

#[tokio::test]
async fn an_event_is_handled_once_its_handler_returned_and_every_subscriber_dropped_it() {
    let bus = Bus::new();
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let (r, s) = (Arc::clone(&release), Arc::clone(&started));
    let _handler = bus
        .handle(
            "orders.>",
            SubscribeOptions::new(),
            move |_: Arc<Envelope>| {
                let (release, started) = (Arc::clone(&r), Arc::clone(&s));
                async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<(), String>(())
                }
            },
        )
        .unwrap();
    let mut plain = bus.subscribe("orders.>", SubscribeOptions::new()).unwrap();

    let mut event = numbered("orders.created", 1);
    let mut handled = event.handled();
    let receipt = bus.publish(event).await.unwrap();
    assert_eq!(receipt.enqueued, 2);
    within(started.notified()).await;
    // Queued and being handled: not yet.
    assert!((&mut handled).now_or_never().is_none());
    // The plain subscriber takes it and lets it go; the handler still runs.
    let taken = within(plain.recv()).await.unwrap();
    assert_eq!(number(&taken), 1);
    let copy = (*taken).clone();
    drop(taken);
    assert!((&mut handled).now_or_never().is_none());
    // A copy does not hold it: only the handler does.
    release.notify_one();
    within(handled).await;
    assert_eq!(number(&copy), 1);
}

#[tokio::test]
async fn an_event_nobody_takes_is_handled_at_once_and_one_left_queued_when_its_subscription_goes() {
    let bus = Bus::new();
    let mut unmatched = numbered("nobody.listens", 1);
    let handled = unmatched.handled();
    assert_eq!(bus.publish(unmatched).await.unwrap().matched, 0);
    within(handled).await;

    let subscription = bus.subscribe("queued", SubscribeOptions::new()).unwrap();
    let mut queued = numbered("queued", 2);
    let mut handled = queued.handled();
    bus.publish(queued).await.unwrap();
    assert!((&mut handled).now_or_never().is_none());
    drop(subscription);
    within(handled).await;
}
