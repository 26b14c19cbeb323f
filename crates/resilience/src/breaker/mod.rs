//! Circuit breaker: stop calling a dependency that keeps failing, and probe it back.
//!
//! A [`CircuitBreaker`] is a shared handle (cheap to clone) with the states
//! closed → open → half-open → closed, plus forced-open, disabled and metrics-only
//! states an operator can set. In closed it records each call's outcome in a
//! count- or time-based sliding [`window`]; when at least `minimum_calls` are
//! recorded and the failure rate or the slow-call rate reaches its threshold, it
//! opens. While open every call is rejected at once with a [`CircuitOpen`] that says
//! when the next trial is allowed. After the wait (fixed, or growing with each
//! reopening) it lets `permitted_calls_in_half_open` trial calls through; their rates
//! decide between closing and reopening.
//!
//! The closed-state path takes no lock: one atomic load to admit, a byte swap in the
//! ring and a counter increment to record. Transitions take a mutex.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use plexus_resilience::{CircuitBreaker, CircuitOpen, State};
//!
//! let breaker = CircuitBreaker::builder("storage")
//!     .count_window(4)
//!     .minimum_calls(4)
//!     .failure_rate_threshold(50.0)
//!     .build()
//!     .unwrap();
//! for _ in 0..4 {
//!     let _ = breaker.call(async { Err::<(), _>("down") }).await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let err = breaker.call(async { Ok::<_, &str>(1) }).await.unwrap_err();
//! assert!(err.downcast_ref::<CircuitOpen>().is_some());
//! # }
//! ```

mod config;
mod error;
mod event;
mod future;
mod layer;
pub mod window;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tower::Service;

pub use config::{
    BreakerConfig, MAX_COUNT_WINDOW, MAX_HALF_OPEN_CALLS, MAX_TIME_WINDOW_SECS, Window,
};
pub use error::CircuitOpen;
pub use event::{StateTransition, TransitionReason};
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;

use crate::clock::{Origin, nanos};
use crate::{BoxError, ConfigError};
use window::{CountWindow, TimeWindow, Totals};

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calls go through and are recorded.
    Closed,
    /// Calls are rejected until the wait is over.
    Open,
    /// A few trial calls go through; the rest are rejected.
    HalfOpen,
    /// Calls are rejected until an operator changes the state.
    ForcedOpen,
    /// Calls go through and nothing is recorded.
    Disabled,
    /// Calls go through and are recorded, but the breaker never opens.
    MetricsOnly,
}

impl State {
    const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ];

    fn code(self) -> u64 {
        self as u64
    }

    fn from_word(word: u64) -> State {
        State::ALL[(word & 7) as usize % State::ALL.len()]
    }

    /// The snake-case name used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an error means to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// It counts as a failure.
    Failure,
    /// It counts as a success (the dependency answered; the caller was wrong).
    Success,
    /// It is not recorded at all.
    Ignored,
}

type Classifier = Arc<dyn Fn(&BoxError) -> ErrorClass + Send + Sync>;
type Listener = Arc<dyn Fn(&StateTransition) + Send + Sync>;

/// A snapshot of a breaker's metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerMetrics {
    /// The state.
    pub state: State,
    /// The failure rate over the window in percent, once `minimum_calls` are recorded.
    pub failure_rate: Option<f64>,
    /// The slow-call rate over the window in percent, once `minimum_calls` are recorded.
    pub slow_call_rate: Option<f64>,
    /// Calls in the window.
    pub buffered_calls: u64,
    /// Failed calls in the window.
    pub buffered_failed_calls: u64,
    /// Slow calls in the window.
    pub buffered_slow_calls: u64,
    /// Successful calls since the breaker was built.
    pub successful_calls_total: u64,
    /// Failed calls since the breaker was built.
    pub failed_calls_total: u64,
    /// Slow calls (successful or not) since the breaker was built.
    pub slow_calls_total: u64,
    /// Calls whose error the classifier ignored.
    pub ignored_calls_total: u64,
    /// Calls rejected without being made.
    pub rejected_calls_total: u64,
    /// State transitions since the breaker was built.
    pub transitions_total: u64,
}

#[derive(Debug)]
enum Recorder {
    Count(CountWindow),
    Time(TimeWindow),
}

