//! The store's link to its database: a small breaker on the database dependency,
//! and the [`Connection`] state a listener watches.
//!
//! Every error that says the database cannot be reached (a connection reset, a
//! refusal or a black hole that lasts `connect_timeout_ms`: the pool retries a
//! refusal until then; a file gone) is a connection failure.
//! The first one opens the breaker: from then on a call fails at once with
//! [`StoreError::Unavailable`] without touching the pool, except one call at a time
//! (the probe) once the probe delay has passed; the delay starts at
//! [`FIRST_PROBE_DELAY`] and doubles after each failed probe up to
//! [`MAX_PROBE_DELAY`]. A probe that gets a connection closes the breaker. The
//! health check and the reconnect heal action ([`Store::ping`](crate::Store::ping),
//! [`Store::reconnect`](crate::Store::reconnect)) always probe, whatever the delay,
//! so the monitor learns the truth when it asks.
//!
//! Why a state of its own rather than `plexus-resilience`'s `CircuitBreaker`: that
//! breaker counts every outcome over a window and opens on a failure rate, which
//! suits an instance answering calls; here only one kind of error counts (a lost
//! connection, never a not-found or a conflict), one is enough to know, and the
//! health check must be able to probe past it. That is a few lines, and the store
//! keeps no dependency on the resilience crate.
//!
//! Each change between [`Connection::Up`] and [`Connection::Lost`] is published on
//! a [`tokio::sync::watch`] channel ([`Store::connection`](crate::Store::connection)),
//! so the DataStore family can ask the health monitor for a check at once instead
//! of at the next interval.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::StoreError;

/// How long the breaker stays open after the first connection failure before one
/// call may probe.
pub const FIRST_PROBE_DELAY: Duration = Duration::from_millis(250);
/// The longest delay between two probes while the database stays unreachable.
pub const MAX_PROBE_DELAY: Duration = Duration::from_secs(5);

/// Whether the store can reach its database, as far as it last knew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Connections are made and statements answered.
    Up,
    /// A connection failed: calls fail fast with `Unavailable` until a probe
    /// reconnects.
    Lost {
        /// What the first failure said.
        reason: String,
    },
}

#[derive(Debug)]
enum State {
    Closed,
    Open {
        since: Instant,
        reason: String,
        next_probe: Instant,
        delay: Duration,
        probing: bool,
    },
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    tx: watch::Sender<Connection>,
}

/// The breaker on the database dependency. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
}

/// Who is asking to use the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// An ordinary call: fails fast while the breaker is open.
    Call,
    /// The health check or the heal action: always let through.
    Probe,
}

/// The right to probe while the breaker is open; dropped unresolved (a cancelled
/// call), it lets the next call probe.
#[derive(Debug)]
pub(crate) struct ProbeSlot {
    link: Link,
    /// Whether this slot set `probing` (a forced probe may run beside another).
    owns: bool,
    resolved: bool,
}

impl Drop for ProbeSlot {
    fn drop(&mut self) {
        if self.owns
            && !self.resolved
            && let State::Open { probing, .. } = &mut *self.link.shared.state.lock()
        {
            *probing = false;
        }
    }
}

impl Link {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::Closed),
                tx: watch::Sender::new(Connection::Up),
            }),
        }
    }

    /// A receiver of every change of the connection state.
    pub(crate) fn watch(&self) -> watch::Receiver<Connection> {
        self.shared.tx.subscribe()
    }

    /// Whether a call may use the database now: `Ok(None)` when the breaker is
    /// closed, `Ok(Some(slot))` for the one probe while it is open, and
    /// `Err(Unavailable)` at once otherwise.
    pub(crate) fn admit(&self, who: Admit) -> Result<Option<ProbeSlot>, StoreError> {
        let mut state = self.shared.state.lock();
        match &mut *state {
            State::Closed => Ok(None),
            State::Open {
                since,
                reason,
                next_probe,
                probing,
                ..
            } => {
                let now = Instant::now();
                if who == Admit::Probe || (!*probing && now >= *next_probe) {
                    let owns = !*probing;
                    *probing = true;
                    Ok(Some(ProbeSlot {
                        link: self.clone(),
                        owns,
                        resolved: false,
                    }))
                } else {
                    Err(StoreError::Unavailable {
                        reason: format!(
                            "database unreachable for {:?} ({reason}); failing fast, next probe in {:?}",
                            now.duration_since(*since),
                            next_probe.saturating_duration_since(now),
                        ),
                    })
                }
            }
        }
    }

    /// A connection was made: a probe closes the breaker. (A call let through
    /// before the breaker opened proves nothing about now.)
    pub(crate) fn succeeded(&self, slot: Option<ProbeSlot>) {
        let Some(mut slot) = slot else {
            return;
        };
        slot.resolved = true;
        let was_open = {
            let mut state = self.shared.state.lock();
            let was_open = matches!(*state, State::Open { .. });
            *state = State::Closed;
            was_open
        };
        if was_open {
            tracing::info!("database connection restored");
            self.shared.tx.send_replace(Connection::Up);
        }
    }

    /// A connection failed: the breaker opens, or stays open with a longer delay
    /// before the next probe.
    pub(crate) fn failed(&self, slot: Option<ProbeSlot>, error: &StoreError) {
        let now = Instant::now();
        let lost = {
            let mut state = self.shared.state.lock();
            match &mut *state {
                State::Closed => {
                    *state = State::Open {
                        since: now,
                        reason: error.to_string(),
                        next_probe: now + FIRST_PROBE_DELAY,
                        delay: FIRST_PROBE_DELAY,
                        probing: false,
                    };
                    true
                }
                State::Open {
                    next_probe,
                    delay,
                    probing,
                    ..
                } => {
                    if slot.is_some() {
                        *delay = (*delay * 2).min(MAX_PROBE_DELAY);
                        *next_probe = now + *delay;
                        *probing = false;
                    }
                    false
                }
            }
        };
        if let Some(mut slot) = slot {
            slot.resolved = true;
        }
        if lost {
            tracing::warn!(error = %error, "database connection lost");
            self.shared.tx.send_replace(Connection::Lost {
                reason: error.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn gone() -> StoreError {
        StoreError::Unavailable {
            reason: "refused".to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_with_a_growing_delay() {
        let link = Link::new();
        let rx = link.watch();
        assert!(link.admit(Admit::Call).unwrap().is_none());
        link.failed(None, &gone());
        assert!(matches!(*rx.borrow(), Connection::Lost { .. }));
        assert!(link.admit(Admit::Call).is_err());
        tokio::time::advance(FIRST_PROBE_DELAY).await;
        let slot = link.admit(Admit::Call).unwrap();
        assert!(slot.is_some());
        // Only one probe at a time; the health check may still probe.
        assert!(link.admit(Admit::Call).is_err());
        let forced = link.admit(Admit::Probe).unwrap();
        drop(forced);
        link.failed(slot, &gone());
        tokio::time::advance(FIRST_PROBE_DELAY).await;
        assert!(link.admit(Admit::Call).is_err(), "the delay doubled");
        tokio::time::advance(FIRST_PROBE_DELAY).await;
        let slot = link.admit(Admit::Call).unwrap();
        // A cancelled probe lets the next call probe.
        drop(slot);
        let slot = link.admit(Admit::Call).unwrap();
        link.succeeded(slot);
        assert_eq!(*rx.borrow(), Connection::Up);
        assert!(link.admit(Admit::Call).unwrap().is_none());
    }
}
