//! [`PubSubService`]: the `pubsub` service, so every front end can see where the
//! shared topics go and what crossed.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `status` | | `{backend, topics, live, origin, counts, last_gap}` |
//!
//! Publishing and subscribing are the bus's own (`plexus.publish`,
//! `plexus.subscribe` over the gateway, [`Bus`](plexus_bus::Bus) in process): with
//! `backend = "redis"` or `"nats"` the events on the shared topics also reach, and
//! come from, every node bridged to the same server.

use std::sync::{Arc, LazyLock};

use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use schemars::JsonSchema;
use serde::Serialize;

use crate::bridge::{Bridge, Gap};
use crate::config::{Backend, PubSubConfig};
use crate::metrics::Counts;

/// The `pubsub` service.
#[derive(Clone, Debug)]
pub struct PubSubService {
    state: Arc<State>,
    descriptor: ServiceDescriptor,
}

/// What the handlers receive (public only as [`TableService::State`]).
#[derive(Debug)]
pub struct State {
    config: PubSubConfig,
    bridge: Option<Arc<Bridge>>,
}

impl PubSubService {
    /// The service for `config`, reporting on `bridge` when there is one.
    pub fn new(config: PubSubConfig, bridge: Option<Arc<Bridge>>) -> Self {
        Self {
            state: Arc::new(State { config, bridge }),
            descriptor: METHODS.describe(
                ServiceDescriptor::new("pubsub", "pubsub")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Where the bus's shared topics travel (this process, or every node on one Redis)",
                    ),
            ),
        }
    }
}

static METHODS: LazyLock<MethodTable<State>> = LazyLock::new(|| {
    MethodTable::new().method::<NoParams, Status, _>(
        "status",
        "The backend, the shared topics, whether the Redis subscription is live, and what crossed, was dropped or missed",
        Effect::Idempotent,
        status,
    )
});

/// What `pubsub.status` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct Status {
    /// `bus` or `redis`.
    backend: &'static str,
    /// The shared bus patterns.
    topics: Vec<String>,
    /// Whether the subscription to Redis is live (always true on the bus).
    live: bool,
    /// This node's bridge id (`plexus-origin`), with Redis.
    origin: Option<String>,
    /// What crossed, was dropped or missed (zero on the bus).
    counts: Counts,
    /// The last gap: events a publisher sent that this node never received.
    last_gap: Option<Gap>,
}

async fn status(s: &State, _: CallContext, _: NoParams) -> Result<Status, ServiceError> {
    let bridge = s.bridge.as_deref();
    Ok(Status {
        backend: s.config.backend.into(),
        topics: s.config.topics.clone(),
        live: bridge.is_none_or(Bridge::live),
        origin: bridge.map(|b| b.origin().to_owned()),
        counts: bridge.map(|b| b.metrics().snapshot()).unwrap_or_default(),
        last_gap: bridge.and_then(Bridge::last_gap),
    })
}

impl TableService for PubSubService {
    type State = State;

    fn parts(&self) -> TableParts<'_, State> {
        (&METHODS, &self.state, &self.descriptor)
    }
}

impl Backend {
    /// Whether events leave the process.
    pub fn is_shared(self) -> bool {
        self != Backend::Bus
    }
}
