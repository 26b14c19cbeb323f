//! Event subscriptions over the gateway's WebSocket (`GET /ws`): one socket per
//! [`Subscription`], `plexus.subscribe` to open it, `plexus.event` notifications
//! after.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{SinkExt, Stream, StreamExt};
use plexus_core::{Headers, Member, Priority};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{Client, rpc_error};
use crate::error::ClientError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The id of the `plexus.subscribe` request on a subscription's socket.
const SUBSCRIBE_ID: u64 = 1;

/// One event delivered to a subscription: the params of the gateway's
/// `plexus.event` notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The subscription it was delivered to (`s-1`).
    pub subscription: String,
    /// Its topic.
    pub topic: String,
    /// Its id (a UUID v7).
    pub id: String,
    /// The correlation id it carries.
    pub correlation_id: String,
    /// The event that caused it, if any.
    #[serde(default)]
    pub causation_id: Option<String>,
    /// Its priority.
    pub priority: Priority,
    /// When it was published, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Who published it, when the publisher is a registered member.
    #[serde(default)]
    pub source: Option<Member>,
    /// Its headers.
    #[serde(default)]
    pub headers: Headers,
    /// Its payload: JSON as published, a base64 string for bytes, or null.
    #[serde(default)]
    pub payload: Value,
    /// How `payload` is encoded: `json`, `base64` or `none`.
    pub payload_encoding: String,
}

/// A live subscription: a [`Stream`] of its events. It ends after an error (the
/// socket broke, or the node closed it, as [`ClientError::Closed`]). Dropping it
/// closes the socket.
pub struct Subscription {
    id: String,
    pattern: String,
    events: BoxStream<'static, Result<Event, ClientError>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The node's id for it (`s-1`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl Stream for Subscription {
    type Item = Result<Event, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// What the stream holds between events.
struct Open {
    socket: Socket,
    url: String,
    early: VecDeque<Event>,
}

/// Connects, subscribes, and waits for the node's confirmation.
pub(crate) async fn open(client: &Client, pattern: &str) -> Result<Subscription, ClientError> {
    let config = client.config().clone();
    let mut url = client.endpoint("ws");
    // `endpoint` always gives an http URL, which has a ws twin.
    let _ = url.set_scheme("ws");
    let ws_url = url.to_string();
    let ws_error = |source: tungstenite::Error| ClientError::WebSocket {
        url: ws_url.clone(),
        source: Box::new(source),
    };
    let mut request = url.as_str().into_client_request().map_err(ws_error)?;
    if let Some(token) = &client.inner.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::InvalidArgument {
                argument: "token".to_owned(),
                reason: "must be printable ASCII".to_owned(),
            }
        })?;
        request.headers_mut().insert("authorization", value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_ws_message_bytes))
        .max_frame_size(Some(config.max_ws_message_bytes));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    let (mut socket, _) = match tokio::time::timeout(config.connect_timeout, connect).await {
        Err(_) => {
            return Err(ClientError::Timeout {
                url: client.url().to_owned(),
                after: config.connect_timeout,
            });
        }
        Ok(Err(e)) => return Err(connect_error(client, e, &ws_error)),
        Ok(Ok(connected)) => connected,
    };
    let subscribe = json!({
        "jsonrpc": "2.0",
        "id": SUBSCRIBE_ID,
        "method": "plexus.subscribe",
        "params": {"pattern": pattern},
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .map_err(ws_error)?;

    let mut early = VecDeque::new();
    let confirmed = async {
        loop {
            match next_message(&mut socket, &ws_url).await? {
                Incoming::Event(event) => {
                    if early.len() >= config.max_early_events {
                        return Err(ClientError::Protocol {
                            reason: format!(
                                "more than {} events came before the subscription was confirmed (max_early_events)",
                                config.max_early_events
                            ),
                        });
                    }
                    early.push_back(event);
                }
                Incoming::Response { id, body } if id == json!(SUBSCRIBE_ID) => {
                    if let Some(error) = body.get("error") {
                        return Err(rpc_error(client.url(), error));
                    }
                    return body
                        .pointer("/result/subscription")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| ClientError::Protocol {
                            reason: format!("plexus.subscribe answered {body}"),
                        });
                }
                Incoming::Response { .. } | Incoming::Other => {}
            }
        }
    };
    let id = match tokio::time::timeout(config.timeout, confirmed).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ClientError::Timeout {
                url: client.url().to_owned(),
                after: config.timeout,
            });
        }
    };
    let state = Open {
        socket,
        url: ws_url,
        early,
    };
    let events = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        if let Some(event) = state.early.pop_front() {
            return Some((Ok(event), Some(state)));
        }
        loop {
            match next_message(&mut state.socket, &state.url).await {
                Ok(Incoming::Event(event)) => return Some((Ok(event), Some(state))),
                Ok(Incoming::Response { .. } | Incoming::Other) => {}
                // One error, then the stream ends.
                Err(error) => return Some((Err(error), None)),
            }
        }
    })
    .boxed();
    Ok(Subscription {
        id,
        pattern: pattern.to_owned(),
        events,
    })
}

