//! Durable topics across nodes: a JetStream stream per set of durable topics.
//!
//! - **Publishing** goes through the store's outbox: the event is written in the
//!   same transaction as the data change that caused it, and a relay
//!   ([`plexus_store::Outbox::spawn_relay_to`]) hands it to the [`DurableStream`],
//!   a [`RelaySink`] that publishes it on `{subject_prefix}.{topic}` with
//!   `Nats-Msg-Id` set to the envelope's id and marks it delivered only once
//!   JetStream acknowledged it. A relay that retries (its mark was lost, it
//!   crashed after the publish) sends the same id, and JetStream's dedupe window
//!   (`duplicate_window`) drops the copy.
//! - **Consuming**: [`DurableStream::consume`] starts a durable pull consumer
//!   (named, so it keeps its place across restarts) that puts each event on the
//!   local bus and acknowledges it only once it was handled: every subscriber it
//!   was queued for is done with it ([`plexus_core::handled`]: an event handler
//!   returned, a `/ws` subscriber's connection took it). Up to
//!   `max_unacknowledged` events are being handled at once; each is acknowledged
//!   as it finishes. An event the bus refused is negatively acknowledged and
//!   comes again after `retry_delay`; one not handled within `ack_wait` (a stuck
//!   handler, a node that died) comes again after it. Delivery is at least once,
//!   in order until a refusal or a crash (an event that comes again may come after
//!   later ones); a subscriber that must act once dedupes by envelope id. With
//!   [`ConsumerConfig::require_subscriber`], an event no subscription on the node
//!   matched is not acknowledged either: it comes again after `idle_delay`, so
//!   subscribers that arrive after the node started (an external service over
//!   `/ws`, after a restart) still get it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use plexus_bus::{Bus, BusError};
use plexus_core::{Envelope, Timestamp, TopicPattern};
use plexus_store::{Delivery, RelaySink};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ClusterError;

/// Where a replay of the stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayStart {
    /// At this stream sequence (inclusive; sequences start at 1).
    Sequence(u64),
    /// At the first event stored at or after this time.
    Time(Timestamp),
}

/// A durable stream's settings.
#[derive(Clone, Debug)]
pub struct DurableConfig {
    /// The JetStream stream's name (letters, digits, `-`, `_`).
    pub stream: String,
    /// Events on topic `t` are kept under the subject `{subject_prefix}.t`.
    pub subject_prefix: String,
    /// The durable topics (bus patterns) the stream keeps.
    pub topics: Vec<String>,
    /// How long JetStream remembers an id to drop a copy (default 2 minutes).
    pub duplicate_window: Duration,
    /// How long events are kept (`None`: until `max_bytes`).
    pub max_age: Option<Duration>,
    /// The most bytes kept; past it the oldest go (default 1 GiB).
    pub max_bytes: i64,
    /// The largest event accepted, as JSON (default 1 MiB, NATS's own default
    /// limit). A larger one is given up by the relay and kept as `failed`.
    pub max_message_bytes: usize,
}

impl Default for DurableConfig {
    fn default() -> Self {
        Self {
            stream: "plexus_durable".to_owned(),
            subject_prefix: "plexus.durable".to_owned(),
            topics: Vec::new(),
            duplicate_window: Duration::from_secs(120),
            max_age: None,
            max_bytes: 1 << 30,
            max_message_bytes: 1 << 20,
        }
    }
}

/// A durable consumer's settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Its durable name: a node that comes back under the same name resumes where
    /// it acknowledged. Nodes that share a name share the work.
    pub name: String,
    /// How long JetStream waits for an acknowledgement before sending again.
    pub ack_wait: Duration,
    /// The wait before an event the bus refused comes again.
    pub retry_delay: Duration,
    /// Whether an event that no subscription on the node matched waits (is sent
    /// again after `idle_delay`) instead of being acknowledged.
    pub require_subscriber: bool,
    /// The wait before an event no subscription took comes again.
    pub idle_delay: Duration,
    /// The most events given to the bus and not yet acknowledged (JetStream's
    /// `max_ack_pending` for this consumer): past it, JetStream sends no more
    /// until some are handled.
    pub max_unacknowledged: usize,
}

