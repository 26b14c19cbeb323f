//! State-change events, publishable on the bus as a typed [`plexus_core::Event`].

use plexus_core::{Event, Priority, Timestamp, Topic};
use serde::{Deserialize, Serialize};

use super::State;

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    /// The failure rate reached its threshold.
    FailureRate,
    /// The slow-call rate reached its threshold.
    SlowCallRate,
    /// The wait in open is over.
    WaitElapsed,
    /// The half-open trials went well.
    TrialsSucceeded,
    /// The half-open trials failed.
    TrialsFailed,
    /// The half-open trials did not complete within `max_wait_in_half_open_ms`.
    TrialsTimedOut,
    /// An operator asked for it.
    Manual,
}

/// A breaker moved from one state to another.
///
/// Attach the bus with [`super::CircuitBreaker::on_state_change`]: the listener can
/// publish `Envelope::event(transition.clone())` on [`StateTransition::TOPIC`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateTransition {
    /// The breaker's name.
    pub breaker: String,
    /// The state it left.
    pub from: State,
    /// The state it entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// The failure rate (percent) at the time, when enough calls were recorded.
    pub failure_rate: Option<f64>,
    /// The slow-call rate (percent) at the time, when enough calls were recorded.
    pub slow_call_rate: Option<f64>,
    /// When, on the wall clock.
    pub at: Timestamp,
}

impl Event for StateTransition {
    const TOPIC: Topic = Topic::from_static("resilience.breaker.state_changed");
    const PRIORITY: Priority = Priority::High;
}
