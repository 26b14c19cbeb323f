//! The suite every pub/sub backend must pass (feature `test-util`).
//!
//! Each case takes `make`, which builds two ends sharing the topics it is given:
//! two buses bridged through the backend (for the bus itself, one bus twice). What
//! `a` publishes on a shared topic must reach `b`'s subscribers as it would on one
//! bus: patterns mean what they mean there, each event arrives once, in order, with
//! its priority, headers, ids and payload. Run them all with
//! [`pubsub_conformance!`](crate::pubsub_conformance).
//!
//! Absence is shown by order, not by waiting: an event that must not arrive is
//! published before one that must, so if it came it would come first.
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use plexus_bus::{Bus, SubscribeOptions, Subscription};
use plexus_core::{Envelope, Payload, Priority, Topic};
use serde_json::{Value, json};

pub use plexus_redis::testing::{PATIENCE, eventually};

/// Two ends of a backend: what `a` publishes on a shared topic reaches `b`.
pub struct Ends {
    /// The publishing side.
    pub a: Bus,
    /// The receiving side (the same bus as `a` for the bus backend).
    pub b: Bus,
    /// Whatever must live as long as the ends (the bridges).
    pub keep: Vec<Arc<dyn Any + Send + Sync>>,
}

/// An event on `topic` with `payload`.
pub fn event(topic: &str, payload: &Value) -> Envelope {
    Envelope::new(Topic::new(topic).unwrap(), Payload::json(payload).unwrap())
}

/// The next event on `subscription`, within [`PATIENCE`].
pub async fn next(subscription: &mut Subscription) -> Arc<Envelope> {
    tokio::time::timeout(PATIENCE, subscription.recv())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no event on `{}` within {PATIENCE:?}",
                subscription.pattern()
            )
        })
        .unwrap()
}

/// The topics of the next `n` events.
async fn topics(subscription: &mut Subscription, n: usize) -> Vec<String> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(next(subscription).await.topic().as_str().to_owned());
    }
    seen
}

fn subscribe(bus: &Bus, pattern: &str) -> Subscription {
    bus.subscribe(pattern, SubscribeOptions::new().capacity(1_024))
        .unwrap()
}

async fn publish_all(bus: &Bus, topics: &[&str]) {
    for topic in topics {
        bus.publish(event(topic, &json!({"on": topic})))
            .await
            .unwrap();
    }
}

/// `*` matches exactly one token on the receiving side.
pub async fn one_token_wildcard<M, F>(make: M)
where
    M: Fn(Vec<String>) -> F,
    F: Future<Output = Ends>,
{
    let ends = make(vec!["room.>".into()]).await;
    let mut room = subscribe(&ends.b, "room.*");
    publish_all(&ends.a, &["room.1.x", "room.1", "lobby.1", "room.end"]).await;
    assert_eq!(topics(&mut room, 2).await, ["room.1", "room.end"]);
}

/// `>` matches the rest, one token or more.
pub async fn rest_wildcard<M, F>(make: M)
where
    M: Fn(Vec<String>) -> F,
    F: Future<Output = Ends>,
{
    let ends = make(vec!["room.>".into()]).await;
    let mut all = subscribe(&ends.b, "room.>");
    publish_all(&ends.a, &["room", "room.1.x", "room.1", "room.end"]).await;
    assert_eq!(
        topics(&mut all, 3).await,
        ["room.1.x", "room.1", "room.end"]
    );
}

/// Events from one publisher arrive once each, in publish order, also when two
/// shared patterns overlap.
pub async fn once_and_in_order<M, F>(make: M)
where
    M: Fn(Vec<String>) -> F,
    F: Future<Output = Ends>,
{
    let ends = make(vec!["feed.>".into(), "feed.items".into()]).await;
    let mut feed = subscribe(&ends.b, "feed.items");
    for n in 0..200 {
        ends.a
            .publish(event("feed.items", &json!(n)))
            .await
            .unwrap();
    }
    ends.a
        .publish(event("feed.items", &json!("end")))
        .await
        .unwrap();
    for n in 0..200 {
        let got = next(&mut feed).await;
        assert_eq!(*got.payload().decode::<Value>().unwrap(), json!(n));
    }
    let end = next(&mut feed).await;
    assert_eq!(*end.payload().decode::<Value>().unwrap(), json!("end"));
}

/// The id, priority, headers, correlation and causation ids and the payload
/// survive the trip.
pub async fn envelopes_survive<M, F>(make: M)
where
    M: Fn(Vec<String>) -> F,
    F: Future<Output = Ends>,
{
    let ends = make(vec!["orders.*".into()]).await;
    let mut orders = subscribe(&ends.b, "orders.*");
    let cause = event("orders.placed", &json!({}));
    let sent = cause
        .follow_up(
            Topic::new("orders.shipped").unwrap(),
            Payload::json(&json!({"id": 7, "items": ["a", "b"], "total": 12.5})).unwrap(),
        )
        .with_priority(Priority::High)
        .with_header("tenant", "acme");
    ends.a.publish(sent.clone()).await.unwrap();
    let got = next(&mut orders).await;
    assert_eq!(got.id(), sent.id());
    assert_eq!(got.topic(), sent.topic());
    assert_eq!(got.priority(), Priority::High);
    assert_eq!(got.headers().get("tenant"), Some("acme"));
    assert_eq!(got.correlation_id(), cause.correlation_id());
    assert_eq!(got.causation_id(), Some(cause.id()));
    assert_eq!(
        *got.payload().decode::<Value>().unwrap(),
        json!({"id": 7, "items": ["a", "b"], "total": 12.5})
    );
}

/// A subscriber on the publishing side gets each of its own events once, not
/// again as an echo from the backend.
pub async fn no_echo<M, F>(make: M)
where
    M: Fn(Vec<String>) -> F,
    F: Future<Output = Ends>,
{
    let ends = make(vec!["room.>".into()]).await;
    let mut here = subscribe(&ends.a, "room.>");
    let mut there = subscribe(&ends.b, "room.>");
    publish_all(&ends.a, &["room.1", "room.2", "room.end"]).await;
    // The far side got everything, so an echo would have had time to come back;
    // then a second round: an echo of the first would come before it.
    assert_eq!(
        topics(&mut there, 3).await,
        ["room.1", "room.2", "room.end"]
    );
    publish_all(&ends.a, &["room.again"]).await;
    assert_eq!(
        topics(&mut here, 4).await,
        ["room.1", "room.2", "room.end", "room.again"]
    );
}

/// Runs every case of the suite against the backend `make` builds.
#[macro_export]
macro_rules! pubsub_conformance {
    ($make:expr) => {
        $crate::pubsub_conformance!(@cases $make;
            one_token_wildcard, rest_wildcard, once_and_in_order, envelopes_survive, no_echo);
    };
    (@cases $make:expr; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case($make).await;
            }
        )+
    };
}
