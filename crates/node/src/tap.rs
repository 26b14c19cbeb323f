//! The call tap: every call the node makes, as it ends, for live views (the
//! dashboard's live tail, `plexus top`).
//!
//! A call costs the tap one relaxed atomic load while nobody listens. Listeners get
//! a bounded [`tokio::sync::broadcast`] channel ([`TAP_CAPACITY`] calls): one that
//! falls behind loses the oldest calls and learns how many
//! ([`TapRecv::Lagged`]); the call path never waits for a listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexus_core::{CorrelationId, Timestamp};
use serde::Serialize;
use tokio::sync::broadcast;

/// How many ended calls a listener may hold before it loses the oldest.
pub const TAP_CAPACITY: usize = 4096;

/// One call as it ended.
#[derive(Clone, Debug, Serialize)]
pub struct CallEvent {
    /// `service.method`.
    pub method: String,
    /// Who called (a token's name), if known.
    pub caller: Option<String>,
    /// The call's correlation id.
    pub correlation_id: CorrelationId,
    /// When it entered the call path.
    pub at: Timestamp,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// `ok` or the error's outcome label.
    pub outcome: &'static str,
}

/// The sending side, held by the node.
#[derive(Debug)]
pub(crate) struct Tap {
    listeners: Arc<AtomicUsize>,
    tx: broadcast::Sender<Arc<CallEvent>>,
}

impl Default for Tap {
    fn default() -> Self {
        Self {
            listeners: Arc::new(AtomicUsize::new(0)),
            tx: broadcast::channel(TAP_CAPACITY).0,
        }
    }
}

impl Tap {
    /// Whether anyone listens (the call path builds no event otherwise).
    pub(crate) fn active(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Hands an ended call to every listener.
    pub(crate) fn send(&self, event: CallEvent) {
        // No receiver left is not an error: the count is only a hint.
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new listener.
    pub(crate) fn listen(&self) -> CallTap {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        CallTap {
            rx: self.tx.subscribe(),
            listeners: self.listeners.clone(),
        }
    }

    /// The event for a call of `method` that started at `at` and took `took`.
    pub(crate) fn event(
        method: &str,
        caller: Option<String>,
        correlation_id: CorrelationId,
        at: Timestamp,
        took: Duration,
        outcome: &'static str,
    ) -> CallEvent {
        CallEvent {
            method: method.to_owned(),
            caller,
            correlation_id,
            at,
            duration_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            outcome,
        }
    }
}

/// What [`CallTap::recv`] yields.
#[derive(Debug)]
pub enum TapRecv {
    /// The next call.
    Call(Arc<CallEvent>),
    /// This listener fell behind and lost that many calls.
    Lagged(u64),
    /// The node is gone.
    Closed,
}

/// A listener on every call the node makes ([`crate::Node::tap_calls`]).
#[derive(Debug)]
pub struct CallTap {
    rx: broadcast::Receiver<Arc<CallEvent>>,
    listeners: Arc<AtomicUsize>,
}

impl CallTap {
    /// Waits for the next ended call.
    pub async fn recv(&mut self) -> TapRecv {
        match self.rx.recv().await {
            Ok(event) => TapRecv::Call(event),
            Err(broadcast::error::RecvError::Lagged(n)) => TapRecv::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => TapRecv::Closed,
        }
    }

    /// The next ended call if one is waiting (`None` when none is).
    pub fn try_recv(&mut self) -> Option<TapRecv> {
        match self.rx.try_recv() {
            Ok(event) => Some(TapRecv::Call(event)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(TapRecv::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(TapRecv::Closed),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

impl Drop for CallTap {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}
