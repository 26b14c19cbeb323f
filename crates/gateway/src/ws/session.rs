//! One WebSocket connection: its reader loop, its writer, and what it holds
//! (subscriptions, registered instances, calls in flight).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use plexus_bus::{Overflow, SubscribeOptions};
use plexus_core::{
    Envelope, Headers, InstanceId, Member, Payload, Priority, ServiceStatus, TopicPattern,
};
use plexus_jsonrpc::{self as jsonrpc, Request, RpcError, codes};
use plexus_node::own;
use plexus_registry::RegistryError;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Owned;
use super::inbound::{Inbound, classify};
use super::remote::{Endpoint, Link, RemoteService};
use crate::auth::{Caller, Need};
use crate::dispatch;
use crate::methods::{self, RESERVED_SERVICE};
use crate::server::Shared;

/// The reason a dropped connection's instances are marked Unhealthy with.
pub(crate) const CONNECTION_LOST: &str = "connection lost";

/// What one connection holds.
pub(super) struct Session {
    shared: Arc<Shared>,
    caller: Caller,
    link: Arc<Link>,
    subscriptions: Mutex<HashMap<String, JoinHandle<()>>>,
    next_subscription: std::sync::atomic::AtomicU64,
    instances: Mutex<Vec<(InstanceId, Arc<Member>)>>,
    in_flight: Arc<Semaphore>,
}

/// Serves one upgraded connection until it closes or the gateway shuts down.
pub(super) async fn run(shared: Arc<Shared>, socket: WebSocket, caller: Caller) {
    let conn = shared.hub.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    shared.metrics.ws_connections().inc();
    let (sink, mut stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Message>(shared.config.ws_send_queue);
    let (close_tx, close_rx) = oneshot::channel::<CloseFrame>();
    let writer = tokio::spawn(write(sink, out_rx, close_rx));
    let session = Arc::new(Session {
        link: Arc::new(Link::new(conn, out_tx, shared.config.max_pending_calls)),
        in_flight: Arc::new(Semaphore::new(shared.config.max_ws_in_flight)),
        shared: shared.clone(),
        caller,
        subscriptions: Mutex::new(HashMap::new()),
        next_subscription: std::sync::atomic::AtomicU64::new(1),
        instances: Mutex::new(Vec::new()),
    });
    let mut close = frame(close_code::NORMAL, "");
    let mut shutting_down = false;
    loop {
        let next = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => {
                shutting_down = true;
                close = frame(close_code::AWAY, "the node is shutting down");
                break;
            }
            next = stream.next() => next,
        };
        match next {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(text))) => session.on_message(text.as_bytes()).await,
            Some(Ok(Message::Binary(bytes))) => session.on_message(&bytes).await,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let text = e.to_string();
                close = if text.contains("buffer is full") {
                    // The client does not read what it asks for (pongs, answers).
                    shared.metrics.ws_closed("send_buffer_full");
                    frame(
                        close_code::POLICY,
                        &format!(
                            "more than {} bytes unread (max_ws_send_buffer_bytes)",
                            shared.config.max_ws_send_buffer_bytes
                        ),
                    )
                } else if text.to_ascii_lowercase().contains("control frame") {
                    // RFC 6455 §5.5: a control frame carries at most 125 bytes.
                    frame(
                        close_code::PROTOCOL,
                        "a control frame (ping, pong, close) carries at most 125 bytes",
                    )
                } else if text.contains("too long") || text.contains("too big") {
                    frame(
                        close_code::SIZE,
                        &format!(
                            "message larger than {} bytes (max_ws_message_bytes)",
                            shared.config.max_ws_message_bytes
                        ),
                    )
                } else {
                    frame(close_code::PROTOCOL, "protocol error")
                };
                tracing::debug!(conn, error = %text, "websocket read failed");
                break;
            }
        }
    }
    session.end(shutting_down).await;
    let _ = close_tx.send(close);
    let abort = writer.abort_handle();
    if tokio::time::timeout(shared.config.shutdown_timeout(), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    shared.metrics.ws_connections().dec();
}

