//! Graceful shutdown: stop accepting, drain within a deadline, report the rest.
//!
//! 1. The publish gate closes: every new publish fails with
//!    [`crate::BusError::ShuttingDown`], so its caller knows it was not accepted.
//! 2. Subscribers keep receiving until every queue is empty and no accepted publish
//!    is still in flight, or the deadline passes.
//! 3. Every queue closes: publishers still waiting for room give up with an error,
//!    receivers get `None` once their queue is empty.
//! 4. Whatever is still queued is taken out and returned in the report, envelope and
//!    all: an accepted event is either delivered or listed, never silently lost.

use std::sync::Arc;
use std::time::Duration;

use plexus_core::Envelope;
use tokio::time::Instant;

use crate::{Bus, BusError, SubscriptionId};

/// How often the drain looks at the queues while it waits.
const DRAIN_POLL: Duration = Duration::from_millis(1);

/// An accepted event that was never delivered.
#[derive(Clone, Debug)]
pub struct Undelivered {
    /// The subscription it was queued for.
    pub subscription: SubscriptionId,
    /// That subscription's name, if it had one.
    pub name: Option<String>,
    /// That subscription's pattern.
    pub pattern: String,
    /// The event itself, for the caller to keep or retry elsewhere.
    pub envelope: Arc<Envelope>,
}

/// What shutdown did.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    /// Every queue emptied before the deadline.
    pub drained: bool,
    /// How long shutdown took.
    pub elapsed: Duration,
    /// Events accepted but not delivered, highest priority first per subscription.
    pub undelivered: Vec<Undelivered>,
    /// Requests that were still waiting for replies; their callers got
    /// [`BusError::ShuttingDown`].
    pub requests_failed: usize,
}

impl Bus {
    /// Shuts the bus down, giving subscribers up to `drain` to empty their queues.
    ///
    /// Calling it again returns a report of what is left (normally nothing).
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        let started = Instant::now();
        let deadline = started + drain;
        self.inner.gate.close();

        let drained = loop {
            let empty = self
                .inner
                .table()
                .routes()
                .iter()
                .all(|route| route.queue.is_empty());
            if empty && self.inner.gate.is_quiet() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - now)).await;
        };

        let routes = self.inner.table().routes().to_vec();
        for route in &routes {
            route.queue.close();
        }
        // Publishes still inside the gate can only fail now; let them leave so that
        // nothing is queued behind the final count.
        while !self.inner.gate.is_quiet() {
            tokio::task::yield_now().await;
        }

        let mut undelivered = Vec::new();
        for route in &routes {
            for envelope in route.queue.take_all() {
                undelivered.push(Undelivered {
                    subscription: route.id,
                    name: route.name.as_deref().map(str::to_owned),
                    pattern: route.pattern.as_str().to_owned(),
                    envelope,
                });
            }
        }

        let pending = std::mem::take(&mut *self.inner.pending.lock());
        let requests_failed = pending.len();
        for (_, waiter) in pending {
            let _ = waiter.send(Err(BusError::ShuttingDown));
        }

        ShutdownReport {
            drained: drained && undelivered.is_empty(),
            elapsed: started.elapsed(),
            undelivered,
            requests_failed,
        }
    }

    /// Whether the bus still accepts publishes.
    pub fn is_accepting(&self) -> bool {
        self.inner.gate.is_open()
    }
}
