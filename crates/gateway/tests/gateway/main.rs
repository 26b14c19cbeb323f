//! The gateway through its public surface: HTTP and WebSocket clients against a node
//! and a gateway on an ephemeral loopback port.
#![allow(clippy::unwrap_used)]

mod auth;
mod browser;
mod conformance;
mod edges;
mod examples;
mod external;
mod input;
mod ops;
mod shutdown;
mod support;
mod ui;
mod ws;
