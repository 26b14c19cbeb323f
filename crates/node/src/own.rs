//! The `plexus` service: the bus and the registry as methods, served by every node.
//!
//! | method | params | result | where |
//! | --- | --- | --- | --- |
//! | `publish` | `{topic, payload?, priority?, headers?}` | `{id, matched, enqueued}`, or `{id, offset}` on a durable topic | `/rpc`, `/ws`, MCP, in process |
//! | `replay` | `{pattern, from_offset? \| since_us?, limit?}` | `{events: [{offset, delivered, envelope}], next_offset}` | `/rpc`, `/ws`, MCP, in process |
//! | `subscribe` | `{pattern, capacity?, overflow?, block_timeout_ms?}` | `{subscription}` | `/ws` only |
//! | `unsubscribe` | `{subscription}` | `{unsubscribed}` | `/ws` only |
//! | `register` | `{descriptor}` | `{instance, heartbeat_ttl_ms}` | `/ws` only |
//! | `deregister` | `{instance?}` | `{deregistered}` | `/ws` only |
//! | `heartbeat` | `{instance?}` | `{instances}` | `/ws` only |
//!
//! It is registered like any service, so `node.services`, MCP (`plexus.publish` is a
//! tool) and the docs list it; the methods marked
//! [`websocket_only`](plexus_core::MethodDescriptor::websocket_only) bind state to a
//! connection, so the gateway answers them on its WebSocket sessions, reading their
//! params with the types here: the schemas the descriptor shows are the ones
//! enforced. Each method is allowed by its own verb's scope (`publish:<topic>`,
//! `subscribe:<pattern>`, `register:<service>`), not by `call:` (see
//! [`plexus_core::scope::call_need`]); `replay` reads events, so it needs
//! `subscribe:<pattern>`.
//!
//! On a node with a [`DurableLog`], a publish on a durable topic is written to the
//! log (the answer carries its offset; the log's relay delivers it), and `replay`
//! reads the log back; without one, `replay` answers that no topic is durable.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use plexus_bus::{Bus, BusError};
use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::scope::{Need, PLEXUS_SERVICE};
use plexus_core::{
    CallContext, Envelope, Headers, InstanceId, Payload, Priority, ServiceDescriptor, ServiceError,
    Topic,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::durable::{DurableLog, ReplayFrom};

/// `plexus.publish`: one event on the bus.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishParams {
    /// The topic, dot-separated (`orders.created`).
    pub topic: String,
    /// The event's payload, any JSON.
    #[serde(default)]
    pub payload: Value,
    /// `low`, `normal` (the default), `high` or `critical`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Free text headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

impl PublishParams {
    /// The envelope to publish, or the field at fault (a JSON pointer) and why.
    pub fn envelope(self) -> Result<Envelope, (&'static str, String)> {
        let topic = Topic::new(&self.topic).map_err(|e| ("/topic", e.to_string()))?;
        let payload = Payload::json(&self.payload).map_err(|e| ("/payload", e.to_string()))?;
        let mut envelope = Envelope::new(topic, payload);
        if let Some(priority) = self.priority {
            let priority: Priority = priority
                .parse()
                .map_err(|e: plexus_core::ParsePriorityError| ("/priority", e.to_string()))?;
            envelope = envelope.with_priority(priority);
        }
        if let Some(headers) = self.headers {
            *envelope.headers_mut() = headers.into_iter().collect::<Headers>();
        }
        Ok(envelope)
    }
}

/// What `plexus.publish` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Published {
    /// The event's id.
    pub id: String,
    /// How many subscriptions it was for.
    pub matched: usize,
    /// How many of them queued it.
    pub enqueued: usize,
    /// On a durable topic: its offset in the durable log (it was kept, and the
    /// log's relay delivers it; `matched` and `enqueued` are then 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl From<plexus_bus::Receipt> for Published {
    fn from(receipt: plexus_bus::Receipt) -> Self {
        Self {
            id: receipt.id.to_string(),
            matched: receipt.matched,
            enqueued: receipt.enqueued,
            offset: None,
        }
    }
}

