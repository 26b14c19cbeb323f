//! The gateway's metrics, defined in one place and registered in the node's registry.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `plexus_gateway_requests_total` | counter | endpoint (`rpc`, `ws`, `metrics`, `health`), outcome |
//! | `plexus_gateway_request_duration_seconds` | histogram | endpoint (`rpc`: one HTTP request, batch or single) |
//! | `plexus_gateway_ws_connections` | gauge | |
//! | `plexus_gateway_auth_failures_total` | counter | reason (`missing`, `malformed`, `unknown`, `forbidden`) |
//! | `plexus_gateway_ws_closed_total` | counter | reason (`send_buffer_full`: the client did not read) |
//! | `plexus_gateway_connections_refused_total` | counter | reason (`per_peer`: the peer's share is used; `full`: the ops reserve too; `ops_only`: served the ops endpoints only) |
//!
//! A JSON-RPC request counts once with its outcome: `ok`, a call error's outcome
//! (`method_not_found`, `timeout`, …, see `plexus_node::CallError::outcome`), or one
//! of the gateway's own: `parse_error`, `invalid_request`, `unauthorized`,
//! `forbidden`, `too_large`, `overloaded`. Handles for every label pair are made at
//! start so that counting takes no lookup.

use std::collections::HashMap;
use std::time::Duration;

use plexus_node::Node;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

type Labels = [(&'static str, &'static str); 2];

/// Every outcome label a request can have.
const OUTCOMES: [&str; 15] = [
    "ok",
    "method_not_found",
    "invalid_params",
    "failed",
    "circuit_open",
    "timeout",
    "rate_limited",
    "unavailable",
    "overloaded",
    "internal",
    "parse_error",
    "invalid_request",
    "unauthorized",
    "forbidden",
    "too_large",
];

/// The endpoints counted.
const ENDPOINTS: [&str; 4] = ["rpc", "ws", "metrics", "health"];

/// The gateway's metric handles.
#[derive(Clone, Debug)]
pub(crate) struct GatewayMetrics {
    requests: HashMap<(&'static str, &'static str), Counter>,
    rpc_duration: Histogram,
    ws_connections: Gauge,
    auth_failures: Family<[(&'static str, &'static str); 1], Counter>,
    refused: Family<[(&'static str, &'static str); 1], Counter>,
    ws_closed: Family<[(&'static str, &'static str); 1], Counter>,
}

impl GatewayMetrics {
    /// Registers the families in `node`'s registry.
    pub(crate) fn register(node: &Node) -> Self {
        let requests_family = Family::<Labels, Counter>::default();
        let durations =
            Family::<[(&'static str, &'static str); 1], Histogram>::new_with_constructor(
                // 50 µs to about 13 s.
                || Histogram::new(exponential_buckets(0.000_05, 4.0, 10)),
            );
        let ws_connections = Gauge::default();
        let auth_failures = Family::default();
        let refused = Family::default();
        let ws_closed = Family::default();
        let mut requests = HashMap::new();
        for endpoint in ENDPOINTS {
            for outcome in OUTCOMES {
                let counter = requests_family
                    .get_or_create(&[("endpoint", endpoint), ("outcome", outcome)])
                    .clone();
                requests.insert((endpoint, outcome), counter);
            }
        }
        let rpc_duration = durations.get_or_create(&[("endpoint", "rpc")]).clone();
        node.metrics().with_registry(|registry| {
            registry.register(
                "plexus_gateway_requests",
                "Requests through the gateway, by endpoint and outcome",
                requests_family,
            );
            registry.register(
                "plexus_gateway_request_duration_seconds",
                "Time to answer one HTTP request, from its headers to its response",
                durations,
            );
            registry.register(
                "plexus_gateway_ws_connections",
                "WebSocket connections open now",
                ws_connections.clone(),
            );
            registry.register(
                "plexus_gateway_auth_failures",
                "Requests refused by auth, by reason",
                auth_failures.clone(),
            );
            registry.register(
                "plexus_gateway_connections_refused",
                "Connections refused or limited to the ops endpoints, by reason",
                refused.clone(),
            );
            registry.register(
                "plexus_gateway_ws_closed",
                "WebSockets the gateway closed for a bound, by reason",
                ws_closed.clone(),
            );
        });
        Self {
            requests,
            rpc_duration,
            ws_connections,
            auth_failures,
            refused,
            ws_closed,
        }
    }

    /// Counts one request of `endpoint` with `outcome`.
    pub(crate) fn request(&self, endpoint: &'static str, outcome: &'static str) {
        if let Some(counter) = self.requests.get(&(endpoint, outcome)) {
            counter.inc();
        }
    }

    /// Records how long one `/rpc` request took.
    pub(crate) fn rpc_duration(&self, elapsed: Duration) {
        self.rpc_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a refused request.
    pub(crate) fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// The WebSocket connections gauge.
    /// Counts a connection refused, or served the ops endpoints only.
    pub(crate) fn connection_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    /// Counts a WebSocket closed for a bound.
    pub(crate) fn ws_closed(&self, reason: &'static str) {
        self.ws_closed.get_or_create(&[("reason", reason)]).inc();
    }

    pub(crate) fn ws_connections(&self) -> &Gauge {
        &self.ws_connections
    }
}