/// One message read from the socket, sorted.
enum Incoming {
    /// A `plexus.event` notification.
    Event(Event),
    /// A response to one of our requests.
    Response { id: Value, body: Value },
    /// Anything else (ping, pong, other notifications).
    Other,
}

async fn next_message(socket: &mut Socket, url: &str) -> Result<Incoming, ClientError> {
    let message = match socket.next().await {
        None => {
            return Err(ClientError::Closed {
                reason: "the connection ended".to_owned(),
            });
        }
        Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
            return Err(ClientError::Closed {
                reason: "the connection ended".to_owned(),
            });
        }
        Some(Err(source)) => {
            return Err(ClientError::WebSocket {
                url: url.to_owned(),
                source: Box::new(source),
            });
        }
        Some(Ok(message)) => message,
    };
    let text: &[u8] = match &message {
        Message::Text(text) => text.as_bytes(),
        Message::Binary(bytes) => bytes,
        Message::Close(frame) => {
            return Err(ClientError::Closed {
                reason: match frame {
                    Some(frame) if frame.reason.is_empty() => format!("close code {}", frame.code),
                    Some(frame) => format!("{} (close code {})", frame.reason, frame.code),
                    None => "closed without a reason".to_owned(),
                },
            });
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(Incoming::Other),
    };
    let body: Value = serde_json::from_slice(text).map_err(|e| ClientError::Protocol {
        reason: format!("a WebSocket message is not JSON: {e}"),
    })?;
    if body.get("method").and_then(Value::as_str) == Some("plexus.event") {
        let params = body.get("params").cloned().unwrap_or(Value::Null);
        let event = serde_json::from_value(params).map_err(|e| ClientError::Protocol {
            reason: format!("a plexus.event notification is malformed: {e}"),
        })?;
        return Ok(Incoming::Event(event));
    }
    match body.get("id").cloned() {
        Some(id) if body.get("method").is_none() => Ok(Incoming::Response { id, body }),
        _ => Ok(Incoming::Other),
    }
}

fn connect_error(
    client: &Client,
    error: tungstenite::Error,
    ws_error: &dyn Fn(tungstenite::Error) -> ClientError,
) -> ClientError {
    match error {
        tungstenite::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            ClientError::NotRunning {
                url: client.url().to_owned(),
            }
        }
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let parsed: Option<Value> = serde_json::from_str(&body).ok();
            if let Some(error) = parsed.as_ref().and_then(|b| b.get("error")) {
                return rpc_error(client.url(), error);
            }
            if status == 401 {
                return ClientError::Unauthorized {
                    url: client.url().to_owned(),
                    message: body,
                };
            }
            ClientError::Status {
                url: client.url().to_owned(),
                status,
                body,
            }
        }
        other => ws_error(other),
    }
}
