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
//! - `limits` (default): the Rate Limits family (crate `plexus-limits`, `[limits]`):
//!   the `ratelimit` service, in process or on Redis so every node enforces one
//!   limit. Implies `redis`.
//! - `locks` (default): the Locks family (crate `plexus-locks`, `[locks]`), with the
//!   `lock` service: leased locks with fencing tokens in process, on Redis or on
//!   PostgreSQL. Implies `redis`.
//! - `sessions` (default): the Sessions family (crate `plexus-sessions`,
//!   `[sessions]`, in process or Redis), with the `session` service and the
//!   `session.expired` / `session.revoked` events. Implies `redis`.
//! - `script` (default): the ScriptEngine family (crate `plexus-script`,
//!   `[script]`): the `script` service running sandboxed rhai scripts that call
//!   services with their caller's rights.
//! - `dsl` (default): the command language (crate `plexus-dsl`, `[dsl]`): the `dsl`
//!   service checking programs against the registry before running them as their
//!   caller.
//! - `redis`: the one Redis/Valkey connection every family that uses Redis shares
//!   (crate `plexus-redis`, `[redis]`, the `redis` health component).

mod app;
mod config;
mod error;
mod families;

pub use app::{App, AppBuilder, Listening};
pub use config::{AppConfig, CheckSettings, ENV_EXCLUDE, HealthSection, ProcessConfig, Processes};
pub use error::AppError;
pub use families::*;
pub use plexus_node::Node;
pub use plexus_node::family::{Family, FamilyError, NodeSection, Parts};
