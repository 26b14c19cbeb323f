//! Plexus as a library: a whole node assembled from one configuration.
//!
//! `plexus serve` is a few lines over this crate; a Rust program that depends on it
//! starts the same node (the bus, the registry, health checks, the call path, every
//! service family, the gateway with JSON-RPC, WebSocket and MCP) with its own services
//! beside the built-in ones:
//!
//! ```no_run
//! # async fn run() -> Result<(), plexus_app::AppError> {
//! let app = plexus_app::App::builder()
//!     .toml("[node]\nname = \"embedded\"\n[gateway]\nbind = \"127.0.0.1:0\"\n")
//!     .start()
//!     .await?;
//! let listening = app.listen().await?;
//! println!("listening on {}", listening.local_addr()?);
//! app.serve(listening, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! `examples/embed.rs` is a whole program (`cargo run -p plexus-app --example
//! embed`), and `tests/embed.rs` runs it.
//!
//! ## How it is put together
//! - [`AppConfig`]: the node's own sections (`[node]`, `[gateway]`, `[mcp]`,
//!   `[calls]`, `[[processes]]`), each checked with [`plexus_config::Validate`].
//! - [`Family`] (from `plexus-node`): the one door a service family enters by. Its
//!   section builds its [`Parts`]: services, health components, call observers,
//!   metrics and a configuration history. [`default_families`] lists the built-in
//!   ones.
//! - [`App`]: reads the configuration, opens the families, starts the node, serves the
//!   gateway or MCP's stdio, and stops everything in reverse order.
//!
//! ## Feature flags
//! - `datastore` (default): the DataStore family (crate `plexus-datastore`, `[store]`,
//!   SQLite or PostgreSQL), with the `datastore` and `audit` services.
//! - `cache` (default): the Cache family (crate `plexus-cache`, `[cache]`, moka or
//!   Redis), with the `cache` service. Implies `redis`.
//! - `pubsub` (default): the Pub/Sub family (crate `plexus-pubsub`, `[pubsub]`): the
//!   bus's shared topics kept in process, or bridged through Redis pub/sub to
//!   every node on the same server. Implies `redis`.
//! - `script` (default): the ScriptEngine family (crate `plexus-script`,
//!   `[script]`): the `script` service running sandboxed rhai scripts that call
//!   services with their caller's rights.
//! - `redis`: the one Redis/Valkey connection every family that uses Redis shares
//!   (crate `plexus-redis`, `[redis]`, the `redis` health component).

mod app;
#[cfg(feature = "cache")]
mod cache;
mod config;
#[cfg(feature = "datastore")]
mod datastore;
mod error;
#[cfg(feature = "script")]
mod script;

pub use app::{App, AppBuilder, Listening};
#[cfg(feature = "cache")]
pub use cache::CacheFamily;
pub use config::{AppConfig, CheckSettings, ENV_EXCLUDE, HealthSection, ProcessConfig, Processes};
#[cfg(feature = "datastore")]
pub use datastore::DataStoreFamily;
pub use error::AppError;
pub use plexus_node::Node;
pub use plexus_node::family::{Family, FamilyError, NodeSection, Parts};
#[cfg(feature = "pubsub")]
pub use plexus_pubsub::PubSubFamily;
#[cfg(feature = "redis")]
pub use plexus_redis::{RedisFamily, RedisSlot};
#[cfg(feature = "script")]
pub use script::ScriptFamily;

/// The built-in service families, in the order they open and their services start.
/// A new family is one more line here. `[redis]` comes first: the families that
/// keep state on Redis reach its one connection through its slot.
pub fn default_families() -> Vec<Box<dyn Family>> {
    #[cfg(feature = "redis")]
    let redis = RedisFamily::new();
    vec![
        #[cfg(feature = "redis")]
        Box::new(redis.clone()),
        #[cfg(feature = "datastore")]
        Box::new(DataStoreFamily),
        #[cfg(feature = "cache")]
        Box::new(CacheFamily::new(redis.slot())),
        #[cfg(feature = "pubsub")]
        Box::new(PubSubFamily::new(redis.slot())),
        #[cfg(feature = "script")]
        Box::new(ScriptFamily),
    ]
}
