//! The bus: subscribe, publish, route, apply each subscriber's overflow policy, and
//! send what cannot be delivered to the dead-letter topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use plexus_core::{Envelope, Event, EventId, Target, Timestamp, Topic, TopicPattern};
use tokio::sync::oneshot;

use crate::config::{BusConfig, Overflow, SubscribeOptions};
use crate::gate::Gate;
use crate::queue::{Offer, Queue};
use crate::router::{Route, Table};
use crate::{BusError, RejectReason, Subscription, SubscriptionId, SubscriptionStats};

/// Header set on a dead letter: why it was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "plexus-dead-letter-reason";
/// Header set on a dead letter: the topic it was first published on.
pub const DEAD_LETTER_TOPIC: &str = "plexus-dead-letter-topic";
/// Header set on a dead letter: the subscription that could not take it, if any.
pub const DEAD_LETTER_SUBSCRIPTION: &str = "plexus-dead-letter-subscription";
/// Header set on a dead letter from a failed handler: the error it reported.
pub const DEAD_LETTER_ERROR: &str = "plexus-dead-letter-error";

/// What became of one published event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The event's id.
    pub id: EventId,
    /// How many subscriptions it was for (topic, target and filters).
    pub matched: usize,
    /// How many of them queued it.
    pub enqueued: usize,
    /// How many older events it pushed out of full lanes ([`Overflow::DropOldest`]).
    pub dropped_oldest: usize,
    /// How many subscriptions sent it to the dead-letter topic instead.
    pub dead_lettered: usize,
    /// It had already expired and went nowhere.
    pub expired: bool,
}

/// Bus-wide counters: what happened to events outside any one subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Publishes admitted (the bus was accepting); each then was delivered, queued,
    /// refused or counted in one of the other counters.
    pub published: u64,
    /// Events that matched no subscription.
    pub unmatched: u64,
    /// Events that had expired when published.
    pub expired: u64,
    /// Dead letters queued for a dead-letter subscriber.
    pub dead_lettered: u64,
    /// Dead letters nobody could take (no dead-letter subscriber, or it was full).
    pub dead_letter_lost: u64,
    /// Handler errors and panics.
    pub handler_failures: u64,
    /// Events left in a subscription's queue when it was dropped.
    pub discarded: u64,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Requests waiting for replies.
    pub pending_requests: usize,
}

#[derive(Default)]
pub(crate) struct BusCounters {
    unmatched: AtomicU64,
    expired: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letter_lost: AtomicU64,
    pub(crate) handler_failures: AtomicU64,
    discarded: AtomicU64,
}

pub(crate) type ReplySender = oneshot::Sender<Result<Arc<Envelope>, BusError>>;

pub(crate) struct BusInner {
    pub(crate) config: BusConfig,
    pub(crate) gate: Gate,
    table: ArcSwap<Table>,
    routes: Mutex<Vec<Arc<Route>>>,
    next_id: AtomicU64,
    pub(crate) counters: BusCounters,
    pub(crate) pending: Mutex<HashMap<EventId, ReplySender>>,
}

/// The in-process event bus. Cheap to clone: clones share one bus.
///
/// ```
/// # tokio_test_block_on(async {
/// use plexus_bus::{Bus, SubscribeOptions};
/// use plexus_core::{Envelope, Payload, Topic};
///
/// let bus = Bus::new();
/// let mut orders = bus.subscribe("orders.*", SubscribeOptions::new())?;
/// bus.publish(Envelope::new(Topic::new("orders.created")?, Payload::Empty)).await?;
/// let event = orders.recv().await.expect("one event");
/// assert_eq!(event.topic().as_str(), "orders.created");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) inner: Arc<BusInner>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("subscriptions", &self.inner.table.load().routes().len())
            .field("accepting", &self.inner.gate.is_open())
            .finish()
    }
}

/// Where one publish stands after offering the event to every subscriber at once.
struct Step {
    receipt: Receipt,
    waiting: Vec<(Arc<Route>, Duration)>,
    rejected: Option<(Arc<Route>, RejectReason)>,
}

impl Bus {
    /// A bus with the default [`BusConfig`].
    pub fn new() -> Self {
        Self::build(BusConfig::default())
    }

    /// A bus with `config`, checked first.
    pub fn with_config(config: BusConfig) -> Result<Self, BusError> {
        config.validate()?;
        Ok(Self::build(config))
    }

