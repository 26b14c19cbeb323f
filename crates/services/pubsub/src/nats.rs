//! The NATS backend's wire: events on the subjects `{subject_prefix}.{topic}`,
//! received through one subscription per shared pattern. NATS subjects are
//! dot-separated tokens with `*` (one token) and `>` (the rest) as wildcards, as
//! bus topics are, so a pattern's subject covers exactly what it means on the bus.
//!
//! The client reconnects and subscribes again by itself; the wire turns its
//! connection events into the bridge's live state. NATS core does not replay what
//! was published while a node was away: the bridge counts that as a gap from the
//! publishers' numbers. For events that must not be lost, use a durable topic.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use futures::StreamExt;
use plexus_core::TopicPattern;
use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, check_fn};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bridge::Inbox;

/// A connection to NATS with its live state, reconnecting by itself.
#[derive(Clone, Debug)]
pub struct NatsConnection {
    client: Client,
    connected: watch::Receiver<bool>,
}

impl NatsConnection {
    /// Connects to `url` (`nats://host:port`); when the server is not there yet it
    /// goes on trying in the background, so a node starts without it and reports
    /// it through [`NatsConnection::connected`].
    pub async fn connect(url: &str, name: &str) -> Result<Self, async_nats::ConnectError> {
        let (tell, connected) = watch::channel(false);
        let tell = Arc::new(tell);
        let client = ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let tell = tell.clone();
                async move {
                    match event {
                        Event::Connected => {
                            tell.send_replace(true);
                        }
                        Event::Disconnected | Event::Closed => {
                            tell.send_replace(false);
                        }
                        _ => {}
                    }
                }
            })
            .connect(url)
            .await?;
        Ok(Self { client, connected })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the connection is up now.
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }
}

/// The component's name in `node.health` and `/health`.
pub(crate) const COMPONENT: &str = "nats";

/// The health component of a NATS connection: healthy while it is up. The client
/// reconnects by itself, so there is no heal action to take.
pub(crate) fn nats_component(nats: NatsConnection) -> ComponentSpec {
    ComponentSpec::new(
        COMPONENT,
        ComponentKind::Dependency,
        check_fn(move || {
            let nats = nats.clone();
            async move {
                if nats.connected() {
                    Ok(plexus_core::HealthReport::healthy())
                } else {
                    Err(CheckError::new(
                        "not connected to NATS; the client is reconnecting (is nats-server running?)",
                    ))
                }
            }
        }),
    )
}

/// NATS subjects as a bridge's wire.
#[derive(Debug)]
pub(crate) struct NatsWire {
    nats: NatsConnection,
    prefix: String,
}

impl NatsWire {
    /// The wire on `nats` under `subject_prefix` (`plexus.bus`).
    pub(crate) fn new(nats: NatsConnection, subject_prefix: &str) -> Self {
        Self {
            nats,
            prefix: format!("{subject_prefix}."),
        }
    }

    pub(crate) fn channel(&self, topic: &str) -> String {
        let mut subject = String::with_capacity(self.prefix.len() + topic.len());
        subject.push_str(&self.prefix);
        subject.push_str(topic);
        subject
    }

    pub(crate) async fn send(&self, batch: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let client = self.nats.client();
        for (subject, payload) in batch {
            client
                .publish(subject, Bytes::from(payload))
                .await
                .map_err(|e| e.to_string())?;
        }
        // The round trip that tells the batch reached the server.
        client.flush().await.map_err(|e| e.to_string())
    }

    pub(crate) fn listen(&self, patterns: &[TopicPattern], inbox: Inbox) -> JoinHandle<()> {
        let subjects: Vec<String> = patterns.iter().map(|p| self.channel(p.as_str())).collect();
        let nats = self.nats.clone();
        tokio::spawn(async move {
            let mut streams = Vec::with_capacity(subjects.len());
            for subject in &subjects {
                match nats.client().subscribe(subject.clone()).await {
                    Ok(subscriber) => streams.push(subscriber),
                    Err(error) => {
                        tracing::error!(%error, subject, "the pub/sub bridge could not subscribe to NATS");
                        return;
                    }
                }
            }
            let mut messages = futures::stream::select_all(streams);
            let mut connected = nats.connected.clone();
            // Live once the server has seen the subscriptions (a flush is a round
            // trip after them); the client subscribes again after a reconnect.
            let mut live = nats.client().flush().await.is_ok() && nats.connected();
            inbox.live(live);
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => inbox.message(message.subject.as_str(), &message.payload).await,
                        None => break,
                    },
                    changed = connected.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let now = *connected.borrow_and_update();
                        if now != live {
                            live = now;
                            inbox.live(now);
                        }
                    }
                }
            }
            inbox.live(false);
        })
    }
}