impl ConsumerConfig {
    /// A consumer named `name` with default waits (30 s, 100 ms, 1 s) that
    /// acknowledges events no subscription matched, with at most 1,024 events
    /// being handled at once.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ack_wait: Duration::from_secs(30),
            retry_delay: Duration::from_millis(100),
            require_subscriber: false,
            idle_delay: Duration::from_secs(1),
            max_unacknowledged: 1_024,
        }
    }
}

/// What a durable consumer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Events handled on this node and acknowledged to JetStream.
    pub acknowledged: u64,
    /// Events whose subscribers were still not done with them after `ack_wait`:
    /// not acknowledged, so they come again.
    pub unhandled: u64,
    /// Events on the bus now, waiting for their subscribers to be done.
    pub handling: u64,
    /// Events that came more than once (a refusal, a crash, an ack lost).
    pub redelivered: u64,
    /// Events the bus refused, sent back to come again.
    pub refused: u64,
    /// Messages that were not envelopes, terminated (never sent again).
    pub malformed: u64,
    /// Events no subscription on the node matched, sent back to come again
    /// (only with [`ConsumerConfig::require_subscriber`]).
    pub unmatched: u64,
    /// Events in the stream still to reach this consumer, as JetStream reported
    /// with the last one delivered (its lag).
    pub pending: u64,
}

/// A JetStream stream holding durable topics.
#[derive(Clone, Debug)]
pub struct DurableStream {
    jetstream: jetstream::Context,
    name: String,
    prefix: String,
    max_message_bytes: usize,
}

