//! `GET /ui/live`: the dashboard's live tail, a WebSocket carrying every call the node
//! makes (from the node's call tap) and every event on the bus, each with its
//! correlation id.
//!
//! A browser cannot put a token in a WebSocket's headers, so the socket
//! authenticates with its first message, `{"token": "…"}` (or an `Authorization`
//! header, for other clients); it needs the `ops` scope. Then the node sends text
//! frames, each a JSON array of items, batched (at most [`BATCH`] per frame):
//!
//! ```json
//! [{"kind":"call","method":"echo.say","caller":"ops","correlation_id":"…","at":…,"duration_us":42,"outcome":"ok"},
//!  {"kind":"event","topic":"orders.created","id":"…","correlation_id":"…","at":…,"source":"svc-1"},
//!  {"kind":"lost","calls":3,"events":0}]
//! ```
//!
//! The socket never holds the node up: calls come through a bounded broadcast
//! (`plexus_node::tap`), events through a bus subscription with drop-oldest overflow
//! (capacity [`EVENT_CAPACITY`]); what a slow page lost is reported as a `lost`
//! item.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plexus_bus::{Overflow, SubscribeOptions};
use plexus_core::{Envelope, TopicPattern};
use plexus_node::{CallEvent, TapRecv};
use serde_json::{Value, json};

use crate::auth::{Caller, Need};
use crate::server::Shared;

/// The most items in one frame.
pub(crate) const BATCH: usize = 512;
/// How many events the tail's bus subscription holds before it drops the oldest.
pub(crate) const EVENT_CAPACITY: usize = 65_536;
/// How long the page has to send its token.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest first message read.
const HELLO_MAX: usize = 4096;

/// `GET /ui/live`.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !crate::ws::origin_allowed(origin, &shared.config.allowed_origins) {
            return (
                StatusCode::FORBIDDEN,
                "origin not allowed (allowed_origins)",
            )
                .into_response();
        }
    }
    if !shared.accepting() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        )
            .into_response();
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let tracker = shared.hub.tracker.clone();
    upgrade
        .max_message_size(HELLO_MAX)
        .on_upgrade(move |socket| tracker.track_future(run(shared, socket, header)))
}

/// Who the first message (or the upgrade's header) says the peer is.
async fn hello(shared: &Shared, socket: &mut WebSocket, header: Option<Vec<u8>>) -> Option<Caller> {
    if !shared.auth.enabled() {
        return Some(shared.open.clone());
    }
    let bearer = match header {
        Some(h) => h,
        None => {
            let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await;
            let Ok(Some(Ok(Message::Text(text)))) = first else {
                return None;
            };
            let token = serde_json::from_str::<Value>(text.as_str())
                .ok()?
                .get("token")?
                .as_str()?
                .to_owned();
            format!("Bearer {token}").into_bytes()
        }
    };
    match shared.auth.authenticate(Some(&bearer)) {
        Ok(caller) => Some(caller),
        Err(failure) => {
            shared.metrics.auth_failure(failure.reason());
            None
        }
    }
}

async fn refuse(mut socket: WebSocket, reason: &'static str) {
    let frame = CloseFrame {
        code: 1008,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn call_item(c: &CallEvent) -> Value {
    json!({
        "kind": "call",
        "method": c.method,
        "caller": c.caller,
        "correlation_id": c.correlation_id,
        "at": c.at,
        "duration_us": c.duration_us,
        "outcome": c.outcome,
    })
}

fn event_item(e: &Envelope) -> Value {
    json!({
        "kind": "event",
        "topic": e.topic().as_str(),
        "id": e.id().to_string(),
        "correlation_id": e.correlation_id().to_string(),
        "at": e.timestamp(),
        "source": e.source().map(|s| s.instance.to_string()),
    })
}

async fn run(shared: Arc<Shared>, mut socket: WebSocket, header: Option<Vec<u8>>) {
    let Some(caller) = hello(&shared, &mut socket, header).await else {
        return refuse(socket, "unauthorized: send {\"token\": \"…\"} first").await;
    };
    if !caller.allows(Need::Ops) {
        shared.metrics.auth_failure("forbidden");
        return refuse(socket, "forbidden: the live tail needs the ops scope").await;
    }
    let conn = shared
        .hub
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tap = shared.node.tap_calls();
    let Ok(pattern) = TopicPattern::new(">") else {
        return;
    };
    let options = SubscribeOptions::new()
        .capacity(EVENT_CAPACITY)
        .overflow(Overflow::DropOldest)
        .name(format!("ui-live-{conn}"));
    let Ok(mut events) = shared.node.bus().subscribe_pattern(pattern, options) else {
        return refuse(socket, "the bus refused the tail's subscription").await;
    };
    if socket
        .send(Message::Text(
            json!([{"kind": "hello", "name": caller.name()}])
                .to_string()
                .into(),
        ))
        .await
        .is_err()
    {
        return;
    }
    let mut dropped_seen = 0;
    loop {
        let mut batch: Vec<Value> = Vec::new();
        let mut lost_calls = 0;
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            call = tap.recv() => match call {
                TapRecv::Call(c) => batch.push(call_item(&c)),
                TapRecv::Lagged(n) => lost_calls += n,
                TapRecv::Closed => break,
            },
            event = events.recv() => match event {
                Some(e) => batch.push(event_item(&e)),
                None => break,
            },
        }
        // Whatever else is ready goes in the same frame.
        while batch.len() < BATCH {
            match tap.try_recv() {
                Some(TapRecv::Call(c)) => batch.push(call_item(&c)),
                Some(TapRecv::Lagged(n)) => lost_calls += n,
                Some(TapRecv::Closed) | None => break,
            }
        }
        while batch.len() < BATCH {
            match events.try_recv() {
                Some(e) => batch.push(event_item(&e)),
                None => break,
            }
        }
        let dropped = events.stats().dropped;
        if lost_calls > 0 || dropped > dropped_seen {
            batch.push(
                json!({"kind": "lost", "calls": lost_calls, "events": dropped - dropped_seen}),
            );
            dropped_seen = dropped;
        }
        if batch.is_empty() {
            continue;
        }
        let text = Value::Array(batch).to_string();
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
