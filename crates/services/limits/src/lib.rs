//! The Rate Limits family: how much of a rule a key may take now, counted in the
//! process or on Redis/Valkey (so N nodes enforce one limit), offered to the node as
//! the `ratelimit` service.
//!
//! The folder template every built-in family shares:
//!
//! - `config`: the `[limits]` section ([`LimitsConfig`]): the backend, the bounds,
//!   the named rules (`[limits.rules.NAME]`, [`RuleConfig`]).
//! - [`rule`]: a resolved [`Rule`] and the arithmetic of both algorithms (the
//!   approximated sliding window, GCRA), written once for the memory backend and
//!   mirrored by the Redis scripts.
//! - [`LimiterBackend`]: what a backend does; [`MemoryBackend`] (moka, bounded in
//!   keys, Tokio's clock) and [`RedisBackend`] (one Lua script per algorithm, one
//!   round trip, the server's clock).
//! - [`Limiter`]: the limiter every backend is used through: input checks naming the
//!   field, rules by name, costs that can never be allowed refused, counters.
//! - [`LimitsService`]: the `ratelimit.*` methods (check, acquire, reset, rules)
//!   with JSON Schemas derived from their params.
//! - [`LimitsFamily`]: the [`Family`](plexus_node::family::Family) door: `[limits]`
//!   builds the backend, the service and its metrics; on Redis it takes the node's
//!   one connection from the [`RedisSlot`](plexus_redis::RedisSlot).
//! - [`LimitsMetrics`]: its counters, named `plexus_limits_*`.
//! - `conformance` (feature `test-util`): the suite every backend passes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), plexus_limits::LimitError> {
//! use plexus_limits::{Limiter, LimitsConfig, RuleConfig};
//!
//! let mut config = LimitsConfig::default();
//! config.rules.insert("api".into(), RuleConfig::sliding_window(2, 60_000));
//! let limiter = Limiter::in_memory(config);
//! assert!(limiter.acquire("api", "user:1", 1).await?.allowed);
//! assert!(limiter.check("api", "user:1", 1).await?.allowed);
//! assert!(limiter.acquire("api", "user:1", 1).await?.allowed);
//! let refused = limiter.acquire("api", "user:1", 1).await?;
//! assert!(!refused.allowed && refused.retry_after_ms > 0);
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: the conformance suite ([`conformance`]) and its macro
//!   [`limits_conformance!`].

mod backend;
pub mod config;
mod error;
mod family;
mod limiter;
mod memory;
mod metrics;
mod redis;
pub mod rule;
mod service;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use backend::{Ask, LimiterBackend};
pub use config::{Algorithm, Backend, LimitsConfig, RuleConfig};
pub use error::LimitError;
pub use family::LimitsFamily;
pub use limiter::Limiter;
pub use memory::MemoryBackend;
pub use metrics::{LimitsMetrics, Rejected};
pub use redis::RedisBackend;
pub use rule::{Decision, Raw, Rule};
pub use service::LimitsService;
