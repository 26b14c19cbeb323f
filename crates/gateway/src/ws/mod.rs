//! `GET /ws`: JSON-RPC 2.0 both ways on one WebSocket, for clients and for external
//! services. The protocol is described in the crate docs.
//!
//! One connection is two tasks: a reader that handles what arrives in order (the
//! gateway's `plexus.*` methods run inline so that a `register` is done before the
//! `heartbeat` that follows it; service calls are spawned, at most
//! `max_ws_in_flight` at once), and a writer that drains the connection's bounded send
//! queue (`ws_send_queue`). Event subscriptions forward from their bus subscription
//! into that queue; when it is full they wait, the subscription's lanes fill, and its
//! overflow policy decides (drop-oldest unless the client asks otherwise).

pub(crate) mod inbound;
mod remote;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use plexus_core::InstanceId;
use plexus_jsonrpc::RpcError;
use tokio_util::task::TaskTracker;

use crate::auth::Caller;
use crate::http::error_response;
use crate::server::Shared;

/// What the gateway knows across connections.
#[derive(Default)]
pub(crate) struct Hub {
    pub(crate) next_conn: AtomicU64,
    /// Which connection last registered each external instance, and the endpoint its
    /// transport calls through. An instance stays here through its grace period after
    /// its socket drops, so that a reconnect may take it over; an instance registered
    /// by anyone else is never taken.
    pub(crate) owners: Mutex<HashMap<InstanceId, Owned>>,
    /// The connections, so that shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
}

/// An external instance the gateway serves.
pub(crate) struct Owned {
    /// The connection that registered it last.
    pub(crate) conn: u64,
    /// Where its calls go.
    pub(crate) endpoint: Arc<remote::Endpoint>,
}

/// Whether a browser `Origin` may open a socket: a loopback origin, or one listed.
pub(crate) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `GET /ws`: upgrades to a WebSocket session.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin_allowed(origin, &shared.config.allowed_origins) {
            shared.metrics.request("ws", "forbidden");
            return error_response(
                StatusCode::FORBIDDEN,
                &RpcError::new(
                    plexus_jsonrpc::codes::FORBIDDEN,
                    format!(
                        "WebSocket connections from origin {origin:?} are not allowed (allowed_origins)"
                    ),
                    "forbidden",
                ),
            );
        }
    }
    if !shared.accepting() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        )
            .into_response();
    }
    let limit = shared.config.max_ws_message_bytes;
    let tracker = shared.hub.tracker.clone();
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .write_buffer_size(crate::config::WS_WRITE_BUFFER_BYTES)
        .max_write_buffer_size(shared.config.max_ws_send_buffer_bytes)
        .on_upgrade(move |socket| tracker.track_future(session::run(shared, socket, caller)))
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn only_loopback_or_listed_origins_pass() {
        let listed = vec!["https://app.example.com".to_owned()];
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8080",
            "https://app.example.com",
        ] {
            assert!(origin_allowed(ok, &listed), "{ok}");
        }
        for no in [
            "https://evil.example.com",
            "http://localhost.evil.com",
            "null",
            "http://10.0.0.1",
        ] {
            assert!(!origin_allowed(no, &listed), "{no}");
        }
    }
}
