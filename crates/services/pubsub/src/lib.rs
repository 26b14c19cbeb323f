//! The Pub/Sub family: the bus's topics shared by every node on one Redis/Valkey
//! or one NATS, or kept in process (the default: the bus is the embedded backend).
//!
//! The folder template every built-in family shares:
//!
//! - `config`: the `[pubsub]` section ([`PubSubConfig`]): the backend, the shared
//!   topics (bus patterns, `chat.*`, `orders.>`), the bounds of the bridge.
//! - [`Bridge`]: events published on this node's bus on a shared topic go out over
//!   a wire, and other nodes' come back to this node's bus, where local and
//!   WebSocket subscribers get them. No echo; the subscription comes back after a
//!   reconnect, and what was missed meanwhile (neither wire replays) is counted
//!   from the publishers' numbers. One module per wire:
//!   - `redis`: Redis/Valkey pub/sub (`backend = "redis"`, the `[redis]` connection);
//!   - `nats`: NATS subjects (`backend = "nats"`, `nats_url`), the cluster's way
//!     for events to cross nodes ([`NatsConnection`]).
//! - [`PubSubService`]: the `pubsub.status` method.
//! - [`PubSubFamily`]: the [`Family`](plexus_node::family::Family) door.
//! - [`PubSubMetrics`]: its counters, named `plexus_pubsub_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes: patterns
//!   mean what they mean on the bus, each event arrives once, in order, with its
//!   priority, headers, ids and payload.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use plexus_bus::{Bus, SubscribeOptions};
//! use plexus_pubsub::{Backend, Bridge, PubSubConfig, PubSubMetrics};
//! use plexus_redis::{Redis, RedisConfig};
//!
//! let config = PubSubConfig {
//!     backend: Backend::Redis,
//!     topics: vec!["chat.>".into()],
//!     ..PubSubConfig::default()
//! };
//! let bus = Bus::new();
//! let redis = Redis::open(&RedisConfig::with_url("redis://127.0.0.1:6379"))?;
//! let bridge = Bridge::redis(redis, &config, PubSubMetrics::new());
//! bridge.start(&bus)?;
//! // Events on `chat.*` topics now reach every node bridged to the same Redis.
//! let mut room = bus.subscribe("chat.*", SubscribeOptions::new())?;
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]) and a private
//!   `nats-server` for fault tests ([`testing::PrivateNats`]).

mod bridge;
pub mod config;
mod family;
mod metrics;
mod nats;
mod redis;
mod service;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod testing;

pub use bridge::{Bridge, Gap, ORIGIN_HEADER, SEQ_HEADER};
pub use config::{Backend, PubSubConfig};
pub use family::PubSubFamily;
pub use metrics::{Counts, Dropped, PubSubMetrics};
pub use nats::NatsConnection;
pub use service::PubSubService;
