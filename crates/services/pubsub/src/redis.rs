//! The Redis backend: a bridge between this node's bus and Redis pub/sub.
//!
//! - **Out.** One bus subscription per shared pattern (`[pubsub] topics`) takes
//!   this node's events and publishes each, as the envelope's JSON
//!   ([`Envelope::to_json`]), on the channel `{key_prefix}bus:{topic}`, in
//!   pipelined batches of up to `batch`. An event on a topic several patterns match
//!   goes out once, through the first. The subscription's lanes hold `queue` events
//!   each and drop the oldest past it (counted): a slow or absent Redis never blocks
//!   a publisher on the bus.
//! - **In.** One `PSUBSCRIBE` per pattern (`a.*` and `a.>` both become the glob
//!   `{prefix}bus:a.*`, then the bus's own matching keeps exactly what the pattern
//!   means) delivers other nodes' events to this node's bus, where local and
//!   WebSocket subscribers get them like any other event.
//! - **No echo.** Every event sent carries two headers: `plexus-origin` (this
//!   bridge's random id) and `plexus-seq` (`pattern:number`, counting up per
//!   pattern). A received event from this bridge is skipped; an event carrying
//!   `plexus-origin` came from Redis and is never sent back.
//! - **Gaps.** Redis pub/sub does not replay: what is published while a node is
//!   unsubscribed is lost to it. The subscription comes back by itself
//!   ([`plexus_redis::subscribe_forever`]); the numbers tell how many events from
//!   each publisher were missed, counted in `plexus_pubsub_gap_messages_total`,
//!   logged, and shown by `pubsub.status`. A sender's publish that fails is counted
//!   by the sender (`dropped{reason="publish_failed"}`) and, as a gap, by receivers.
//!
//! Anyone who can publish on the Redis server can put events on the shared topics
//! of every node: Redis is trusted like the node's own database.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use plexus_bus::{Bus, BusError, HeaderFilter, Overflow, SubscribeOptions, Subscription};
use plexus_core::{Envelope, Topic, TopicPattern};
use plexus_redis::{Channels, Listener, Redis, subscribe_forever};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::config::PubSubConfig;
use crate::metrics::{Dropped, PubSubMetrics};

/// The header naming the bridge an event came through.
pub const ORIGIN_HEADER: &str = "plexus-origin";
/// The header numbering a bridge's events per pattern (`pattern:number`).
pub const SEQ_HEADER: &str = "plexus-seq";

/// The bridge between one bus and Redis. Dropping it stops it.
#[derive(Debug)]
pub struct RedisBridge {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    redis: Redis,
    config: PubSubConfig,
    patterns: Vec<TopicPattern>,
    origin: String,
    channel_prefix: String,
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

impl Drop for RedisBridge {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl RedisBridge {
    /// A bridge over `redis` held to `config` (already validated); it does
    /// nothing until [`RedisBridge::start`].
    pub fn new(redis: Redis, config: &PubSubConfig, metrics: PubSubMetrics) -> Self {
        let channel_prefix = redis.key("bus:");
        Self {
            shared: Arc::new(Shared {
                redis,
                patterns: config.patterns(),
                config: config.clone(),
                origin: uuid::Uuid::new_v4().simple().to_string(),
                channel_prefix,
                metrics,
                live: AtomicBool::new(false),
                subscribed: AtomicU64::new(0),
                last_gap: Mutex::new(None),
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts bridging `bus`: its events on the shared topics go to Redis, and
    /// other nodes' come to it. Fails only if the bus refuses the subscriptions
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
        let globs = self
            .shared
            .patterns
            .iter()
            .map(|p| self.shared.glob(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tasks.push(subscribe_forever(
            self.shared.redis.clone(),
            Channels::patterns(globs),
            Receiver {
                shared: self.shared.clone(),
                bus: bus.clone(),
                seen: Mutex::new(Seen::default()),
            },
        ));
        self.tasks.lock().extend(tasks);
        Ok(())
    }

    /// Whether the subscription to Redis is live.
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

    /// The Redis channel events on `topic` travel on (`{key_prefix}bus:{topic}`).
    pub fn channel_for(&self, topic: &str) -> String {
        format!("{}{topic}", self.shared.channel_prefix)
    }

    /// Its counters.
    pub fn metrics(&self) -> &PubSubMetrics {
        &self.shared.metrics
    }
}

impl Shared {
    fn channel(&self, topic: &Topic) -> String {
        let mut channel = String::with_capacity(self.channel_prefix.len() + topic.as_str().len());
        channel.push_str(&self.channel_prefix);
        channel.push_str(topic.as_str());
        channel
    }

    /// The Redis glob covering `pattern` (a superset: `*` crosses dots there).
    fn glob(&self, pattern: &TopicPattern) -> String {
        let tokens: Vec<&str> = pattern
            .as_str()
            .split('.')
            .map(|t| if t == ">" { "*" } else { t })
            .collect();
        format!("{}{}", self.channel_prefix, tokens.join("."))
    }

    /// The index of the first shared pattern matching `topic`.
    fn first_match(&self, topic: &Topic) -> Option<usize> {
        self.patterns.iter().position(|p| p.matches(topic))
    }
}

/// Sends this node's events on the pattern at `index` to Redis until the bus
/// closes the subscription.
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

        let mut pipe = redis::pipe();
        let mut count = 0u64;
        for envelope in batch {
            // Events from Redis never reach this subscription (its header filter);
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
                    count += 1;
                    pipe.cmd("PUBLISH")
                        .arg(shared.channel(out.topic()))
                        .arg(json)
                        .ignore();
                }
                Ok(_) => shared.metrics.drop_one(Dropped::TooLarge),
                Err(error) => {
                    tracing::warn!(%error, topic = %out.topic(), "an event that cannot be encoded stays local");
                    shared.metrics.drop_one(Dropped::Malformed);
                }
            }
        }
        if count == 0 {
            continue;
        }
        let sent = shared
            .redis
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await;
        match sent {
            Ok(()) => shared.metrics.published(count),
            Err(error) => {
                tracing::warn!(%error, events = count, "events not sent to redis");
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
        let on_its_channel = channel
            .strip_prefix(self.shared.channel_prefix.as_str())
            .is_some_and(|t| t == topic.as_str());
        if !on_its_channel || self.shared.first_match(topic).is_none() {
            return Err(Dropped::Malformed);
        }
        let stream = format!("{origin}/{pattern}");
        Ok(Some((envelope, stream, seq)))
    }
}

impl Listener for Receiver {
    fn live(&self, live: bool) {
        let again = live && self.shared.subscribed.fetch_add(1, Ordering::AcqRel) > 0;
        self.shared.live.store(live, Ordering::Release);
        self.shared.metrics.live(live, again);
        if again {
            tracing::warn!(
                "pub/sub bridge subscribed to redis again; events published meanwhile are not replayed, and are counted as a gap when their publishers' next events arrive"
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
                tracing::debug!(%error, "the bus refused an event from redis");
                self.shared.metrics.drop_one(Dropped::BusRefused);
            }
        }
    }
}
