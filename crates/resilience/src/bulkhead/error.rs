//! The rejection of a call that found the bulkhead full.

use std::sync::Arc;
use std::time::Duration;

/// The bulkhead had no slot and no room in its queue, or the wait ran out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead {name} is full ({max_concurrent} running, queue of {max_queue}){}", match .waited {
    Some(w) => format!("; waited {w:?}"),
    None => String::new(),
})]
pub struct BulkheadFull {
    /// The bulkhead's name.
    pub name: Arc<str>,
    /// Its cap on running calls.
    pub max_concurrent: usize,
    /// Its cap on waiting calls.
    pub max_queue: usize,
    /// How long the call waited before giving up, if it waited.
    pub waited: Option<Duration>,
}