    fn build(config: BusConfig) -> Self {
        Self {
            inner: Arc::new(BusInner {
                config,
                gate: Gate::new(),
                table: ArcSwap::from_pointee(Table::default()),
                routes: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                counters: BusCounters::default(),
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// Subscribes to topics matching `pattern` (`a.b`, `a.*`, `a.>`).
    pub fn subscribe(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, BusError> {
        let pattern = TopicPattern::new(pattern).map_err(|source| BusError::InvalidPattern {
            pattern: pattern.to_owned(),
            source,
        })?;
        self.subscribe_pattern(pattern, options)
    }

    /// Subscribes to the topic of the typed event `E`.
    pub fn subscribe_event<E: Event>(
        &self,
        options: SubscribeOptions,
    ) -> Result<Subscription, BusError> {
        self.subscribe_pattern(TopicPattern::exact(&E::TOPIC), options)
    }

    /// Subscribes with an already compiled pattern.
    pub fn subscribe_pattern(
        &self,
        pattern: TopicPattern,
        options: SubscribeOptions,
    ) -> Result<Subscription, BusError> {
        let config = &self.inner.config;
        if !self.inner.gate.is_open() {
            return Err(BusError::ShuttingDown);
        }
        let capacity = options.capacity.unwrap_or(config.default_capacity);
        if capacity == 0 || capacity > config.max_capacity {
            return Err(BusError::InvalidOption {
                field: "capacity",
                reason: format!(
                    "is {capacity}; each lane must hold between 1 and {} events (BusConfig::max_capacity)",
                    config.max_capacity
                ),
            });
        }
        let overflow = options.overflow.unwrap_or(config.default_overflow);
        if overflow == Overflow::DeadLetter && config.dead_letter_topic.is_none() {
            return Err(BusError::DeadLetterNotConfigured);
        }
        let route = Arc::new(Route {
            id: SubscriptionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed)),
            name: options.name.map(Arc::from),
            pattern,
            member: options.member,
            filters: options.filters.into_boxed_slice(),
            overflow,
            queue: Arc::new(Queue::new(capacity)),
        });
        let mut routes = self.inner.routes.lock();
        routes.push(Arc::clone(&route));
        self.inner
            .table
            .store(Arc::new(Table::build(routes.clone())));
        drop(routes);
        Ok(Subscription {
            route,
            bus: Arc::clone(&self.inner),
        })
    }

    /// Publishes `envelope` to every subscription it is for, waiting where a
    /// subscriber's policy is [`Overflow::Block`] and its lane is full.
    ///
    /// Events from one publisher reach each subscriber in the order they were
    /// published, per priority lane.
    pub async fn publish(&self, envelope: Envelope) -> Result<Receipt, BusError> {
        // Take part in tokio's cooperative scheduling, as its own channels do: a
        // publisher that always finds room still yields now and then, so the
        // subscribers it wakes get to run instead of waiting behind it.
        tokio::task::consume_budget().await;
        let _pass = self.inner.gate.enter()?;
        self.inner.check_limits(&envelope)?;
        let envelope = Arc::new(envelope);
        let mut step = self.inner.offer_all(&envelope);
        for (route, timeout) in std::mem::take(&mut step.waiting) {
            match route
                .queue
                .push_waiting(Arc::clone(&envelope), timeout)
                .await
            {
                Ok(()) => step.receipt.enqueued += 1,
                Err(reason) => step.reject(route, reason),
            }
        }
        step.finish(envelope.topic())
    }

    /// Publishes a typed event as a new root envelope.
    pub async fn publish_event<E: Event>(&self, event: E) -> Result<Receipt, BusError> {
        self.publish(Envelope::event(event)).await
    }

    /// Publishes without ever waiting: a full lane whose policy is
    /// [`Overflow::Block`] refuses at once, as with [`Overflow::Reject`].
    pub fn try_publish(&self, envelope: Envelope) -> Result<Receipt, BusError> {
        let _pass = self.inner.gate.enter()?;
        self.inner.check_limits(&envelope)?;
        let envelope = Arc::new(envelope);
        let mut step = self.inner.offer_all(&envelope);
        for (route, _) in std::mem::take(&mut step.waiting) {
            step.reject(route, RejectReason::Full);
        }
        step.finish(envelope.topic())
    }

    /// Bus-wide counters.
    pub fn stats(&self) -> BusStats {
        let c = &self.inner.counters;
        BusStats {
            published: self.inner.gate.admitted(),
            unmatched: c.unmatched.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            dead_letter_lost: c.dead_letter_lost.load(Ordering::Relaxed),
            handler_failures: c.handler_failures.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
            subscriptions: self.inner.table.load().routes().len(),
            pending_requests: self.inner.pending.lock().len(),
        }
    }

    /// Every live subscription with its counters.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.inner
            .table
            .load()
            .routes()
            .iter()
            .map(|route| SubscriptionInfo {
                id: route.id,
                name: route.name.as_deref().map(str::to_owned),
                pattern: route.pattern.as_str().to_owned(),
                stats: route.stats(),
            })
            .collect()
    }
}

/// One live subscription, for listings.
#[derive(Clone, Debug)]
pub struct SubscriptionInfo {
    /// Its id.
    pub id: SubscriptionId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Its pattern.
    pub pattern: String,
    /// Its counters.
    pub stats: SubscriptionStats,
}

impl Step {
    fn reject(&mut self, route: Arc<Route>, reason: RejectReason) {
        route
            .queue
            .counters
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        self.rejected.get_or_insert((route, reason));
    }

    fn finish(self, topic: &Topic) -> Result<Receipt, BusError> {
        match self.rejected {
            None => Ok(self.receipt),
            Some((route, reason)) => Err(BusError::Rejected {
                subscription: route.id,
                pattern: route.pattern.as_str().to_owned(),
                topic: topic.clone(),
                reason,
                enqueued: self.receipt.enqueued,
            }),
        }
    }
}

impl BusInner {
    fn check_limits(&self, envelope: &Envelope) -> Result<(), BusError> {
        if let Some(size) = envelope.payload().encoded_len()
            && size > self.config.max_payload_bytes
        {
            return Err(BusError::PayloadTooLarge {
                topic: envelope.topic().clone(),
                size,
                limit: self.config.max_payload_bytes,
            });
        }
        let size = envelope.headers().byte_len();
        if size > self.config.max_header_bytes {
            return Err(BusError::HeadersTooLarge {
                topic: envelope.topic().clone(),
                size,
                limit: self.config.max_header_bytes,
            });
        }
        Ok(())
    }

    /// Offers the event to every subscription it is for, without waiting.
    fn offer_all(&self, envelope: &Arc<Envelope>) -> Step {
        let mut step = Step {
            receipt: Receipt {
                id: envelope.id(),
                matched: 0,
                enqueued: 0,
                dropped_oldest: 0,
                dead_lettered: 0,
                expired: false,
            },
            waiting: Vec::new(),
            rejected: None,
        };
        if envelope.expires_at().is_some() && envelope.is_expired_at(Timestamp::now()) {
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            step.receipt.expired = true;
            return step;
        }
        let table = self.table.load();
        table.for_each_match(envelope, |route| {
            step.receipt.matched += 1;
            let displace = route.overflow == Overflow::DropOldest;
            match route.queue.offer(Arc::clone(envelope), displace) {
                Offer::Queued => step.receipt.enqueued += 1,
                Offer::Displaced(_oldest) => {
                    step.receipt.enqueued += 1;
                    step.receipt.dropped_oldest += 1;
                    route.queue.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Full(_) => match route.overflow {
                    Overflow::Block { timeout } => step.waiting.push((Arc::clone(route), timeout)),
                    Overflow::DeadLetter => {
                        step.receipt.dead_lettered += 1;
                        route
                            .queue
                            .counters
                            .dead_lettered
                            .fetch_add(1, Ordering::Relaxed);
                        self.dead_letter(envelope, "subscriber_full", Some(route), None);
                    }
                    Overflow::Reject | Overflow::DropOldest => {
                        step.reject(Arc::clone(route), RejectReason::Full)
                    }
                },
            }
        });
        if step.receipt.matched == 0 {
            self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
            self.dead_letter(envelope, "no_subscribers", None, None);
        }
        step
    }

    /// Sends a copy of `envelope` to the dead-letter topic, if one is configured,
    /// without ever waiting. Returns whether a dead-letter subscriber took it.
    pub(crate) fn dead_letter(
        &self,
        envelope: &Envelope,
        reason: &str,
        from: Option<&Route>,
        error: Option<&str>,
    ) -> bool {
        let Some(topic) = &self.config.dead_letter_topic else {
            return false;
        };
        if envelope.topic() == topic {
            // A dead letter that cannot be delivered is not dead-lettered again.
            self.counters
                .dead_letter_lost
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut letter = envelope
            .clone()
            .with_topic(topic.clone())
            .with_target(Target::Broadcast)
            .with_header(DEAD_LETTER_REASON, reason)
            .with_header(DEAD_LETTER_TOPIC, envelope.topic().as_str());
        if let Some(route) = from {
            letter = letter.with_header(DEAD_LETTER_SUBSCRIPTION, route.id.to_string());
        }
        if let Some(error) = error {
            letter = letter.with_header(DEAD_LETTER_ERROR, error);
        }
        let letter = Arc::new(letter);
        let mut taken = false;
        self.table.load().for_each_match(&letter, |route| {
            let displace = route.overflow == Overflow::DropOldest;
            let counters = &route.queue.counters;
            match route.queue.offer(Arc::clone(&letter), displace) {
                Offer::Queued => taken = true,
                Offer::Displaced(_) => {
                    taken = true;
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Full(_) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let counter = if taken {
            &self.counters.dead_lettered
        } else {
            &self.counters.dead_letter_lost
        };
        counter.fetch_add(1, Ordering::Relaxed);
        taken
    }

    pub(crate) fn unsubscribe(&self, route: &Arc<Route>) {
        let mut routes = self.routes.lock();
        let before = routes.len();
        routes.retain(|r| r.id != route.id);
        if routes.len() != before {
            self.table.store(Arc::new(Table::build(routes.clone())));
        }
        drop(routes);
        route.queue.close();
        let left = route.queue.take_all().len() as u64;
        self.counters.discarded.fetch_add(left, Ordering::Relaxed);
    }

    pub(crate) fn table(&self) -> arc_swap::Guard<Arc<Table>> {
        self.table.load()
    }
}