#[derive(Debug, Default)]
struct Totals64 {
    /// Successes not recorded in a count window (those are counted by the window).
    successful: AtomicU64,
    /// Failures recorded in a count window.
    window_failed: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    transitions: AtomicU64,
}

/// The fields only transitions change.
#[derive(Debug, Default)]
struct Transitions {
    reopenings: u32,
}

// Half-open bookkeeping is tagged with the state's generation so that a call from
// one half-open period can never take or return a trial of the next one.
// Permits: generation << 32 | remaining. Trials: generation << 48 | slow << 32 |
// failed << 16 | completed.
const TRIAL_SHIFT: u32 = 16;
const TRIAL_MASK: u64 = (1 << TRIAL_SHIFT) - 1;

fn generation(word: u64) -> u64 {
    word >> 3
}

struct Shared {
    config: BreakerConfig,
    name: Arc<str>,
    origin: Origin,
    /// `generation << 3 | state code`.
    state: AtomicU64,
    /// While open: nanoseconds after the origin when trials may start.
    open_until: AtomicU64,
    /// While half-open: nanoseconds after the origin when it began.
    half_open_since: AtomicU64,
    half_open_permits: AtomicU64,
    trials: AtomicU64,
    window: Recorder,
    minimum_calls: u64,
    slow_after: Option<Duration>,
    totals: Totals64,
    transitions: Mutex<Transitions>,
    listeners: RwLock<Vec<Listener>>,
    classifier: Option<Classifier>,
}

/// A circuit breaker; clones share one state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish()
    }
}

/// Builds a [`CircuitBreaker`] step by step; every setter maps to a
/// [`BreakerConfig`] field.
#[must_use]
pub struct BreakerBuilder {
    config: BreakerConfig,
    classifier: Option<Classifier>,
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl BreakerBuilder {
    /// Rates over the last `size` calls.
    pub fn count_window(mut self, size: u32) -> Self {
        self.config.window = Window::Count { size };
        self
    }
    /// Rates over the calls of the last `seconds` seconds.
    pub fn time_window(mut self, seconds: u32) -> Self {
        self.config.window = Window::Time { seconds };
        self
    }
    /// Open at this failure rate (percent).
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.config.failure_rate_threshold = percent;
        self
    }
    /// Open at this slow-call rate (percent) of calls lasting at least `duration`.
    pub fn slow_calls(mut self, duration: Duration, percent: f64) -> Self {
        self.config.slow_call_duration_ms = Some(duration.as_millis() as u64);
        self.config.slow_call_rate_threshold = percent;
        self
    }
    /// The calls the window must hold before the rates count.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }
    /// Trial calls in half-open.
    pub fn permitted_calls_in_half_open(mut self, calls: u32) -> Self {
        self.config.permitted_calls_in_half_open = calls;
        self
    }
    /// A fixed wait in open.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.config.wait_in_open_ms = wait.as_millis() as u64;
        self.config.max_wait_in_open_ms =
            self.config.max_wait_in_open_ms.max(wait.as_millis() as u64);
        self
    }
    /// A wait that is multiplied by `multiplier` on each reopening, up to `max`.
    pub fn growing_wait(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.wait_multiplier = multiplier;
        self.config.max_wait_in_open_ms = max.as_millis() as u64;
        self
    }
    /// Reopen when the trials have not completed `max` after half-open began.
    pub fn max_wait_in_half_open(mut self, max: Duration) -> Self {
        self.config.max_wait_in_half_open_ms = Some(max.as_millis() as u64);
        self
    }
    /// Move to half-open as soon as the wait is over.
    pub fn automatic_transition(mut self, on: bool) -> Self {
        self.config.automatic_transition = on;
        self
    }
    /// Decide which errors are failures, successes or ignored (all are failures
    /// by default).
    pub fn classify(
        mut self,
        classifier: impl Fn(&BoxError) -> ErrorClass + Send + Sync + 'static,
    ) -> Self {
        self.classifier = Some(Arc::new(classifier));
        self
    }
    /// Validates the configuration and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        CircuitBreaker::with_classifier(self.config, self.classifier)
    }
}

