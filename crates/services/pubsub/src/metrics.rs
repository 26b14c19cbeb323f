//! The bridge's metrics, registered in the node's registry.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `plexus_pubsub_published_total` | counter | |
//! | `plexus_pubsub_received_total` | counter | |
//! | `plexus_pubsub_dropped_total` | counter | `reason`: `overflow`, `too_large`, `publish_failed`, `malformed`, `bus_refused` |
//! | `plexus_pubsub_gap_messages_total` | counter | |
//! | `plexus_pubsub_resubscribes_total` | counter | |
//! | `plexus_pubsub_live` | gauge | |
//!
//! Published: events this node sent to Redis. Received: events from other nodes
//! delivered to this node's bus. Gap: events other nodes sent that this node never
//! received (counted from their sequence numbers when the next one arrives).

use std::sync::Arc;

use plexus_node::metrics::ReasonLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why an event did not cross (`plexus_pubsub_dropped_total`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Dropped {
    /// The queue to Redis was full: the oldest waiting event was dropped.
    Overflow,
    /// Larger than `max_message_bytes`.
    TooLarge,
    /// Redis could not be reached or refused the publish.
    PublishFailed,
    /// A message on a bridged channel that is not an envelope of a shared topic.
    Malformed,
    /// This node's bus refused a received event (shutting down, over its bounds).
    BusRefused,
}

/// The bridge's counters. Cheap to clone; clones share them.
#[derive(Clone, Debug, Default)]
pub struct PubSubMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    published: Counter,
    received: Counter,
    dropped: Family<ReasonLabel, Counter>,
    gap: Counter,
    resubscribes: Counter,
    live: Gauge,
}

impl PubSubMetrics {
    /// New counters, all at zero.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn published(&self, n: u64) {
        self.inner.published.inc_by(n);
    }

    pub(crate) fn received(&self) {
        self.inner.received.inc();
    }

    pub(crate) fn drop_one(&self, why: Dropped) {
        self.drop_many(why, 1);
    }

    pub(crate) fn drop_many(&self, why: Dropped, n: u64) {
        self.inner
            .dropped
            .get_or_create(&ReasonLabel { reason: why.into() })
            .inc_by(n);
    }

    pub(crate) fn gap(&self, missed: u64) {
        self.inner.gap.inc_by(missed);
    }

    pub(crate) fn live(&self, live: bool, again: bool) {
        self.inner.live.set(i64::from(live));
        if live && again {
            self.inner.resubscribes.inc();
        }
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> Counts {
        let i = &self.inner;
        let dropped = |why: Dropped| {
            i.dropped
                .get_or_create(&ReasonLabel { reason: why.into() })
                .get()
        };
        Counts {
            published: i.published.get(),
            received: i.received.get(),
            gap_messages: i.gap.get(),
            resubscribes: i.resubscribes.get(),
            dropped_overflow: dropped(Dropped::Overflow),
            dropped_too_large: dropped(Dropped::TooLarge),
            dropped_publish_failed: dropped(Dropped::PublishFailed),
            dropped_malformed: dropped(Dropped::Malformed),
            dropped_bus_refused: dropped(Dropped::BusRefused),
        }
    }

    /// Adds every metric to `registry` under its `plexus_pubsub_*` name.
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let counters = [
            (
                "plexus_pubsub_published",
                "Events this node sent to Redis",
                &i.published,
            ),
            (
                "plexus_pubsub_received",
                "Events from other nodes delivered to this node's bus",
                &i.received,
            ),
            (
                "plexus_pubsub_gap_messages",
                "Events other nodes sent that this node never received",
                &i.gap,
            ),
            (
                "plexus_pubsub_resubscribes",
                "Subscriptions to Redis made again after a loss",
                &i.resubscribes,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "plexus_pubsub_dropped",
            "Events that did not cross, by reason",
            i.dropped.clone(),
        );
        registry.register(
            "plexus_pubsub_live",
            "1 while the subscription to Redis is live",
            i.live.clone(),
        );
    }
}

/// The counters at one moment (`pubsub.status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// Events this node sent to Redis.
    pub published: u64,
    /// Events from other nodes delivered to this node's bus.
    pub received: u64,
    /// Events other nodes sent that this node never received.
    pub gap_messages: u64,
    /// Subscriptions made again after a loss.
    pub resubscribes: u64,
    /// Dropped: the queue to Redis was full.
    pub dropped_overflow: u64,
    /// Dropped: over `max_message_bytes`.
    pub dropped_too_large: u64,
    /// Dropped: Redis could not be reached.
    pub dropped_publish_failed: u64,
    /// Dropped: not an envelope of a shared topic.
    pub dropped_malformed: u64,
    /// Dropped: this node's bus refused it.
    pub dropped_bus_refused: u64,
}
