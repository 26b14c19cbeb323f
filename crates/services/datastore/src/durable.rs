//! Durable topics on the node: the store's [`Outbox`] as the node's
//! [`DurableLog`].
//!
//! `[store] durable_topics = ["orders.>"]` declares the patterns. A publish on one
//! of them through the node (`plexus.publish` on `/rpc`, `/ws`, MCP, a script) is
//! written to the outbox table and answered with its offset once committed; a
//! `datastore.transaction` with `events` writes them in the same transaction as its
//! operations. The relay, started when the node runs, delivers each event to the
//! bus (with its id, correlation and causation unchanged) until the bus took it,
//! and `plexus.replay` reads the outbox back from an offset or a time (or, in a
//! cluster with durable topics, the JetStream stream every node's events are in).

use std::sync::Arc;

use parking_lot::Mutex;
use plexus_core::{Envelope, ServiceError, Topic, async_trait};
use plexus_node::durable::{DurableLog, DurableReplay, DurableSink, Handoff, ReplayFrom};
use plexus_store::{
    Delivery, DeliveryState, Outbox, OutboxError, RelayConfig, RelayHandle, RelaySink,
};
use serde_json::{Value, json};

use crate::service_error;

/// The outbox as the node's durable log, and its relay once the node runs.
pub struct OutboxLog {
    outbox: Outbox,
    config: RelayConfig,
    sink: Mutex<Option<Arc<dyn DurableSink>>>,
    replays: Mutex<Option<Arc<dyn DurableReplay>>>,
    relay: Mutex<Option<RelayHandle>>,
}

impl std::fmt::Debug for OutboxLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxLog")
            .field("patterns", &self.outbox.durable_patterns())
            .finish_non_exhaustive()
    }
}

impl OutboxLog {
    /// The log over `outbox` (its patterns already declared), relaying with
    /// `config` once started.
    pub fn new(outbox: Outbox, config: RelayConfig) -> Arc<Self> {
        Arc::new(Self {
            outbox,
            config,
            sink: Mutex::new(None),
            replays: Mutex::new(None),
            relay: Mutex::new(None),
        })
    }
}

/// A node's [`DurableSink`] as the relay's [`RelaySink`].
struct Through(Arc<dyn DurableSink>);

#[async_trait]
impl RelaySink for Through {
    async fn deliver(&self, envelope: Envelope, _require_subscriber: bool) -> Delivery {
        match self.0.deliver(envelope).await {
            Handoff::Taken => Delivery::Acknowledged { expired: false },
            Handoff::Later(reason) => Delivery::Refused(reason),
            Handoff::Never(reason) => Delivery::Never(reason),
        }
    }
}

/// An outbox refusal as a service error: bad input names its field; a full outbox
/// is transient (retry later); the database's own errors keep their meaning.
pub fn outbox_error(e: OutboxError, field: &str) -> ServiceError {
    match e {
        OutboxError::Store(store) => service_error(&store, "", ""),
        OutboxError::Full { .. } => ServiceError::transient(e.to_string()),
        other => ServiceError::invalid_params(field.to_owned(), other.to_string()),
    }
}

#[async_trait]
impl DurableLog for OutboxLog {
    fn relay_through(&self, sink: Arc<dyn DurableSink>) {
        *self.sink.lock() = Some(sink);
    }

    fn replay_from(&self, source: Arc<dyn DurableReplay>) {
        *self.replays.lock() = Some(source);
    }

    fn start(&self, bus: plexus_bus::Bus) {
        let mut relay = self.relay.lock();
        if relay.is_some() {
            return;
        }
        let config = self.config.clone();
        let started = match self.sink.lock().clone() {
            Some(sink) => self.outbox.spawn_relay_to(Through(sink), config),
            None => self.outbox.spawn_relay(bus, config),
        };
        match started {
            Ok(handle) => *relay = Some(handle),
            Err(error) => tracing::error!(%error, "the outbox relay did not start"),
        }
    }

    fn is_durable(&self, topic: &Topic) -> bool {
        self.outbox.is_durable(topic)
    }

    async fn append(&self, envelope: Envelope) -> Result<u64, ServiceError> {
        let appended = self
            .outbox
            .append(vec![envelope])
            .await
            .map_err(|e| outbox_error(e, "/payload"))?;
        appended
            .first()
            .map(|a| a.offset)
            .ok_or_else(|| ServiceError::failed("the outbox answered no offset"))
    }
}

#[async_trait]
impl DurableReplay for OutboxLog {
    async fn replay(
        &self,
        pattern: &str,
        from: ReplayFrom,
        limit: u32,
    ) -> Result<Value, ServiceError> {
        let source = self.replays.lock().clone();
        if let Some(source) = source {
            return source.replay(pattern, from, limit).await;
        }
        let from = match from {
            ReplayFrom::Offset(n) => plexus_store::ReplayFrom::Offset(n),
            ReplayFrom::Time(t) => plexus_store::ReplayFrom::Time(t),
        };
        let page = self
            .outbox
            .replay(pattern, from, limit)
            .await
            .map_err(|e| match e {
                OutboxError::InvalidPattern { .. } => {
                    ServiceError::invalid_params("/pattern", e.to_string())
                }
                OutboxError::InvalidArgument { .. } => {
                    ServiceError::invalid_params("/limit", e.to_string())
                }
                other => outbox_error(other, ""),
            })?;
        let events: Vec<Value> = page
            .events
            .iter()
            .map(|r| {
                let envelope = r
                    .envelope
                    .to_json()
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                    .unwrap_or(Value::Null);
                json!({
                    "offset": r.offset,
                    "delivered": r.state == DeliveryState::Delivered,
                    "failed": r.state == DeliveryState::Failed,
                    "envelope": envelope,
                })
            })
            .collect();
        Ok(json!({"events": events, "next_offset": page.next_offset}))
    }
}
