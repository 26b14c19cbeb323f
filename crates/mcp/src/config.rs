//! [`McpConfig`]: sessions, origins, body size and every bound of the MCP server.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::McpError;

/// The origins a browser may call the server from by default: loopback only, any
/// port.
pub const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// The `Host` header values accepted by default: loopback only (any port).
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The largest request body accepted by [`McpConfig::validate`] (64 MiB).
pub const MAX_BODY_BYTES_LIMIT: usize = 64 << 20;

/// How the MCP server behaves and what it holds. Every bound is here.
///
/// Durations are whole milliseconds so the configuration reads the same in TOML and
/// JSON. Build with `McpConfig::default()` and change fields; [`McpConfig::validate`]
/// names the first field out of range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// A 2025-11-25 session with no traffic for this long (no request from its
    /// client, no notification to it) expires; its `Mcp-Session-Id` then answers
    /// 404 (default 300,000 ms = 5 min).
    pub session_ttl_ms: u64,
    /// The most live 2025-11-25 sessions; an `initialize` beyond it is refused with
    /// HTTP 503 and a JSON-RPC error (default 1024).
    pub max_sessions: usize,
    /// The most live 2025-11-25 sessions one client address may hold; its next
    /// `initialize` is refused with HTTP 429 and a JSON-RPC error, so one client
    /// cannot take the whole pool (default 32). Counted only where the peer
    /// address is known (behind the gateway).
    pub max_sessions_per_peer: usize,
    /// A session whose client has not sent `notifications/initialized` this long
    /// after `initialize` is closed (default 10,000 ms).
    pub init_timeout_ms: u64,
    /// The most open 2026-07-28 `subscriptions/listen` streams; one more is refused
    /// with a JSON-RPC error (default 1024).
    pub max_listeners: usize,
    /// Messages queued per session stream before the sender waits (default 16). A
    /// list change is coalesced per session, so a slow client holds at most one
    /// pending `notifications/tools/list_changed` beyond this.
    pub session_queue: usize,
    /// Browser origins allowed to call the server (`scheme://host:port`, `:*` for
    /// any port). A request with another `Origin` gets 403; a request without
    /// `Origin` (not a browser) passes. Default: [`LOOPBACK_ORIGINS`]. An empty list
    /// refuses every request that carries an `Origin`.
    pub allowed_origins: Vec<String>,
    /// `Host` header values accepted (`host` or `host:port`), against DNS
    /// rebinding. Default: [`LOOPBACK_HOSTS`]. An empty list accepts any host: set
    /// it when the gateway binds a public address.
    pub allowed_hosts: Vec<String>,
    /// The largest request body, in bytes; a larger one gets HTTP 413 and JSON-RPC
    /// error -32008 (default 1 MiB, at most [`MAX_BODY_BYTES_LIMIT`]).
    pub max_body_bytes: usize,
    /// The largest `clientInfo` an `initialize` may carry, in bytes of JSON; a
    /// larger one (or a `protocolVersion` over 64 bytes) is refused with HTTP 400
    /// and -32602, so nothing a client sends reaches the log unbounded (default
    /// 4096).
    pub max_client_info_bytes: usize,
    /// The deadline of each tool call through the call path (default 30,000 ms).
    pub call_timeout_ms: u64,
    /// How often an idle SSE stream gets a keep-alive comment; 0 sends none
    /// (default 15,000 ms).
    pub sse_keep_alive_ms: u64,
    /// The server's name in `initialize` and `server/discover` (default `plexus`).
    pub server_name: String,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            session_ttl_ms: 300_000,
            max_sessions: 1024,
            max_sessions_per_peer: 32,
            init_timeout_ms: 10_000,
            max_listeners: 1024,
            session_queue: 16,
            allowed_origins: LOOPBACK_ORIGINS.iter().map(|s| (*s).to_owned()).collect(),
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|s| (*s).to_owned()).collect(),
            max_body_bytes: 1 << 20,
            max_client_info_bytes: 4096,
            call_timeout_ms: 30_000,
            sse_keep_alive_ms: 15_000,
            server_name: "plexus".to_owned(),
        }
    }
}

impl McpConfig {
    /// The idle expiry of a session.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.session_ttl_ms)
    }

    /// The deadline of one tool call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// The SSE keep-alive interval, if any.
    pub fn sse_keep_alive(&self) -> Option<Duration> {
        (self.sse_keep_alive_ms > 0).then(|| Duration::from_millis(self.sse_keep_alive_ms))
    }

    /// Checks every field, naming the first one out of range.
    pub fn validate(&self) -> Result<(), McpError> {
        let invalid = |field, reason: String| Err(McpError::InvalidConfig { field, reason });
        if self.session_ttl_ms == 0 {
            return invalid("session_ttl_ms", "must be longer than zero".into());
        }
        if self.max_sessions == 0 {
            return invalid("max_sessions", "must be at least 1".into());
        }
        if self.max_sessions_per_peer == 0 {
            return invalid("max_sessions_per_peer", "must be at least 1".into());
        }
        if self.init_timeout_ms == 0 {
            return invalid("init_timeout_ms", "must be longer than zero".into());
        }
        if self.max_client_info_bytes < 256 {
            return invalid("max_client_info_bytes", "must be at least 256".into());
        }
        if self.max_listeners == 0 {
            return invalid("max_listeners", "must be at least 1".into());
        }
        if self.session_queue == 0 || self.session_queue > 65_536 {
            return invalid(
                "session_queue",
                format!("is {}; it must be between 1 and 65536", self.session_queue),
            );
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return invalid(
                "max_body_bytes",
                format!(
                    "is {}; it must be between 1024 and {MAX_BODY_BYTES_LIMIT}",
                    self.max_body_bytes
                ),
            );
        }
        if self.call_timeout_ms == 0 {
            return invalid("call_timeout_ms", "must be longer than zero".into());
        }
        for origin in &self.allowed_origins {
            if origin != "null"
                && !(origin.starts_with("http://") || origin.starts_with("https://"))
            {
                return invalid(
                    "allowed_origins",
                    format!("`{origin}` must start with http:// or https:// (or be `null`)"),
                );
            }
        }
        if let Some(host) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains('/') || h.chars().any(char::is_whitespace))
        {
            return invalid(
                "allowed_hosts",
                format!("`{host}` is not a host or host:port"),
            );
        }
        if self.server_name.is_empty() {
            return invalid("server_name", "must not be empty".into());
        }
        Ok(())
    }
}
/// The MCP section as the node's configuration store checks it, on start and on every
/// runtime change: the same rules as [`McpConfig::validate`], the field named relative to
/// `[mcp]`.
impl plexus_config::Validate for McpConfig {
    fn validate(&self) -> Result<(), plexus_config::FieldErrors> {
        McpConfig::validate(self).map_err(|e| match e {
            McpError::InvalidConfig { field, reason } => {
                plexus_config::FieldErrors::one(field, reason)
            }
            other => plexus_config::FieldErrors::one("", other.to_string()),
        })
    }
}
