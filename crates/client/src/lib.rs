//! A Rust client of a running Plexus node: what `plexus call`, `publish`,
//! `subscribe`, `services`, `health` and `config` use.
//!
//! - [`Client::call`]: JSON-RPC 2.0 over `POST /rpc`, through the node's call path.
//!   A method's error comes back as [`ClientError::Rpc`] with the node's code,
//!   message and data intact.
//! - [`Client::publish`]: `plexus.publish` over the same endpoint.
//! - [`Client::subscribe`]: a WebSocket of its own (`GET /ws`), `plexus.subscribe`,
//!   then a [`futures::Stream`] of [`Event`]s from `plexus.event` notifications.
//! - [`Client::health`], [`Client::ready`], [`Client::livez`]: the operations
//!   endpoints; [`Client::services`], [`Client::node_health`] and `config_*`: the
//!   node's own `node.*` methods.
//!
//! Failures are sorted for the caller: [`ClientError::NotRunning`] when nothing
//! listens at the address (start a node with `plexus serve`),
//! [`ClientError::Unauthorized`] when the token is missing or refused (set
//! `PLEXUS_TOKEN`), [`ClientError::Rpc`] when the node answered with an error
//! (its code is one of [`codes`], or a service's own).
//! Every bound (timeouts, the largest answer, the largest WebSocket message) is a
//! field of [`ClientConfig`].
//!
//! ```no_run
//! # async fn run() -> Result<(), plexus_client::ClientError> {
//! use futures::StreamExt;
//! use plexus_client::{Client, Priority};
//! use serde_json::json;
//!
//! let client = Client::new("http://127.0.0.1:7700", std::env::var("PLEXUS_TOKEN").ok())?;
//! let services = client.call("node.services", json!({})).await?;
//! println!("{services}");
//!
//! let mut orders = client.subscribe("orders.>").await?;
//! client.publish("orders.created", json!({"id": 7}), Priority::Normal).await?;
//! if let Some(event) = orders.next().await {
//!     println!("{}: {}", event?.topic, "received");
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod subscribe;

pub use client::{Client, ClientConfig, DEFAULT_URL, Published};
pub use error::{ClientError, UNAUTHORIZED_CODE};
pub use plexus_core::Priority;
/// The JSON-RPC error codes a node answers with (`plexus_jsonrpc::codes`).
pub use plexus_jsonrpc::codes;
pub use subscribe::{Event, Subscription};
