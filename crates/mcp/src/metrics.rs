//! The MCP front's metrics, registered in the node's registry.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `plexus_mcp_refused_total` | counter | reason (`per_peer`: the client address holds `max_sessions_per_peer` sessions; `full`: `max_sessions` are live; `client_info`: an `initialize` over `max_client_info_bytes`; `init_timeout`: a session closed for never sending `notifications/initialized`) |

use plexus_node::Node;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Why a session was refused or closed early.
const REASONS: [&str; 4] = ["per_peer", "full", "client_info", "init_timeout"];

/// The MCP front's metric handles.
#[derive(Clone, Debug, Default)]
pub(crate) struct McpMetrics {
    refused: Family<[(&'static str, &'static str); 1], Counter>,
}

impl McpMetrics {
    /// Registers the families in `node`'s registry, every reason at zero.
    pub(crate) fn register(node: &Node) -> Self {
        let metrics = Self::default();
        for reason in REASONS {
            let _ = metrics.refused.get_or_create(&[("reason", reason)]);
        }
        node.metrics().with_registry(|registry| {
            registry.register(
                "plexus_mcp_refused",
                "MCP sessions refused, or closed before they were initialized, by reason",
                metrics.refused.clone(),
            );
        });
        metrics
    }

    /// Counts one refusal for `reason` (one of the table's).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }
}