/// Publishes `envelope`: into `durable` when its topic is durable there, else on
/// `bus`. The one path every publisher of the node takes.
pub async fn publish_envelope(
    bus: &Bus,
    durable: Option<&Arc<dyn DurableLog>>,
    envelope: Envelope,
) -> Result<Published, ServiceError> {
    if let Some(log) = durable.filter(|log| log.is_durable(envelope.topic())) {
        let id = envelope.id().to_string();
        let offset = log.append(envelope).await?;
        return Ok(Published {
            id,
            matched: 0,
            enqueued: 0,
            offset: Some(offset),
        });
    }
    bus.publish(envelope)
        .await
        .map(Published::from)
        .map_err(bus_refusal)
}

/// `plexus.replay`: events of durable topics read back from the log.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayParams {
    /// The topic pattern (`orders.>`); needs `subscribe:` on it.
    pub pattern: String,
    /// Start at this offset (inclusive); a reader that saw offset `n` goes on from
    /// `n + 1` (the answer's `next_offset`).
    #[serde(default)]
    pub from_offset: Option<u64>,
    /// Or start at the first event stamped at or after this time (microseconds
    /// since the Unix epoch).
    #[serde(default)]
    pub since_us: Option<u64>,
    /// The most events to answer (default 100; at most the log's own bound).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `plexus.subscribe`: a subscription bound to the WebSocket connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    /// The topic pattern (`orders.*`, `orders.>`).
    pub pattern: String,
    /// Events held for this subscriber before `overflow` applies.
    #[serde(default)]
    pub capacity: Option<usize>,
    /// `drop_oldest`, `drop_newest`, `block` or `reject`.
    #[serde(default)]
    pub overflow: Option<String>,
    /// With `block`: how long a publisher waits for room, in milliseconds.
    #[serde(default)]
    pub block_timeout_ms: Option<u64>,
}

/// `plexus.unsubscribe`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeParams {
    /// The id `plexus.subscribe` answered.
    pub subscription: String,
}

/// `plexus.register`: an external instance served through this connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterParams {
    /// The instance's service descriptor (docs/external-services.md).
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub descriptor: ServiceDescriptor,
}

/// `plexus.deregister` and `plexus.heartbeat`: one of the connection's instances, or
/// all of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceParams {
    /// The instance; all of the connection's when absent.
    #[serde(default)]
    pub instance: Option<String>,
}

/// The bus and registry methods, as a service of the node.
pub(crate) struct PlexusService {
    bus: Bus,
    durable: Option<Arc<dyn DurableLog>>,
    descriptor: ServiceDescriptor,
}

impl PlexusService {
    pub(crate) fn new(node: &str, bus: Bus, durable: Option<Arc<dyn DurableLog>>) -> Self {
        let instance = InstanceId::new(format!("{PLEXUS_SERVICE}-{node}"));
        Self {
            bus,
            durable,
            descriptor: METHODS.describe(
        ServiceDescriptor::new(PLEXUS_SERVICE, "bus")
            .with_instance(instance.as_str())
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_description(
                "The bus and the registry as methods: publish everywhere; subscribe and register over /ws.",
            )
            .with_tag("system"),
    ),
        }
    }
}

/// A bus refusal, as a service error.
fn bus_refusal(error: BusError) -> ServiceError {
    match error {
        BusError::PayloadTooLarge { .. } | BusError::HeadersTooLarge { .. } => {
            ServiceError::invalid_params("/payload", error.to_string())
        }
        BusError::Rejected { .. } => ServiceError::transient(error.to_string()),
        BusError::ShuttingDown => ServiceError::unavailable(error.to_string()),
        other => ServiceError::failed(other.to_string()),
    }
}

