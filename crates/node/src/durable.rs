//! [`DurableLog`]: where a node's durable topics are kept.
//!
//! A topic declared durable is not handed straight to the bus: a publish writes it
//! to a log that survives the process (the DataStore's outbox, `plexus-store`), and
//! the log's relay delivers it to the bus (or to other nodes) until delivery is
//! confirmed. The publisher's answer therefore means "kept", not "delivered", and
//! carries the event's offset in the log; `plexus.replay` reads the log back from an
//! offset or a time. Every publish that goes through the node, `plexus.publish` on
//! `/rpc`, `/ws` and MCP, and a script's `publish`, takes this path; a node without
//! a log publishes every topic on the bus as before.
//!
//! The relay delivers to the node's bus, or, when a family offers a
//! [`DurableSink`] before the node starts its log ([`DurableLog::relay_through`];
//! the cluster does, with a JetStream stream), to that sink, which hands the events
//! to every node.

use std::sync::Arc;

use plexus_core::{Envelope, ServiceError, Timestamp, Topic, async_trait};
use serde_json::Value;

/// Where to start reading a durable log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// At this offset (inclusive).
    Offset(u64),
    /// At the first event stamped at or after this time.
    Time(Timestamp),
}

/// What a [`DurableSink`] did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handoff {
    /// Taken for good: the log marks it delivered.
    Taken,
    /// Not now (the sink is away or full): the log keeps it and tries again.
    Later(String),
    /// Never takeable (too large for the sink): the log gives it up as failed.
    Never(String),
}

/// Where a durable log's relay delivers instead of the node's bus.
#[async_trait]
pub trait DurableSink: Send + Sync + 'static {
    /// Offers one event.
    async fn deliver(&self, envelope: Envelope) -> Handoff;
}

/// Where `plexus.replay` reads instead of the node's own log: the events of every
/// node (the cluster's JetStream stream).
#[async_trait]
pub trait DurableReplay: Send + Sync + 'static {
    /// At most `limit` events matching `pattern`, from `from` on, as JSON:
    /// `{events: [{offset, delivered, failed, envelope}], next_offset}`, with
    /// offsets of this source's own.
    async fn replay(
        &self,
        pattern: &str,
        from: ReplayFrom,
        limit: u32,
    ) -> Result<Value, ServiceError>;
}

/// A log that keeps durable topics; it answers replays itself
/// ([`DurableReplay::replay`]: at most `limit` events matching `pattern`, from
/// `from` on, as `{events: [{offset, delivered, failed, envelope}], next_offset}`)
/// unless it was given another source.
#[async_trait]
pub trait DurableLog: DurableReplay {
    /// Reads replays from `source` instead of the log itself (whose events are only
    /// those published on this node).
    fn replay_from(&self, source: Arc<dyn DurableReplay>);

    /// Sends the relay's events to `sink` instead of the bus; takes effect only
    /// before [`DurableLog::start`].
    fn relay_through(&self, sink: Arc<dyn DurableSink>);

    /// Starts the relay: to the sink offered, else to `bus`. Once; the node's
    /// assembly calls it after every family's hook ran.
    fn start(&self, bus: plexus_bus::Bus);

    /// Whether `topic` is durable here.
    fn is_durable(&self, topic: &Topic) -> bool;

    /// Keeps `envelope`; answers its offset once it is committed.
    async fn append(&self, envelope: Envelope) -> Result<u64, ServiceError>;
}
