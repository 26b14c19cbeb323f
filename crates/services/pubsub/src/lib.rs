//! The Pub/Sub family: the bus's topics shared by every node on one Redis/Valkey,
//! or kept in process (the default: the bus is the embedded backend).
//!
//! The folder template every built-in family shares:
//!
//! - `config`: the `[pubsub]` section ([`PubSubConfig`]): the backend, the shared
//!   topics (bus patterns, `chat.*`, `orders.>`), the bounds of the bridge.
//! - [`RedisBridge`]: the Redis backend. Events published on this node's bus on a
//!   shared topic go to Redis; other nodes' come back through `PSUBSCRIBE` to this
//!   node's bus, where local and WebSocket subscribers get them. No echo; the
//!   subscription comes back after a reconnect, and what was missed meanwhile
//!   (Redis pub/sub does not replay) is counted from the publishers' numbers.
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
//! use plexus_pubsub::{PubSubConfig, PubSubMetrics, RedisBridge, Backend};
//! use plexus_redis::{Redis, RedisConfig};
//!
//! let config = PubSubConfig {
//!     backend: Backend::Redis,
//!     topics: vec!["chat.>".into()],
//!     ..PubSubConfig::default()
//! };
//! let bus = Bus::new();
//! let redis = Redis::open(&RedisConfig::with_url("redis://127.0.0.1:6379"))?;
//! let bridge = RedisBridge::new(redis, &config, PubSubMetrics::new());
//! bridge.start(&bus)?;
//! // Events on `chat.*` topics now reach every node bridged to the same Redis.
//! let mut room = bus.subscribe("chat.*", SubscribeOptions::new())?;
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]).

pub mod config;
mod family;
mod metrics;
mod redis;
mod service;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use config::{Backend, PubSubConfig};
pub use family::PubSubFamily;
pub use metrics::{Counts, Dropped, PubSubMetrics};
pub use redis::{Gap, ORIGIN_HEADER, RedisBridge, SEQ_HEADER};
pub use service::PubSubService;