fn frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Drains the send queue into the socket; on `close`, flushes what is queued and
/// sends the close frame.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<CloseFrame>,
) {
    loop {
        tokio::select! {
            biased;
            frame = &mut close => {
                while let Ok(message) = queue.try_recv() {
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
                let _ = sink.send(Message::Close(frame.ok())).await;
                let _ = sink.close().await;
                return;
            }
            message = queue.recv() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

impl Session {
    fn count(&self, outcome: &'static str) {
        self.shared.metrics.request("ws", outcome);
    }

    async fn send(&self, bytes: Vec<u8>) {
        // Not UTF-8 cannot happen: serde_json writes UTF-8.
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = self.link.sender().send(Message::Text(text.into())).await;
        }
    }

    /// Handles one message from the peer.
    async fn on_message(self: &Arc<Self>, bytes: &[u8]) {
        let (payload, busy_id) = match classify(bytes, self.shared.config.max_batch) {
            Inbound::Response { call, response } => {
                if !call.is_some_and(|call| self.link.complete(call, response.body)) {
                    tracing::debug!(conn = self.link.conn, "a response nobody waits for");
                }
                return;
            }
            Inbound::Inline(payload) => {
                let answer =
                    dispatch::execute(payload, |request| self.dispatch(request), |o| self.count(o))
                        .await;
                if let Some(bytes) = answer {
                    self.send(bytes).await;
                }
                return;
            }
            Inbound::Spawn { payload, busy_id } => (payload, busy_id),
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.count("overloaded");
            if let Some(id) = busy_id {
                let error = RpcError::new(
                    codes::OVERLOADED,
                    format!(
                        "{} calls are in flight on this connection (max_ws_in_flight)",
                        self.shared.config.max_ws_in_flight
                    ),
                    "overloaded",
                )
                .with_data(json!({"max_in_flight": self.shared.config.max_ws_in_flight}));
                self.send(jsonrpc::encode(&id, &Err(error))).await;
            }
            return;
        };
        let session = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = dispatch::execute(
                payload,
                |request| session.dispatch(request),
                |o| session.count(o),
            )
            .await;
            if let Some(bytes) = answer {
                session.send(bytes).await;
            }
        });
    }

    /// One request: a service call, or one of the gateway's own methods.
    async fn dispatch(self: &Arc<Self>, request: Request) -> Result<Value, RpcError> {
        let shared = &self.shared;
        let Some(own) = request
            .method
            .strip_prefix(RESERVED_SERVICE)
            .and_then(|r| r.strip_prefix('.'))
        else {
            return methods::call_service(shared, &self.caller, request).await;
        };
        match own {
            "publish" => {
                let source = self.instances.lock().first().map(|(_, m)| m.clone());
                methods::publish(shared, &self.caller, request, source).await
            }
            "subscribe" => self.subscribe(request.params),
            "unsubscribe" => self.unsubscribe(request.params),
            "register" => self.register(request.params).await,
            "deregister" => self.deregister(request.params).await,
            "heartbeat" => self.heartbeat(request.params).await,
            // The rest (`plexus.replay`) are the node's own service, through the call path.
            known if plexus_node::own::methods().iter().any(|m| m.name == known) => {
                methods::call_service(shared, &self.caller, request).await
            }
            _ => Err(methods::unknown_own(&request.method)),
        }
    }

    fn subscribe(self: &Arc<Self>, raw: Value) -> Result<Value, RpcError> {
        const METHOD: &str = "plexus.subscribe";
        let p: own::SubscribeParams = methods::params(METHOD, raw)?;
        let pattern = TopicPattern::new(&p.pattern)
            .map_err(|e| methods::invalid_params(METHOD, "/pattern", e.to_string()))?;
        methods::check(
            &self.shared,
            &self.caller,
            Need::Subscribe(pattern.as_str()),
        )?;
        let overflow = match p.overflow.as_deref().unwrap_or("drop_oldest") {
            "drop_oldest" => Overflow::DropOldest,
            "reject" => Overflow::Reject,
            "dead_letter" => Overflow::DeadLetter,
            "block" => Overflow::Block {
                timeout: Duration::from_millis(p.block_timeout_ms.unwrap_or(5_000)),
            },
            other => {
                return Err(methods::invalid_params(
                    METHOD,
                    "/overflow",
                    format!("{other:?} is not one of drop_oldest, reject, block, dead_letter"),
                ));
            }
        };
        let limit = self.shared.config.max_ws_subscriptions;
        let mut subscriptions = self.subscriptions.lock();
        if subscriptions.len() >= limit {
            return Err(RpcError::new(
                codes::OVERLOADED,
                format!("this connection holds {limit} subscriptions (max_ws_subscriptions)"),
                "overloaded",
            )
            .with_data(json!({"max_subscriptions": limit})));
        }
        let id = format!(
            "s-{}",
            self.next_subscription.fetch_add(1, Ordering::Relaxed)
        );
        let options = SubscribeOptions::new()
            .capacity(
                p.capacity
                    .unwrap_or(self.shared.config.ws_subscription_capacity),
            )
            .overflow(overflow)
            .name(format!("ws-{}-{id}", self.link.conn));
        let mut subscription = self
            .shared
            .node
            .bus()
            .subscribe_pattern(pattern, options)
            .map_err(methods::bus_error)?;
        let out = self.link.sender().clone();
        let name = id.clone();
        let forward = tokio::spawn(async move {
            while let Some(envelope) = subscription.recv().await {
                let Some(text) = notification(&name, &envelope) else {
                    continue;
                };
                if out.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        });
        subscriptions.insert(id.clone(), forward);
        Ok(json!({"subscription": id}))
    }

    fn unsubscribe(&self, raw: Value) -> Result<Value, RpcError> {
        const METHOD: &str = "plexus.unsubscribe";
        let p: own::UnsubscribeParams = methods::params(METHOD, raw)?;
        match self.subscriptions.lock().remove(&p.subscription) {
            Some(forward) => {
                forward.abort();
                Ok(json!({"unsubscribed": p.subscription}))
            }
            None => Err(methods::invalid_params(
                METHOD,
                "/subscription",
                format!("no subscription `{}` on this connection", p.subscription),
            )),
        }
    }

    async fn register(self: &Arc<Self>, raw: Value) -> Result<Value, RpcError> {
        const METHOD: &str = "plexus.register";
        let p: own::RegisterParams = methods::params(METHOD, raw)?;
        let descriptor = p.descriptor;
        let invalid = |field: &str, reason: String| methods::invalid_params(METHOD, field, reason);
        descriptor
            .validate()
            .map_err(|e| invalid(&format!("/descriptor/{}", e.field), e.reason))?;
        methods::check(
            &self.shared,
            &self.caller,
            Need::Register(descriptor.name.as_str()),
        )?;
        if descriptor.name.as_str() == RESERVED_SERVICE {
            return Err(invalid(
                "/descriptor/name",
                format!("`{RESERVED_SERVICE}` is reserved for the gateway's own methods"),
            ));
        }
        let instance = descriptor.instance.clone();
        let already_mine = self.instances.lock().iter().any(|(i, _)| *i == instance);
        let limit = self.shared.config.max_ws_registrations;
        if !already_mine && self.instances.lock().len() >= limit {
            return Err(invalid(
                "/descriptor/instance",
                format!("this connection registered {limit} instances (max_ws_registrations)"),
            ));
        }
        let node = &self.shared.node;
        let conn = self.link.conn;
        let (previous, endpoint) = {
            let mut owners = self.shared.hub.owners.lock();
            match owners.get_mut(&instance) {
                Some(owned) => {
                    let old_link = owned.endpoint.replace(self.link.clone());
                    let previous = std::mem::replace(&mut owned.conn, conn);
                    (Some((previous, old_link)), owned.endpoint.clone())
                }
                None if node.registry().get(&instance).is_some() => {
                    return Err(invalid(
                        "/descriptor/instance",
                        format!(
                            "instance `{instance}` is registered by someone else (an in-process service or another node)"
                        ),
                    ));
                }
                None => {
                    let endpoint = Arc::new(Endpoint::new(self.link.clone()));
                    let owned = Owned {
                        conn,
                        endpoint: endpoint.clone(),
                    };
                    owners.insert(instance.clone(), owned);
                    (None, endpoint)
                }
            }
        };
        let member = Arc::new(descriptor.member());
        let transport = Arc::new(RemoteService::new(endpoint.clone(), descriptor.clone()));
        if let Err(e) = node.attach(descriptor, transport).await {
            let mut owners = self.shared.hub.owners.lock();
            match previous {
                Some((conn, link)) => {
                    endpoint.replace(link);
                    if let Some(owned) = owners.get_mut(&instance) {
                        owned.conn = conn;
                    }
                }
                None => {
                    owners.remove(&instance);
                }
            }
            return Err(registry_error(METHOD, e));
        }
        let _ = node
            .registry()
            .set_status(
                &instance,
                ServiceStatus::Healthy,
                Some("registered over WebSocket".to_owned()),
            )
            .await;
        if !already_mine {
            self.instances.lock().push((instance.clone(), member));
        }
        tracing::info!(conn, %instance, "external service registered");
        let ttl = node.registry().config().heartbeat_ttl;
        Ok(json!({
            "instance": instance.as_str(),
            "heartbeat_ttl_ms": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// The instances a `deregister` or `heartbeat` names: the one given (which must be
    /// this connection's), or all of this connection's.
    fn targets(&self, method: &str, raw: Value) -> Result<Vec<InstanceId>, RpcError> {
        let p: own::InstanceParams = methods::params(method, raw)?;
        let mine: Vec<InstanceId> = self
            .instances
            .lock()
            .iter()
            .map(|(i, _)| i.clone())
            .collect();
        match p.instance {
            None => Ok(mine),
            Some(one) => {
                let one = InstanceId::new(one);
                if mine.contains(&one) {
                    Ok(vec![one])
                } else {
                    Err(methods::invalid_params(
                        method,
                        "/instance",
                        format!("`{one}` was not registered on this connection"),
                    ))
                }
            }
        }
    }

    async fn heartbeat(&self, raw: Value) -> Result<Value, RpcError> {
        let targets = self.targets("plexus.heartbeat", raw)?;
        let registry = self.shared.node.registry();
        let mut beat = Vec::new();
        for instance in targets {
            if self.owns(&instance) && registry.heartbeat(&instance).await.is_ok() {
                beat.push(instance.to_string());
            }
        }
        Ok(json!({"instances": beat}))
    }

    async fn deregister(&self, raw: Value) -> Result<Value, RpcError> {
        let targets = self.targets("plexus.deregister", raw)?;
        let mut gone = Vec::new();
        for instance in targets {
            self.instances.lock().retain(|(i, _)| *i != instance);
            if self.release(&instance) {
                let _ = self.shared.node.detach(&instance).await;
                gone.push(instance.to_string());
            }
        }
        Ok(json!({"deregistered": gone}))
    }

    /// Whether this connection still owns `instance`.
    fn owns(&self, instance: &InstanceId) -> bool {
        self.shared.hub.owners.lock().get(instance).map(|o| o.conn) == Some(self.link.conn)
    }

    /// Forgets `instance` if this connection still owns it; true when it did.
    fn release(&self, instance: &InstanceId) -> bool {
        let mut owners = self.shared.hub.owners.lock();
        if owners.get(instance).map(|o| o.conn) == Some(self.link.conn) {
            owners.remove(instance);
            true
        } else {
            false
        }
    }

    /// Ends the session: subscriptions stop, waiting calls fail as unavailable, and
    /// each instance still owned goes Unhealthy ("connection lost") and is detached
    /// after the grace period unless re-registered, or at once when the gateway is
    /// shutting down.
    async fn end(&self, shutting_down: bool) {
        for (_, forward) in self.subscriptions.lock().drain() {
            forward.abort();
        }
        self.link.close();
        let instances: Vec<InstanceId> = self.instances.lock().drain(..).map(|(i, _)| i).collect();
        let node = &self.shared.node;
        let grace = self.shared.config.detach_grace();
        for instance in instances {
            if !self.owns(&instance) {
                continue;
            }
            if shutting_down || grace.is_zero() {
                if self.release(&instance) {
                    let _ = node.detach(&instance).await;
                }
                continue;
            }
            let _ = node
                .registry()
                .set_status(
                    &instance,
                    ServiceStatus::Unhealthy,
                    Some(CONNECTION_LOST.to_owned()),
                )
                .await;
            tracing::info!(conn = self.link.conn, %instance, "external service connection lost");
            let shared = self.shared.clone();
            let conn = self.link.conn;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let still = {
                    let mut owners = shared.hub.owners.lock();
                    if owners.get(&instance).map(|o| o.conn) == Some(conn) {
                        owners.remove(&instance);
                        true
                    } else {
                        false
                    }
                };
                if still {
                    let _ = shared.node.detach(&instance).await;
                }
            });
        }
    }
}

fn registry_error(method: &str, e: RegistryError) -> RpcError {
    match e {
        RegistryError::InvalidDescriptor(d) => {
            methods::invalid_params(method, &format!("/descriptor/{}", d.field), d.reason)
        }
        RegistryError::DuplicateInstance { .. } => {
            methods::invalid_params(method, "/descriptor/instance", e.to_string())
        }
        other => RpcError::new(codes::UNAVAILABLE, other.to_string(), "unavailable"),
    }
}

#[derive(Serialize)]
struct EventParams<'a> {
    subscription: &'a str,
    topic: &'a str,
    id: String,
    correlation_id: String,
    causation_id: Option<String>,
    priority: Priority,
    timestamp_us: u64,
    source: Option<&'a Member>,
    headers: &'a Headers,
    payload: Box<RawValue>,
    payload_encoding: &'static str,
}

#[derive(Serialize)]
struct Notification<P> {
    jsonrpc: &'static str,
    method: &'static str,
    params: P,
}

/// The `plexus.event` notification for `envelope`, or `None` when its payload cannot
/// be encoded (logged).
fn notification(subscription: &str, envelope: &Envelope) -> Option<String> {
    use base64::Engine;
    let (payload, encoding) = match envelope.payload() {
        Payload::Empty => (RawValue::NULL.to_owned(), "none"),
        Payload::Bytes(bytes) => {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            (serde_json::value::to_raw_value(&text).ok()?, "base64")
        }
        other => match other
            .encode()
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .and_then(|t| RawValue::from_string(t).ok())
        {
            Some(raw) => (raw, "json"),
            None => {
                tracing::warn!(topic = %envelope.topic(), "an event payload could not be encoded for a WebSocket subscriber");
                return None;
            }
        },
    };
    let params = EventParams {
        subscription,
        topic: envelope.topic().as_str(),
        id: envelope.id().to_string(),
        correlation_id: envelope.correlation_id().to_string(),
        causation_id: envelope.causation_id().map(|c| c.to_string()),
        priority: envelope.priority(),
        timestamp_us: envelope.timestamp().as_micros(),
        source: envelope.source(),
        headers: envelope.headers(),
        payload,
        payload_encoding: encoding,
    };
    serde_json::to_string(&Notification {
        jsonrpc: "2.0",
        method: "plexus.event",
        params,
    })
    .ok()
}
