//! The Plexus gateway: a node's HTTP and WebSocket front.
//!
//! ```no_run
//! # async fn run(node: plexus_node::Node) -> Result<(), Box<dyn std::error::Error>> {
//! use plexus_gateway::{Gateway, GatewayConfig};
//!
//! let gateway = Gateway::builder(node.clone())
//!     .config(GatewayConfig::default()) // 127.0.0.1:7700, auth off on loopback
//!     .build()?;
//! let listener = gateway.bind().await?;
//! gateway.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! node.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! | endpoint | what | token |
//! | --- | --- | --- |
//! | `POST /rpc` | JSON-RPC 2.0: single calls, batches, notifications | `call:<method>` per call (`publish:<topic>` for `plexus.publish`) |
//! | `GET /ws` | JSON-RPC 2.0 both ways (below) | per method |
//! | `GET /metrics` | Prometheus text; OpenMetrics when `Accept` names `application/openmetrics-text` | `ops` |
//! | `GET /health` | the system's health with every component, JSON; 503 when Critical | `ops` |
//! | `GET /ready` | 200 while accepting work and not Critical, else 503 | none |
//! | `GET /livez` | 200 while the process serves | none |
//! | `GET /ui` | the operator's view: health, services, bus, live tail, configuration, audit ([`ui`]) | the page none; its data `ops`; actions `call:node.config_rollback` |
//!
//! Other routers (the MCP server) are served behind the same auth with
//! [`GatewayBuilder::route`] or [`GatewayBuilder::merge`].
//!
//! # JSON-RPC over HTTP
//!
//! `POST /rpc` with `Content-Type: application/json`. Every call goes through the
//! node's call path (`Node::call`). Errors use the specification's codes (-32700
//! parse error, -32600 invalid request, -32601 method not found, -32602 invalid
//! params, -32603 internal) and Plexus's own in the -32000 range, each with a
//! structured `data` (see `plexus_jsonrpc::codes` and `plexus_node::CallError`):
//! -32000 service failed, -32001 unauthorized, -32002 forbidden, -32003 circuit open,
//! -32004 timeout, -32005 rate limited, -32006 unavailable, -32007 overloaded, -32008
//! too large. An external service's own code (outside -32768 to -32000) reaches the
//! caller unchanged. JSON-RPC errors come in a `200` body; `204` answers
//! notifications only; `401` (no or unknown token), `413` (body over
//! `max_body_bytes`; the connection closes after it) and `415` (not JSON) come before
//! JSON-RPC. A request object that repeats a key is `-32600`; ids are answered
//! exactly as sent (`1.0`, integers beyond 64 bits). The service name `plexus` is
//! reserved for the gateway's own methods.
//!
//! # WebSocket protocol (`GET /ws`)
//!
//! Text (or binary) messages, each one JSON-RPC 2.0 message (a batch of requests is
//! accepted too), framed as on `/rpc` (`plexus_jsonrpc`). A token goes in the upgrade request's `Authorization` header.
//!
//! **Peer → node requests**
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `<service>.<method>` | the method's | the method's (through the call path) |
//! | `plexus.subscribe` | `{pattern, capacity?, overflow?: "drop_oldest" \| "reject" \| "block" \| "dead_letter", block_timeout_ms?}` | `{subscription: "s-1"}` |
//! | `plexus.unsubscribe` | `{subscription}` | `{unsubscribed}` |
//! | `plexus.publish` | `{topic, payload?, priority?: "low" \| "normal" \| "high" \| "critical", headers?}` | `{id, matched, enqueued}` |
//! | `plexus.register` | `{descriptor}` (a `ServiceDescriptor` as JSON) | `{instance, heartbeat_ttl_ms}` |
//! | `plexus.heartbeat` | `{instance?}` (default: every instance of this socket) | `{instances: [...]}` |
//! | `plexus.deregister` | `{instance?}` | `{deregistered: [...]}` |
//!
//! A subscription's overflow policy is `drop_oldest` unless asked: a slow socket
//! loses its oldest events (counted in `plexus_bus_dropped_total`) and never holds
//! publishers up.
//!
//! **Node → peer notifications**: `plexus.event` with params `{subscription, topic,
//! id, correlation_id, causation_id, priority, timestamp_us, source, headers,
//! payload, payload_encoding: "json" | "base64" | "none"}`.
//!
//! **Node → service requests**: a registered service receives
//! `{"jsonrpc":"2.0","id":"n-7","method":"<service>.<method>","params":…,"plexus":{instance,
//! correlation_id, causation_id?, caller?, timeout_ms?, headers?}}` — the full `service.method`
//! name, so one socket may serve several services — and answers with a JSON-RPC
//! response carrying the same `id`. The calls it makes while serving one join that
//! conversation when they carry `"plexus": {"correlation_id": …, "causation_id": …}`
//! as received: any request on `/rpc` or `/ws` may (a member that is not a UUID is
//! a -32600), and the call, or the event `plexus.publish` makes, takes those ids. Error codes it may use: -32601, -32602 (`data.field`), -32006
//! (unavailable: the call path may try another instance), -32004, or any other code
//! with `data.retryable: true|false`. A code of its own (outside -32768 to -32000)
//! reaches the caller unchanged, its `data` as the error's `data.detail`; any other
//! reserved code is answered as -32000.
//!
//! **Lifecycle of an external service**: `plexus.register` makes the instance
//! Healthy; `plexus.heartbeat` at least once per `heartbeat_ttl_ms` keeps it so (the
//! registry marks silent instances stale). When its socket drops, the instance goes
//! Unhealthy with reason `"connection lost"` at once, calls waiting for it fail as
//! unavailable (and fail over to other instances), and it is deregistered after
//! `detach_grace_ms` unless it registers again on a new socket first, which
//! replaces its transport. An instance id held by anyone else (an in-process service)
//! is never taken over.
//!
//! # Auth
//!
//! See [`auth`]: bearer tokens from [`GatewayConfig::tokens`], each with scopes;
//! none configured means auth is off, which the gateway accepts only on a loopback
//! address unless [`GatewayConfig::allow_public_without_auth`] is set. Failures are
//! counted in `plexus_gateway_auth_failures_total{reason}`; tokens never appear in
//! logs or `Debug` output. Browser WebSocket connections from a non-loopback
//! `Origin` are refused unless listed in [`GatewayConfig::allowed_origins`].
//!
//! # Metrics
//!
//! `plexus_gateway_requests_total{endpoint, outcome}`,
//! `plexus_gateway_request_duration_seconds{endpoint}`,
//! `plexus_gateway_ws_connections`, `plexus_gateway_auth_failures_total{reason}`,
//! registered in the node's registry beside the node's own.

pub mod auth;
pub mod config;
mod dispatch;
mod error;
mod http;
mod methods;
mod metrics;
mod server;
pub mod ui;
mod ws;

pub use auth::{Caller, Need, Scope};
pub use config::{ConfigError, DEFAULT_PORT, GatewayConfig, Secret, TokenConfig};
pub use error::GatewayError;
pub use methods::RESERVED_SERVICE;
pub use server::{Gateway, GatewayBuilder, ServeReport};

// The pure steps of handling a WebSocket message, public for the `ws_message` fuzz
// target (`fuzz/` at the repository root); not part of the supported API.
#[doc(hidden)]
pub use dispatch::execute;
#[doc(hidden)]
pub use ws::inbound::{Inbound, classify};
