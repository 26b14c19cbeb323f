//! [`Bridge`]: this node's bus joined to other nodes' through a [`Wire`], Redis
//! pub/sub ([`crate::redis`]) or NATS ([`crate::nats`]). What crosses, and how,
//! is the same on both:
//!
//! - **Out.** One bus subscription per shared pattern (`[pubsub] topics`) takes
//!   this node's events and sends each, as the envelope's JSON
//!   ([`Envelope::to_json`]), on the wire's channel for its topic, in batches of up
//!   to `batch` (one round trip each). An event on a topic several patterns match
//!   goes out once, through the first. The subscription's lanes hold `queue` events
//!   each and drop the oldest past it (counted): a slow or absent server never
//!   blocks a publisher on the bus.
//! - **In.** The wire delivers other nodes' events on the channels the patterns
//!   cover (a superset is fine: the bus's own matching keeps exactly what the
//!   pattern means) to this node's bus, where local and WebSocket subscribers get
//!   them like any other event.
//! - **No echo.** Every event sent carries two headers: `plexus-origin` (this
//!   bridge's random id) and `plexus-seq` (`pattern:number`, counting up per
//!   pattern). A received event from this bridge is skipped; an event carrying
//!   `plexus-origin` came from the wire and is never sent back.
//! - **Gaps.** Neither Redis pub/sub nor NATS core replays: what is published while
//!   a node is away is lost to it. The numbers tell how many events from each
//!   publisher were missed, counted in `plexus_pubsub_gap_messages_total`, logged,
//!   and shown by `pubsub.status`. A sender's send that fails is counted by the
//!   sender (`dropped{reason="publish_failed"}`) and, as a gap, by receivers.
//!
//! Anyone who can publish on the server can put events on the shared topics of
//! every node: the server is trusted like the node's own database.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use plexus_bus::{Bus, BusError, HeaderFilter, Overflow, SubscribeOptions, Subscription};
use plexus_core::{Envelope, Topic, TopicPattern};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::config::PubSubConfig;
use crate::metrics::{Dropped, PubSubMetrics};
use crate::nats::NatsWire;
use crate::redis::RedisWire;

/// The header naming the bridge an event came through.
pub const ORIGIN_HEADER: &str = "plexus-origin";
/// The header numbering a bridge's events per pattern (`pattern:number`).
pub const SEQ_HEADER: &str = "plexus-seq";

/// How events travel between nodes: the backend's half of a [`Bridge`].
#[derive(Debug)]
pub(crate) enum Wire {
    /// Redis/Valkey pub/sub.
    Redis(RedisWire),
    /// NATS core subjects.
    Nats(NatsWire),
}

impl Wire {
    /// The channel (Redis) or subject (NATS) events on `topic` travel on.
    fn channel(&self, topic: &str) -> String {
        match self {
            Self::Redis(wire) => wire.channel(topic),
            Self::Nats(wire) => wire.channel(topic),
        }
    }

    /// Sends each `(channel, payload)` in one round trip.
    async fn send(&self, batch: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        match self {
            Self::Redis(wire) => wire.send(batch).await,
            Self::Nats(wire) => wire.send(batch).await,
        }
    }

    /// Delivers what arrives on the channels covering `patterns` to `inbox`, and
    /// tells it when the subscription is live, until the task is aborted.
    fn listen(&self, patterns: &[TopicPattern], inbox: Inbox) -> JoinHandle<()> {
        match self {
            Self::Redis(wire) => wire.listen(patterns, inbox),
            Self::Nats(wire) => wire.listen(patterns, inbox),
        }
    }
}

/// The bridge between one bus and other nodes'. Dropping it stops it.
#[derive(Debug)]
pub struct Bridge {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    wire: Wire,
    config: PubSubConfig,
    patterns: Vec<TopicPattern>,
    origin: String,
    metrics: PubSubMetrics,
    live: AtomicBool,
    /// How many times the subscription went live.
    subscribed: AtomicU64,
    last_gap: Mutex<Option<Gap>>,
}