impl CircuitBreaker {
    /// A builder starting from the defaults, named `name`.
    pub fn builder(name: impl Into<String>) -> BreakerBuilder {
        BreakerBuilder {
            config: BreakerConfig {
                name: name.into(),
                ..BreakerConfig::default()
            },
            classifier: None,
        }
    }

    /// A builder starting from `config`, to add what a configuration cannot hold
    /// (an error classifier).
    pub fn builder_from(config: BreakerConfig) -> BreakerBuilder {
        BreakerBuilder {
            config,
            classifier: None,
        }
    }

    /// A breaker from a configuration, after validating it.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_classifier(config, None)
    }

    fn with_classifier(
        config: BreakerConfig,
        classifier: Option<Classifier>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = match config.window {
            Window::Count { size } => Recorder::Count(CountWindow::new(size)),
            Window::Time { seconds } => Recorder::Time(TimeWindow::new(seconds)),
        };
        let shared = Shared {
            name: Arc::from(config.name.as_str()),
            origin: Origin::new(),
            state: AtomicU64::new(State::Closed.code()),
            open_until: AtomicU64::new(0),
            half_open_since: AtomicU64::new(0),
            half_open_permits: AtomicU64::new(0),
            trials: AtomicU64::new(0),
            window,
            minimum_calls: config.effective_minimum_calls(),
            slow_after: config.slow_call_duration_ms.map(Duration::from_millis),
            totals: Totals64::default(),
            transitions: Mutex::new(Transitions::default()),
            listeners: RwLock::new(Vec::new()),
            classifier,
            config,
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_word(self.shared.state.load(Ordering::Acquire))
    }

    /// Whether a call would be let through now, without taking a permit (a balancer
    /// uses this to skip instances). Open after its wait counts as permitted.
    pub fn is_call_permitted(&self) -> bool {
        let s = &self.shared;
        let word = s.state.load(Ordering::Acquire);
        match State::from_word(word) {
            State::Closed | State::Disabled | State::MetricsOnly => true,
            State::HalfOpen => {
                let permits = s.half_open_permits.load(Ordering::Acquire);
                permits >> 32 == generation(word) & 0xFFFF_FFFF && permits & 0xFFFF_FFFF > 0
            }
            State::ForcedOpen => false,
            State::Open => s.origin.now_nanos() >= s.open_until.load(Ordering::Acquire),
        }
    }

    /// How long until a trial is allowed, while open.
    pub fn retry_after(&self) -> Option<Duration> {
        let s = &self.shared;
        (self.state() == State::Open).then(|| {
            Duration::from_nanos(
                s.open_until
                    .load(Ordering::Acquire)
                    .saturating_sub(s.origin.now_nanos()),
            )
        })
    }

    /// Calls `listener` on every state change, in order, while the transition is
    /// held: the listener must not change the breaker's state itself.
    pub fn on_state_change(&self, listener: impl Fn(&StateTransition) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.shared.listeners.write() {
            listeners.push(Arc::new(listener));
        }
    }

    /// Asks for permission to call. The [`Permit`] records the outcome; dropping it
    /// unused gives a half-open trial back.
    pub fn try_acquire(&self) -> Result<Permit, CircuitOpen> {
        let s = &self.shared;
        loop {
            let word = s.state.load(Ordering::Acquire);
            let state = State::from_word(word);
            match state {
                State::Closed | State::MetricsOnly | State::Disabled => {
                    return Ok(self.permit(word, state));
                }
                State::HalfOpen => {
                    let tag = generation(word) & 0xFFFF_FFFF;
                    let taken = s.half_open_permits.fetch_update(
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        |p| (p >> 32 == tag && p & 0xFFFF_FFFF > 0).then(|| p - 1),
                    );
                    if taken.is_ok() {
                        return Ok(self.permit(word, state));
                    }
                    if s.state.load(Ordering::Acquire) != word {
                        // The state moved on meanwhile; start over.
                        continue;
                    }
                    if self.half_open_expired() {
                        self.transition_from(word, State::Open, TransitionReason::TrialsTimedOut);
                        continue;
                    }
                    return Err(self.reject(state, None));
                }
                State::ForcedOpen => return Err(self.reject(state, None)),
                State::Open => {
                    let until = s.open_until.load(Ordering::Acquire);
                    if s.origin.now_nanos() >= until {
                        self.transition_from(word, State::HalfOpen, TransitionReason::WaitElapsed);
                        continue;
                    }
                    return Err(self.reject(state, Some(until)));
                }
            }
        }
    }

    fn permit(&self, word: u64, state: State) -> Permit {
        let start = match (state, self.shared.slow_after) {
            (State::Disabled, _) | (_, None) => None,
            _ => Some(Instant::now()),
        };
        Permit {
            breaker: self.clone(),
            word,
            start,
            done: false,
        }
    }

    /// Counts a call turned away because this breaker was open, when the breaker
    /// itself was not asked: a balancer that found every instance's breaker open
    /// fails the call without calling any of them, and each of those breakers counts
    /// it in `rejected_calls_total`.
    pub fn count_rejected(&self) {
        self.shared.totals.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn reject(&self, state: State, until: Option<u64>) -> CircuitOpen {
        let s = &self.shared;
        s.totals.rejected.fetch_add(1, Ordering::Relaxed);
        let next_trial_at = until.map(|n| s.origin.instant(n));
        CircuitOpen {
            name: s.name.clone(),
            state,
            retry_after: next_trial_at.map(|at| at.saturating_duration_since(Instant::now())),
            next_trial_at,
        }
    }

    /// Runs `call` through the breaker: a plain async wrapper around any future.
    pub async fn call<T, E>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, BoxError>
    where
        E: Into<BoxError>,
    {
        let permit = self.try_acquire()?;
        let result = call.await.map_err(Into::into);
        permit.record(&result);
        result
    }

    /// Wraps `service` in this breaker.
    pub fn layer<S>(&self, service: S) -> CircuitBreakerService<S> {
        CircuitBreakerService::new(service, self.clone())
    }

    /// A snapshot of the metrics.
    pub fn metrics(&self) -> BreakerMetrics {
        let s = &self.shared;
        let totals = self.window_totals();
        let (failure_rate, slow_call_rate) = self.rates(totals);
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        BreakerMetrics {
            state: self.state(),
            failure_rate,
            slow_call_rate,
            buffered_calls: totals.calls,
            buffered_failed_calls: totals.failed,
            buffered_slow_calls: totals.slow,
            successful_calls_total: get(&s.totals.successful)
                + match &s.window {
                    Recorder::Count(w) => w.records().saturating_sub(get(&s.totals.window_failed)),
                    Recorder::Time(_) => 0,
                },
            failed_calls_total: get(&s.totals.failed),
            slow_calls_total: get(&s.totals.slow),
            ignored_calls_total: get(&s.totals.ignored),
            rejected_calls_total: get(&s.totals.rejected),
            transitions_total: get(&s.totals.transitions),
        }
    }

    /// Closes the breaker and forgets the window.
    pub fn reset(&self) {
        self.force(State::Closed);
    }
    /// Rejects every call until another state is set.
    pub fn force_open(&self) {
        self.force(State::ForcedOpen);
    }
    /// Lets every call through and records nothing.
    pub fn disable(&self) {
        self.force(State::Disabled);
    }
    /// Records every call but never opens.
    pub fn metrics_only(&self) {
        self.force(State::MetricsOnly);
    }
    /// Opens now, for the configured wait.
    pub fn open(&self) {
        self.force(State::Open);
    }

    fn force(&self, to: State) {
        let guard = self.lock_transitions();
        let word = self.shared.state.load(Ordering::Acquire);
        self.apply(guard, word, to, TransitionReason::Manual);
    }

    fn window_totals(&self) -> Totals {
        match &self.shared.window {
            Recorder::Count(w) => w.totals(),
            Recorder::Time(w) => w.totals(self.shared.origin.now_nanos()),
        }
    }

    fn rates(&self, totals: Totals) -> (Option<f64>, Option<f64>) {
        if totals.calls == 0 || totals.calls < self.shared.minimum_calls {
            return (None, None);
        }
        let pct = |n: u64| n as f64 * 100.0 / totals.calls as f64;
        (Some(pct(totals.failed)), Some(pct(totals.slow)))
    }

    fn lock_transitions(&self) -> MutexGuard<'_, Transitions> {
        self.shared
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves from the state word `from` to `to`, unless another transition came first.
    fn transition_from(&self, from: u64, to: State, reason: TransitionReason) {
        let guard = self.lock_transitions();
        if self.shared.state.load(Ordering::Acquire) == from {
            self.apply(guard, from, to, reason);
        }
    }

    fn apply(
        &self,
        mut guard: MutexGuard<'_, Transitions>,
        from: u64,
        to: State,
        reason: TransitionReason,
    ) {
        let s = &self.shared;
        let from_state = State::from_word(from);
        let (failure_rate, slow_call_rate) = self.rates(self.window_totals());
        let mut open_until = None;
        match to {
            State::Open => {
                if from_state == State::HalfOpen {
                    guard.reopenings = guard.reopenings.saturating_add(1);
                }
                let until = s
                    .origin
                    .now_nanos()
                    .saturating_add(nanos(s.config.wait_in_open(guard.reopenings)));
                s.open_until.store(until, Ordering::Release);
                open_until = Some(until);
            }
            State::HalfOpen => {
                s.half_open_since
                    .store(s.origin.now_nanos(), Ordering::Release);
                let next = generation(from).wrapping_add(1);
                s.trials.store((next & 0xFFFF) << 48, Ordering::Release);
                s.half_open_permits.store(
                    (next & 0xFFFF_FFFF) << 32 | u64::from(s.config.permitted_calls_in_half_open),
                    Ordering::Release,
                );
            }
            State::Closed | State::MetricsOnly | State::Disabled | State::ForcedOpen => {
                if to == State::Closed {
                    guard.reopenings = 0;
                }
                match &s.window {
                    Recorder::Count(w) => w.reset(),
                    Recorder::Time(w) => w.reset(),
                }
            }
        }
        let next = generation(from).wrapping_add(1);
        s.state.store(next << 3 | to.code(), Ordering::Release);
        s.totals.transitions.fetch_add(1, Ordering::Relaxed);
        let event = StateTransition {
            breaker: s.name.to_string(),
            from: from_state,
            to,
            reason,
            failure_rate,
            slow_call_rate,
            at: plexus_core::Timestamp::now(),
        };
        if let Ok(listeners) = s.listeners.read() {
            for listener in listeners.iter() {
                listener(&event);
            }
        }
        drop(guard);
        if let (Some(until), true) = (open_until, s.config.automatic_transition) {
            self.schedule_half_open(next << 3 | to.code(), until);
        }
    }

    fn schedule_half_open(&self, word: u64, until: u64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let at = self.shared.origin.instant(until);
        handle.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(shared) = weak.upgrade() {
                CircuitBreaker { shared }.transition_from(
                    word,
                    State::HalfOpen,
                    TransitionReason::WaitElapsed,
                );
            }
        });
    }

    fn on_outcome(&self, word: u64, class: ErrorClass, elapsed: Option<Duration>) {
        let s = &self.shared;
        let slow = matches!((elapsed, s.slow_after), (Some(e), Some(after)) if e >= after);
        let failed = match class {
            ErrorClass::Success => false,
            ErrorClass::Failure => true,
            ErrorClass::Ignored => {
                s.totals.ignored.fetch_add(1, Ordering::Relaxed);
                self.give_back(word);
                return;
            }
        };
        if failed {
            s.totals.failed.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            s.totals.slow.fetch_add(1, Ordering::Relaxed);
        }
        let state = State::from_word(word);
        let current = s.state.load(Ordering::Acquire) == word;
        match state {
            State::Closed | State::MetricsOnly if current => {
                let totals = match &s.window {
                    Recorder::Count(w) => {
                        // A success recorded here is counted by the window's record
                        // counter: the hot path spares itself one shared counter.
                        if failed {
                            s.totals.window_failed.fetch_add(1, Ordering::Relaxed);
                        }
                        w.record(failed, slow)
                    }
                    Recorder::Time(w) => {
                        if !failed {
                            s.totals.successful.fetch_add(1, Ordering::Relaxed);
                        }
                        w.record(s.origin.now_nanos(), failed, slow)
                    }
                };
                if state == State::Closed
                    && let Some(reason) = self.exceeded(totals)
                {
                    self.transition_from(word, State::Open, reason);
                }
                return;
            }
            _ => {
                if !failed {
                    s.totals.successful.fetch_add(1, Ordering::Relaxed);
                }
                if !current {
                    // Admitted under an earlier state: counted, but not in this window.
                    return;
                }
            }
        }
        if state == State::HalfOpen {
            let add = 1 | u64::from(failed) << TRIAL_SHIFT | u64::from(slow) << (2 * TRIAL_SHIFT);
            let tag = generation(word) & 0xFFFF;
            let Ok(before) = s
                .trials
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    (t >> 48 == tag).then(|| t + add)
                })
            else {
                // A later half-open period has begun: this trial is not one of its own.
                return;
            };
            let packed = before + add;
            let done = packed & TRIAL_MASK;
            if done >= u64::from(s.config.permitted_calls_in_half_open) {
                let totals = Totals {
                    calls: done,
                    failed: (packed >> TRIAL_SHIFT) & TRIAL_MASK,
                    slow: (packed >> (2 * TRIAL_SHIFT)) & TRIAL_MASK,
                };
                match self.exceeded_over(totals, 1) {
                    Some(_) => {
                        self.transition_from(word, State::Open, TransitionReason::TrialsFailed)
                    }
                    None => {
                        self.transition_from(word, State::Closed, TransitionReason::TrialsSucceeded)
                    }
                }
            }
        }
    }

    fn exceeded(&self, totals: Totals) -> Option<TransitionReason> {
        self.exceeded_over(totals, self.shared.minimum_calls)
    }

    fn exceeded_over(&self, totals: Totals, minimum: u64) -> Option<TransitionReason> {
        if totals.calls == 0 || totals.calls < minimum {
            return None;
        }
        let c = &self.shared.config;
        let calls = totals.calls as f64;
        if totals.failed as f64 * 100.0 >= c.failure_rate_threshold * calls {
            Some(TransitionReason::FailureRate)
        } else if self.shared.slow_after.is_some()
            && totals.slow as f64 * 100.0 >= c.slow_call_rate_threshold * calls
        {
            Some(TransitionReason::SlowCallRate)
        } else {
            None
        }
    }

    /// Whether half-open has lasted longer than `max_wait_in_half_open_ms`.
    fn half_open_expired(&self) -> bool {
        let s = &self.shared;
        s.config.max_wait_in_half_open_ms.is_some_and(|ms| {
            s.origin
                .now_nanos()
                .saturating_sub(s.half_open_since.load(Ordering::Acquire))
                >= ms.saturating_mul(1_000_000)
        })
    }

    /// Returns an unused half-open trial.
    fn give_back(&self, word: u64) {
        let s = &self.shared;
        if State::from_word(word) == State::HalfOpen {
            let tag = generation(word) & 0xFFFF_FFFF;
            let _ = s
                .half_open_permits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    (p >> 32 == tag).then(|| p + 1)
                });
        }
    }
}

