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

/// A log that keeps durable topics.
#[async_trait]
pub trait DurableLog: Send + Sync + 'static {
    /// Whether `topic` is durable here.
    fn is_durable(&self, topic: &Topic) -> bool;

    /// Keeps `envelope`; answers its offset once it is committed.
    async fn append(&self, envelope: Envelope) -> Result<u64, ServiceError>;

    /// At most `limit` events matching `pattern`, from `from` on, as JSON:
    /// `{events: [{offset, delivered, envelope}], next_offset}`.
    async fn replay(
        &self,
        pattern: &str,
        from: ReplayFrom,
        limit: u32,
    ) -> Result<Value, ServiceError>;
}