/// The last gap seen: events a publisher sent that this node never received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Gap {
    /// The publishing bridge (`plexus-origin`).
    pub origin: String,
    /// How many of its events were missed.
    pub missed: u64,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl Bridge {
    /// A bridge over `wire` held to `config` (already validated); it does
    /// nothing until [`Bridge::start`].
    pub(crate) fn new(wire: Wire, config: &PubSubConfig, metrics: PubSubMetrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                wire,
                patterns: config.patterns(),
                config: config.clone(),
                origin: uuid::Uuid::new_v4().simple().to_string(),
                metrics,
                live: AtomicBool::new(false),
                subscribed: AtomicU64::new(0),
                last_gap: Mutex::new(None),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// A bridge through Redis/Valkey pub/sub on `redis`, held to `config`
    /// (already validated); it does nothing until [`Bridge::start`].
    pub fn redis(
        redis: plexus_redis::Redis,
        config: &PubSubConfig,
        metrics: PubSubMetrics,
    ) -> Self {
        Self::new(Wire::Redis(RedisWire::new(redis)), config, metrics)
    }

    /// A bridge through NATS subjects on `nats`, under `config.subject_prefix`.
    pub fn nats(
        nats: crate::NatsConnection,
        config: &PubSubConfig,
        metrics: PubSubMetrics,
    ) -> Self {
        Self::new(
            Wire::Nats(NatsWire::new(nats, &config.subject_prefix)),
            config,
            metrics,
        )
    }

    /// Starts bridging `bus`: its events on the shared topics go out, and other
    /// nodes' come to it. Fails only if the bus refuses the subscriptions
    /// (shutting down, or `queue` beyond its `max_capacity`).
    pub fn start(&self, bus: &Bus) -> Result<(), BusError> {
        let mut tasks = Vec::with_capacity(self.shared.patterns.len() + 1);
        for (index, pattern) in self.shared.patterns.iter().enumerate() {
            let subscription = bus.subscribe_pattern(
                pattern.clone(),
                SubscribeOptions::new()
                    .capacity(self.shared.config.queue)
                    .overflow(Overflow::DropOldest)
                    .filter(HeaderFilter::Absent(ORIGIN_HEADER.to_owned()))
                    .name(format!("pubsub-bridge:{}", pattern.as_str())),
            )?;
            tasks.push(tokio::spawn(send(self.shared.clone(), index, subscription)));
        }
        tasks.push(self.shared.wire.listen(
            &self.shared.patterns,
            Inbox(Arc::new(Receiver {
                shared: self.shared.clone(),
                bus: bus.clone(),
                seen: Mutex::new(Seen::default()),
            })),
        ));
        self.tasks.lock().extend(tasks);
        Ok(())
    }

    /// Whether the subscription to the server is live.
    pub fn live(&self) -> bool {
        self.shared.live.load(Ordering::Acquire)
    }

    /// This bridge's id, the `plexus-origin` of what it sends.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The last gap seen, if any.
    pub fn last_gap(&self) -> Option<Gap> {
        self.shared.last_gap.lock().clone()
    }

    /// The channel (Redis: `{key_prefix}bus:{topic}`) or subject (NATS:
    /// `{subject_prefix}.{topic}`) events on `topic` travel on.
    pub fn channel_for(&self, topic: &str) -> String {
        self.shared.wire.channel(topic)
    }

    /// Its counters.
    pub fn metrics(&self) -> &PubSubMetrics {
        &self.shared.metrics
    }
}

impl Shared {
    /// The index of the first shared pattern matching `topic`.
    fn first_match(&self, topic: &Topic) -> Option<usize> {
        self.patterns.iter().position(|p| p.matches(topic))
    }
}

/// Sends this node's events on the pattern at `index` over the wire until the
/// bus closes the subscription.
async fn send(shared: Arc<Shared>, index: usize, mut subscription: Subscription) {
    let mut seq = 0u64;
    let mut overflowed = 0u64;
    while let Some(first) = subscription.recv().await {
        let mut batch = vec![first];
        while batch.len() < shared.config.batch {
            match subscription.try_recv() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        let dropped = subscription.stats().dropped;
        shared
            .metrics
            .drop_many(Dropped::Overflow, dropped.saturating_sub(overflowed));
        overflowed = dropped;

        let mut out_batch = Vec::with_capacity(batch.len());
        for envelope in batch {
            // Events from the wire never reach this subscription (its header filter);
            // one that several patterns match goes out through the first.
            if shared.first_match(envelope.topic()) != Some(index) {
                continue;
            }
            let mut out = (*envelope).clone();
            out.headers_mut()
                .insert(ORIGIN_HEADER, shared.origin.as_str());
            out.headers_mut()
                .insert(SEQ_HEADER, format!("{index}:{}", seq + 1));
            match out.to_json() {
                Ok(json) if json.len() <= shared.config.max_message_bytes => {
                    seq += 1;
                    out_batch.push((shared.wire.channel(out.topic().as_str()), json));
                }
                Ok(_) => shared.metrics.drop_one(Dropped::TooLarge),
                Err(error) => {
                    tracing::warn!(%error, topic = %out.topic(), "an event that cannot be encoded stays local");
                    shared.metrics.drop_one(Dropped::Malformed);
                }
            }
        }
        if out_batch.is_empty() {
            continue;
        }
        let count = out_batch.len() as u64;
        match shared.wire.send(out_batch).await {
            Ok(()) => shared.metrics.published(count),
            Err(error) => {
                tracing::warn!(%error, events = count, "events not sent to the other nodes");
                shared.metrics.drop_many(Dropped::PublishFailed, count);
            }
        }
    }
}

/// The last number seen from each publisher stream, bounded.
#[derive(Debug, Default)]
struct Seen {
    last: HashMap<String, (u64, u64)>,
    clock: u64,
}

impl Seen {
    /// Records `seq` from `stream`: how many numbers were skipped since the last
    /// one, or `None` when it was seen already (an event matching two shared
    /// patterns comes once per pattern).
    fn record(&mut self, stream: &str, seq: u64, max: usize) -> Option<u64> {
        self.clock += 1;
        let clock = self.clock;
        if let Some((last, touched)) = self.last.get_mut(stream) {
            *touched = clock;
            if seq <= *last {
                return None;
            }
            let missed = seq - *last - 1;
            *last = seq;
            return Some(missed);
        }
        if self.last.len() >= max {
            let oldest = self
                .last
                .iter()
                .min_by_key(|(_, (_, touched))| *touched)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(stream.to_owned(), (seq, clock));
        Some(0)
    }
}

/// Delivers other nodes' events to the bus.
struct Receiver {
    shared: Arc<Shared>,
    bus: Bus,
    seen: Mutex<Seen>,
}

impl Receiver {
    /// The envelope in `payload` if it is one of another bridge's events on a
    /// shared topic sent on its own channel, with its stream and number.
    fn accept(
        &self,
        channel: &str,
        payload: &[u8],
    ) -> Result<Option<(Envelope, String, u64)>, Dropped> {
        if payload.len() > self.shared.config.max_message_bytes {
            return Err(Dropped::TooLarge);
        }
        let envelope = Envelope::from_json(payload).map_err(|_| Dropped::Malformed)?;
        let origin = envelope
            .headers()
            .get(ORIGIN_HEADER)
            .ok_or(Dropped::Malformed)?;
        if origin == self.shared.origin {
            return Ok(None);
        }
        let (pattern, seq) = envelope
            .headers()
            .get(SEQ_HEADER)
            .and_then(|s| s.split_once(':'))
            .and_then(|(p, n)| Some((p, n.parse::<u64>().ok()?)))
            .ok_or(Dropped::Malformed)?;
        let topic = envelope.topic();
        let on_its_channel = self.shared.wire.channel(topic.as_str()) == channel;
        if !on_its_channel || self.shared.first_match(topic).is_none() {
            return Err(Dropped::Malformed);
        }
        let stream = format!("{origin}/{pattern}");
        Ok(Some((envelope, stream, seq)))
    }
}

/// Where a [`Wire`] hands what it receives: the bridge's receiving half.
#[derive(Clone)]
pub(crate) struct Inbox(Arc<Receiver>);

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    /// The subscription is confirmed (`true`, the first time included) or lost.
    pub(crate) fn live(&self, live: bool) {
        self.0.live(live);
    }

    /// A message arrived on `channel`.
    pub(crate) async fn message(&self, channel: &str, payload: &[u8]) {
        self.0.message(channel, payload).await;
    }
}

impl Receiver {
    fn live(&self, live: bool) {
        let again = live && self.shared.subscribed.fetch_add(1, Ordering::AcqRel) > 0;
        self.shared.live.store(live, Ordering::Release);
        self.shared.metrics.live(live, again);
        if again {
            tracing::warn!(
                "pub/sub bridge subscribed again; events published meanwhile are not replayed, and are counted as a gap when their publishers' next events arrive"
            );
        }
    }

    async fn message(&self, channel: &str, payload: &[u8]) {
        let (envelope, stream, seq) = match self.accept(channel, payload) {
            Ok(Some(accepted)) => accepted,
            Ok(None) => return,
            Err(why) => {
                tracing::debug!(
                    channel,
                    reason = <&str>::from(why),
                    "a message on a bridged channel ignored"
                );
                self.shared.metrics.drop_one(why);
                return;
            }
        };
        let seen = self
            .seen
            .lock()
            .record(&stream, seq, self.shared.config.max_origins);
        let Some(missed) = seen else {
            return;
        };
        if missed > 0 {
            tracing::warn!(publisher = %stream, missed, "pub/sub gap: events from a publisher were not received");
            self.shared.metrics.gap(missed);
            *self.shared.last_gap.lock() = Some(Gap {
                origin: stream,
                missed,
            });
        }
        match self.bus.publish(envelope).await {
            Ok(_) => self.shared.metrics.received(),
            Err(error) => {
                tracing::debug!(%error, "the bus refused an event from another node");
                self.shared.metrics.drop_one(Dropped::BusRefused);
            }
        }
    }
}