/// Permission to make one call; record its outcome with [`Permit::record`] or
/// [`Permit::record_outcome`]. Dropped unrecorded (a cancelled call), it records
/// nothing and gives a half-open trial back.
#[must_use]
pub struct Permit {
    breaker: CircuitBreaker,
    word: u64,
    start: Option<Instant>,
    done: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.shared.name)
            .field("state", &State::from_word(self.word))
            .finish()
    }
}

impl Permit {
    /// Records a call's result, classifying its error.
    pub fn record<T>(self, result: &Result<T, BoxError>) {
        let class = match result {
            Ok(_) => ErrorClass::Success,
            Err(e) => match &self.breaker.shared.classifier {
                Some(classify) => classify(e),
                None => ErrorClass::Failure,
            },
        };
        self.record_outcome(class);
    }

    /// Records an already classified outcome.
    pub fn record_outcome(mut self, class: ErrorClass) {
        self.done = true;
        if State::from_word(self.word) == State::Disabled {
            return;
        }
        let elapsed = self.start.map(|s| s.elapsed());
        self.breaker.on_outcome(self.word, class, elapsed);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.give_back(self.word);
        }
    }
}

/// A service guarded by a [`CircuitBreaker`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S> CircuitBreakerService<S> {
    /// Guards `inner` with `breaker`.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, Req> Service<Req> for CircuitBreakerService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