async fn publish(
    s: &PlexusService,
    ctx: CallContext,
    p: PublishParams,
) -> Result<Published, ServiceError> {
    let envelope = p
        .envelope()
        .map_err(|(field, reason)| ServiceError::invalid_params(field, reason))?;
    ctx.check(Need::Publish(envelope.topic().as_str()))
        .map_err(ServiceError::Forbidden)?;
    // The event is part of the call that published it: its correlation id, and the
    // event that caused the call (if one did) as its cause.
    let envelope = envelope
        .with_correlation_id(ctx.correlation_id)
        .with_causation_id(ctx.causation_id);
    publish_envelope(&s.bus, s.durable.as_ref(), envelope).await
}

async fn replay(
    s: &PlexusService,
    ctx: CallContext,
    p: ReplayParams,
) -> Result<Value, ServiceError> {
    ctx.check(Need::Subscribe(&p.pattern))
        .map_err(ServiceError::Forbidden)?;
    let from = match (p.from_offset, p.since_us) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid_params(
                "/since_us",
                "give from_offset or since_us, not both",
            ));
        }
        (_, Some(us)) => ReplayFrom::Time(plexus_core::Timestamp::from_micros(us)),
        (offset, None) => ReplayFrom::Offset(offset.unwrap_or(0)),
    };
    let Some(log) = &s.durable else {
        return Err(ServiceError::failed(
            "no topic is durable on this node: declare some with `[store] durable_topics`",
        ));
    };
    log.replay(&p.pattern, from, p.limit.unwrap_or(100)).await
}

/// The answer of a method that binds state to a connection, asked for elsewhere.
async fn needs_socket<P>(_: &PlexusService, _: CallContext, _: P) -> Result<Value, ServiceError> {
    Err(ServiceError::failed(
        "this method binds state to a connection: call it over the WebSocket at /ws",
    ))
}

static METHODS: LazyLock<MethodTable<PlexusService>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<PublishParams, Published, _>(
            "publish",
            "Publishes one event on the bus (needs scope publish:<topic>).",
            Effect::Mutating,
            publish,
        )
        .method::<ReplayParams, Value, _>(
            "replay",
            "Reads events of durable topics back from the log, from an offset or a time (needs scope subscribe:<pattern>).",
            Effect::Idempotent,
            replay,
        )
        .method::<SubscribeParams, Value, _>(
            "subscribe",
            "Subscribes the WebSocket connection to a topic pattern (scope subscribe:<pattern>); events arrive as plexus.event notifications.",
            Effect::Mutating,
            needs_socket::<SubscribeParams>,
        )
        .websocket_only()
        .method::<UnsubscribeParams, Value, _>(
            "unsubscribe",
            "Ends one of the connection's subscriptions.",
            Effect::Mutating,
            needs_socket::<UnsubscribeParams>,
        )
        .websocket_only()
        .method::<RegisterParams, Value, _>(
            "register",
            "Registers an external service instance served through this connection (scope register:<service>).",
            Effect::Mutating,
            needs_socket::<RegisterParams>,
        )
        .websocket_only()
        .method::<InstanceParams, Value, _>(
            "deregister",
            "Removes the connection's instances (one, or all).",
            Effect::Mutating,
            needs_socket::<InstanceParams>,
        )
        .websocket_only()
        .method::<InstanceParams, Value, _>(
            "heartbeat",
            "Keeps the connection's instances alive (one, or all).",
            Effect::Idempotent,
            needs_socket::<InstanceParams>,
        )
        .websocket_only()
});

/// The `plexus` service's methods, as its descriptor lists them.
pub fn methods() -> &'static [plexus_core::MethodDescriptor] {
    METHODS.methods()
}

impl TableService for PlexusService {
    type State = Self;

    fn parts(&self) -> TableParts<'_, Self> {
        (&METHODS, self, &self.descriptor)
    }
}
