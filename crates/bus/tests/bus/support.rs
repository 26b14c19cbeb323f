//! Shared test helpers.

use std::time::Duration;

use plexus_core::{Envelope, Event, Payload, Priority, Topic};
use serde::{Deserialize, Serialize};

/// A small typed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ping {
    pub n: u64,
}

impl Event for Ping {
    const TOPIC: Topic = Topic::from_static("test.ping");
}

pub(crate) fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

/// An envelope on `t` carrying `n` as a typed payload.
pub(crate) fn numbered(t: &str, n: u64) -> Envelope {
    Envelope::new(topic(t), Payload::typed(Ping { n }))
}

pub(crate) fn numbered_at(t: &str, n: u64, priority: Priority) -> Envelope {
    numbered(t, n).with_priority(priority)
}

pub(crate) fn number(envelope: &Envelope) -> u64 {
    envelope.payload().get::<Ping>().expect("a Ping").n
}

/// Bounded wait used instead of sleeping: fails the test if the future hangs.
pub(crate) async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("did not complete within 10 s")
}