impl DurableStream {
    /// Creates the stream (or updates its settings) on `jetstream`.
    pub async fn open(
        jetstream: &jetstream::Context,
        config: &DurableConfig,
    ) -> Result<Self, ClusterError> {
        let mut subjects = Vec::with_capacity(config.topics.len());
        for (i, topic) in config.topics.iter().enumerate() {
            let pattern = TopicPattern::new(topic).map_err(|e| ClusterError::InvalidConfig {
                field: "cluster.durable_topics",
                reason: format!("[{i}] `{topic}` {e}"),
            })?;
            subjects.push(format!("{}.{}", config.subject_prefix, pattern.as_str()));
        }
        if subjects.is_empty() {
            return Err(ClusterError::InvalidConfig {
                field: "cluster.durable_topics",
                reason: "is empty; name the bus patterns to keep, such as [\"orders.>\"]"
                    .to_owned(),
            });
        }
        let settings = stream::Config {
            name: config.stream.clone(),
            description: Some("Plexus durable topics".to_owned()),
            subjects,
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            max_age: config.max_age.unwrap_or_default(),
            max_bytes: config.max_bytes,
            ..Default::default()
        };
        jetstream
            .create_or_update_stream(settings)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: format!("the stream `{}`", config.stream),
                message: e.to_string(),
            })?;
        Ok(Self {
            jetstream: jetstream.clone(),
            name: config.stream.clone(),
            prefix: format!("{}.", config.subject_prefix),
            max_message_bytes: config.max_message_bytes,
        })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject events on `topic` are kept under.
    pub fn subject(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// How many events the stream holds now.
    pub async fn stored(&self) -> Result<u64, ClusterError> {
        let mut stream = self
            .jetstream
            .get_stream(&self.name)
            .await
            .map_err(|e| self.failed(e))?;
        let info = stream.info().await.map_err(|e| self.failed(e))?;
        Ok(info.state.messages)
    }

    /// Starts a durable consumer that puts the stream's events on `bus`.
    pub async fn consume(
        &self,
        bus: Bus,
        config: ConsumerConfig,
    ) -> Result<DurableConsumer, ClusterError> {
        let stream = self
            .jetstream
            .get_stream(&self.name)
            .await
            .map_err(|e| self.failed(e))?;
        let consumer = stream
            .get_or_create_consumer(
                &config.name,
                pull::Config {
                    durable_name: Some(config.name.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_ack_pending: i64::try_from(config.max_unacknowledged)
                        .unwrap_or(i64::MAX)
                        .max(1),
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.failed(e))?;
        let messages = consumer.messages().await.map_err(|e| self.failed(e))?;
        let (stats_tx, stats) = watch::channel(ConsumerStats::default());
        let task = tokio::spawn(deliver(messages, bus, config, stats_tx));
        Ok(DurableConsumer {
            stats,
            task: Arc::new(task),
        })
    }

    /// At most `limit` events of the stream on topics matching `pattern`, from the
    /// stream sequence `from` (inclusive) or the first stored at or after a time,
    /// as `plexus.replay` answers: `{events: [{offset, delivered, failed,
    /// envelope}], next_offset}` (offsets are stream sequences; `next_offset` is
    /// set when `limit` events came, and the reader goes on from it).
    pub async fn replay(
        &self,
        pattern: &TopicPattern,
        from: ReplayStart,
        limit: usize,
    ) -> Result<serde_json::Value, ClusterError> {
        let stream = self
            .jetstream
            .get_stream(&self.name)
            .await
            .map_err(|e| self.failed(e))?;
        let deliver_policy = match from {
            ReplayStart::Sequence(n) => DeliverPolicy::ByStartSequence {
                start_sequence: n.max(1),
            },
            ReplayStart::Time(t) => DeliverPolicy::ByStartTime {
                start_time: async_nats::datetime::from_nanos(i128::from(t.as_micros()) * 1_000)
                    .map_err(|e| self.failed(e))?,
            },
        };
        // An ephemeral consumer, read once: no acknowledgements, gone when idle.
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy,
                ack_policy: AckPolicy::None,
                filter_subject: self.subject(pattern.as_str()),
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| self.failed(e))?;
        let mut batch = consumer
            .fetch()
            .max_messages(limit)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(|e| self.failed(e))?;
        let mut events = Vec::new();
        let mut last = None;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| self.failed(e))?;
            let sequence = message.info().map(|i| i.stream_sequence).ok();
            last = sequence.or(last);
            let envelope = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .unwrap_or(serde_json::Value::Null);
            events.push(serde_json::json!({
                "offset": sequence,
                "delivered": true,
                "failed": false,
                "envelope": envelope,
            }));
            if events.len() >= limit {
                break;
            }
        }
        let next_offset = (events.len() >= limit)
            .then(|| last.map(|n| n + 1))
            .flatten();
        Ok(serde_json::json!({"events": events, "next_offset": next_offset}))
    }

    fn failed(&self, error: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream {
            what: format!("the stream `{}`", self.name),
            message: error.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl RelaySink for DurableStream {
    async fn deliver(&self, envelope: Envelope, _require_subscriber: bool) -> Delivery {
        if envelope.is_expired_at(Timestamp::now()) {
            return Delivery::Acknowledged { expired: true };
        }
        let json = match envelope.to_json() {
            Ok(json) if json.len() <= self.max_message_bytes => json,
            Ok(json) => {
                return Delivery::Never(format!(
                    "{} bytes is over the stream's {} byte limit",
                    json.len(),
                    self.max_message_bytes
                ));
            }
            Err(e) => return Delivery::Never(e.to_string()),
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.id().to_string().as_str());
        let subject = self.subject(envelope.topic().as_str());
        let sent = match self
            .jetstream
            .publish_with_headers(subject, headers, Bytes::from(json))
            .await
        {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            // A duplicate was kept already: acknowledged all the same.
            Ok(_) => Delivery::Acknowledged { expired: false },
            Err(reason) => Delivery::Refused(reason),
        }
    }
}

/// A running durable consumer. Dropping it stops it (unacknowledged events come
/// again, to this name, after `ack_wait`).
#[derive(Debug, Clone)]
pub struct DurableConsumer {
    stats: watch::Receiver<ConsumerStats>,
    task: Arc<JoinHandle<()>>,
}

impl DurableConsumer {
    /// What it did so far.
    pub fn stats(&self) -> ConsumerStats {
        *self.stats.borrow()
    }

    /// Its stats as they change.
    pub fn watch(&self) -> watch::Receiver<ConsumerStats> {
        self.stats.clone()
    }

    /// Stops it now.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for DurableConsumer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// An event given to the bus, waiting to be handled; `None` once `ack_wait`
/// passed first (JetStream sends it again).
type Handling = std::pin::Pin<Box<dyn Future<Output = Option<jetstream::Message>> + Send>>;

async fn deliver(
    mut messages: pull::Stream,
    bus: Bus,
    config: ConsumerConfig,
    stats_tx: watch::Sender<ConsumerStats>,
) {
    let mut stats = ConsumerStats::default();
    let mut handling = FuturesUnordered::<Handling>::new();
    loop {
        let message = tokio::select! {
            biased;
            Some(done) = handling.next(), if !handling.is_empty() => {
                stats.handling = handling.len() as u64;
                match done {
                    Some(message) => {
                        stats.acknowledged += 1;
                        acknowledge(&message, AckKind::Ack).await;
                    }
                    None => stats.unhandled += 1,
                }
                stats_tx.send_replace(stats);
                continue;
            }
            next = messages.next() => match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    // The client reconnects and the pull goes on; say so and wait.
                    tracing::warn!(%error, "durable consumer could not pull; trying again");
                    continue;
                }
                None => break,
            },
        };
        if let Ok(info) = message.info() {
            if info.delivered > 1 {
                stats.redelivered += 1;
            }
            stats.pending = info.pending;
        }
        let ack = match Envelope::from_json(&message.payload) {
            Err(error) => {
                tracing::warn!(%error, subject = %message.subject, "a durable message that is not an envelope is dropped");
                stats.malformed += 1;
                AckKind::Term
            }
            Ok(mut envelope) => {
                let handled = envelope.handled();
                match bus.publish(envelope).await {
                    Ok(receipt)
                        if config.require_subscriber
                            && receipt.matched == 0
                            && !receipt.expired =>
                    {
                        stats.unmatched += 1;
                        AckKind::Nak(Some(config.idle_delay))
                    }
                    Ok(_) => {
                        let ack_wait = config.ack_wait;
                        handling.push(Box::pin(async move {
                            tokio::time::timeout(ack_wait, handled)
                                .await
                                .ok()
                                .map(|()| message)
                        }));
                        stats.handling = handling.len() as u64;
                        stats_tx.send_replace(stats);
                        continue;
                    }
                    Err(BusError::ShuttingDown) => return,
                    Err(error) => {
                        tracing::debug!(%error, "the bus refused a durable event; it comes again");
                        stats.refused += 1;
                        AckKind::Nak(Some(config.retry_delay))
                    }
                }
            }
        };
        acknowledge(&message, ack).await;
        stats_tx.send_replace(stats);
    }
    // The stream ended: acknowledge what is handled before the consumer stops.
    while let Some(done) = handling.next().await {
        if let Some(message) = done {
            stats.acknowledged += 1;
            acknowledge(&message, AckKind::Ack).await;
        } else {
            stats.unhandled += 1;
        }
        stats.handling = handling.len() as u64;
        stats_tx.send_replace(stats);
    }
}

async fn acknowledge(message: &jetstream::Message, ack: AckKind) {
    if let Err(error) = message.ack_with(ack).await {
        tracing::warn!(%error, "durable consumer could not acknowledge; the event comes again");
    }
}
