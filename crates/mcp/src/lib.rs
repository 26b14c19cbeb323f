//! The Plexus MCP server: every method in the registry is an MCP tool.
//!
//! - **Tools** follow the registry: tool `service.method` for each method of each
//!   service with an instance that accepts calls; description and input schema come
//!   from the descriptor. A call goes through the node's call path (schema check,
//!   balancer, breaker, deadline, retry); a [`plexus_node::CallError`] becomes a tool
//!   result with `isError: true` naming the code and message, and an unknown tool is
//!   JSON-RPC error -32602 (as the MCP spec shows).
//! - **List changes**: whenever the set of listed tools changes,
//!   `notifications/tools/list_changed` goes to every live 2025-11-25 session (on
//!   its GET stream), every stdio connection, and every 2026-07-28
//!   `subscriptions/listen` stream. Changes coalesce per connection, so a slow
//!   client never holds more than one pending.
//! - **Transports**: Streamable HTTP ([`McpServer::router`], nested by the gateway
//!   at `/mcp`) and stdio ([`serve_stdio`], for `plexus mcp`).
//! - **Protocols**: 2025-11-25 (sessions with `Mcp-Session-Id`, idle expiry → 404,
//!   DELETE ends one, `Origin` checked) and 2026-07-28 (stateless, `server/discover`,
//!   `subscriptions/listen`), both implemented by `rmcp` 3.11, which this crate
//!   builds on: Plexus owns the tool list and implements list and call itself.
//! - **Identity**: the gateway's auth layer puts a [`Caller`] in the request's
//!   extensions; it reaches [`plexus_core::CallContext::caller`].
//!
//! ```no_run
//! # async fn run(node: plexus_node::Node) -> Result<(), Box<dyn std::error::Error>> {
//! let app = axum::Router::new().nest("/mcp", plexus_mcp::router(node, plexus_mcp::McpConfig::default())?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The tool-call benchmark (`mcp_call_c16`) is in `plexus-bench`, so the server
//! links no HTTP client.
//!
//! ## Feature flags
//! - `test-util`: module `testing`, helpers for tests that talk to the server.

mod catalog;
mod config;
mod error;
mod handler;
mod http;
mod metrics;
mod server;
mod sessions;
mod stdio;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::{LOOPBACK_HOSTS, LOOPBACK_ORIGINS, MAX_BODY_BYTES_LIMIT, McpConfig};
pub use error::McpError;
pub use handler::Caller;
pub use server::{McpEvent, McpServer};
pub use stdio::serve_stdio;

// How a POST body is framed before rmcp reads it, public for the `mcp_body` fuzz
// target (`fuzz/` at the repository root); not part of the supported API.
#[doc(hidden)]
pub use http::{Framed, frame_body};

/// The Streamable HTTP endpoint of `node` at the router's root path; the gateway
/// nests it at `/mcp`. Shorthand for `McpServer::new(node, config)?.router()`.
/// Fails when `config` does not validate or no tokio runtime is running.
pub fn router(node: plexus_node::Node, config: McpConfig) -> Result<axum::Router, McpError> {
    Ok(McpServer::new(node, config)?.router())
}

/// The protocol versions served, oldest first.
pub const PROTOCOL_VERSIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];
