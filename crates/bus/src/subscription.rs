//! A subscription: the receiving end of one subscriber's queue, and its counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use plexus_core::{Envelope, Timestamp};

use crate::bus::BusInner;
use crate::router::Route;

/// Identifies one subscription for the life of its bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub(crate) u64);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A snapshot of one subscription's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Events handed to the subscriber.
    pub delivered: u64,
    /// Events pushed out by newer ones ([`crate::Overflow::DropOldest`]).
    pub dropped: u64,
    /// Events sent to the dead-letter topic instead (overflow or handler failure).
    pub dead_lettered: u64,
    /// Events refused ([`crate::Overflow::Reject`], or a blocked publisher's timeout).
    pub rejected: u64,
    /// Events that expired in the queue and were not delivered.
    pub expired: u64,
    /// Events whose handler returned an error or panicked.
    pub failed: u64,
    /// Events waiting now (the lag), over all lanes.
    pub queued: usize,
    /// Events waiting now per lane: `[low, normal, high, critical]`.
    pub queued_by_lane: [usize; 4],
}

impl Route {
    pub(crate) fn stats(&self) -> SubscriptionStats {
        let c = &self.queue.counters;
        let depths = self.queue.depths();
        SubscriptionStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            queued: depths.iter().sum(),
            queued_by_lane: depths,
        }
    }
}

/// The receiving end of a subscription. Dropping it unsubscribes; events still
/// queued then are counted in [`crate::BusStats::discarded`].
pub struct Subscription {
    pub(crate) route: Arc<Route>,
    pub(crate) bus: Arc<BusInner>,
}

impl Subscription {
    /// This subscription's id.
    pub fn id(&self) -> SubscriptionId {
        self.route.id
    }

    /// The pattern it listens on.
    pub fn pattern(&self) -> &str {
        self.route.pattern.as_str()
    }

    /// The next event, highest priority first, waiting for one. `None` once the bus
    /// has shut down (or this subscription was closed) and nothing is left.
    pub async fn recv(&mut self) -> Option<Arc<Envelope>> {
        loop {
            let envelope = self.route.queue.pop_waiting().await?;
            if let Some(envelope) = self.accept(envelope) {
                return Some(envelope);
            }
        }
    }

    /// The next event if one is queued now.
    pub fn try_recv(&mut self) -> Option<Arc<Envelope>> {
        loop {
            let envelope = self.route.queue.pop()?;
            if let Some(envelope) = self.accept(envelope) {
                return Some(envelope);
            }
        }
    }

    /// Counts a popped event as delivered, or as expired and gone.
    fn accept(&self, envelope: Arc<Envelope>) -> Option<Arc<Envelope>> {
        let counters = &self.route.queue.counters;
        if envelope.expires_at().is_some() && envelope.is_expired_at(Timestamp::now()) {
            counters.expired.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Only this receiver writes `delivered`: a plain store is enough.
        let delivered = counters.delivered.load(Ordering::Relaxed);
        counters.delivered.store(delivered + 1, Ordering::Relaxed);
        Some(envelope)
    }

    /// A snapshot of its counters.
    pub fn stats(&self) -> SubscriptionStats {
        self.route.stats()
    }

    pub(crate) fn count_failure(&self) {
        self.route
            .queue
            .counters
            .failed
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.route.id)
            .field("pattern", &self.route.pattern.as_str())
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.unsubscribe(&self.route);
    }
}
