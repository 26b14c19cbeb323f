//! Plexus's one Redis/Valkey connection, shared by every family that keeps its state
//! there (the cache now; locks, rate limits and sessions next).
//!
//! - `config`: the `[redis]` section ([`RedisConfig`]): the server's URL, how long a
//!   connection attempt and a reply may take, how often a lost connection is retried
//!   before a command gives up, and the prefix of every key Plexus writes.
//! - [`Redis`]: a multiplexed connection that reconnects by itself
//!   (`redis::aio::ConnectionManager`), opened lazily so a node starts while Redis is
//!   down. Every command is bounded in time; a server that is gone, refuses, or does
//!   not answer is [`RedisError::Unavailable`], which a service turns into
//!   [`ServiceError::Unavailable`](plexus_core::ServiceError::Unavailable).
//! - [`subscribe_forever`]: a subscription on a connection of its own that comes
//!   back after every loss, telling its [`Listener`] when it is live and when not.
//! - [`RedisFamily`]: the `[redis]` section entering the node through the family door
//!   (checked, registered, its defaults shown). It opens nothing by itself: a family
//!   that uses Redis asks its [`RedisSlot`] for the connection, and the first one to
//!   ask brings the `redis` health component ([`redis_component`]) into the node, so a
//!   node that uses Redis for nothing neither connects to it nor reports on it.
//!
//! ```no_run
//! # async fn run() -> Result<(), plexus_redis::RedisError> {
//! use plexus_redis::{Redis, RedisConfig};
//!
//! let redis = Redis::open(&RedisConfig::with_url("redis://127.0.0.1:6379"))?;
//! redis.ping().await?;
//! let key = redis.key("greeting"); // `plexus:greeting`
//! redis
//!     .run(|mut c| async move {
//!         redis::cmd("SET").arg(&key).arg("hi").query_async::<()>(&mut c).await
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//! - `test-util`: [`testing`], the helpers every Redis-backed family's tests share
//!   (the shared test server under a fresh prefix, a private `redis-server` to kill
//!   and restart, [`eventually`](testing::eventually), [`Gate`](testing::Gate)).
//!
//! TLS (`rediss://`) is not built in.

pub mod config;
mod connection;
mod family;
mod health;
mod subscriber;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::RedisConfig;
pub use connection::{Redis, RedisError};
pub use family::{RedisFamily, RedisSlot};
pub use health::{COMPONENT, redis_component};
pub use redis;
pub use subscriber::{Channels, Listener, subscribe_forever};
