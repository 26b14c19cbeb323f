//! The rejection a breaker returns instead of calling.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::State;

/// The breaker did not let the call through.
#[derive(Clone, Debug, thiserror::Error)]
#[error("circuit breaker {name} is {state}{}", match .retry_after {
    Some(after) => format!("; next trial allowed in {after:?}"),
    None => String::new(),
})]
pub struct CircuitOpen {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Its state: open, forced open, or half-open with every trial taken.
    pub state: State,
    /// How long until a trial call is allowed; `None` when forced open (only an
    /// operator closes it) or while half-open trials are still running.
    pub retry_after: Option<Duration>,
    /// When that is, on tokio's clock.
    pub next_trial_at: Option<Instant>,
}
