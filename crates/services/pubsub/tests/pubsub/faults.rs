//! A private `redis-server` (never the shared one) killed and restarted under two
//! bridged buses: the subscription comes back by itself, and what was published
//! meanwhile is counted as a gap by the receiver, exactly what the sender could
//! not send.

use plexus_bus::SubscribeOptions;
use plexus_pubsub::conformance::{event, eventually, next};
use plexus_redis::testing::{PrivateRedis, unique_prefix};
use serde_json::json;

use crate::support::{bridged, on_redis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_resubscribed_and_the_gap_counted() {
    let mut server = PrivateRedis::start().await;
    let config = on_redis(vec!["news.>".into()]);
    let prefix = unique_prefix();
    let (a, sender) = bridged(&config, &server.url(), &prefix).await;
    let (b, receiver) = bridged(&config, &server.url(), &prefix).await;
    let mut news = b.subscribe("news.>", SubscribeOptions::new()).unwrap();
    a.publish(event("news.first", &json!(0))).await.unwrap();
    assert_eq!(next(&mut news).await.topic().as_str(), "news.first");

    server.kill().await;
    eventually("the receiver sees the subscription lost", || async {
        !receiver.live()
    })
    .await;
    for n in 1..=5 {
        a.publish(event("news.lost", &json!(n))).await.unwrap();
    }
    eventually("the sender gives up on the five", || async {
        sender.metrics().snapshot().dropped_publish_failed == 5
    })
    .await;

    server.restart().await;
    eventually("the receiver subscribes again", || async {
        receiver.live() && receiver.metrics().snapshot().resubscribes == 1
    })
    .await;
    // The sender's connection comes back on its next command; an event sent
    // while it reconnects is lost too, and counted the same way on both sides.
    let mut n = 0;
    loop {
        n += 1;
        let before = sender.metrics().snapshot();
        a.publish(event("news.back", &json!(n))).await.unwrap();
        eventually("the sender sends or drops it", || async {
            let now = sender.metrics().snapshot();
            now.published > before.published
                || now.dropped_publish_failed > before.dropped_publish_failed
        })
        .await;
        if sender.metrics().snapshot().published > before.published {
            break;
        }
        assert!(n < 50, "the sender never reconnected");
    }
    let back = next(&mut news).await;
    assert_eq!(back.topic().as_str(), "news.back");
    assert_eq!(
        *back.payload().decode::<serde_json::Value>().unwrap(),
        json!(n)
    );

    let lost = sender.metrics().snapshot().dropped_publish_failed;
    assert!(lost >= 5, "{lost}");
    assert_eq!(receiver.metrics().snapshot().gap_messages, lost);
    let gap = receiver.last_gap().unwrap();
    assert_eq!(gap.missed, lost);
    assert!(gap.origin.starts_with(sender.origin()), "{gap:?}");
}
