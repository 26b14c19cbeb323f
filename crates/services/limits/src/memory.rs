//! [`MemoryBackend`]: each key's state in this process, on moka: bounded in count
//! (`max_keys`), dropped once idle for longer than it can matter, timed by Tokio's
//! clock (so tests run under paused time). Each node enforces its own limit.

use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::LimitError;
use crate::backend::{Ask, LimiterBackend};
use crate::config::Algorithm;
use crate::metrics::LimitsMetrics;
use crate::rule::{self, Raw, Rule, Window};

/// One key's state under one rule.
#[derive(Clone, Copy, Debug)]
enum State {
    Sliding(Window),
    Gcra(u64),
}

type Slot = Arc<Mutex<Option<State>>>;

/// State in this process.
pub struct MemoryBackend {
    keys: moka::sync::Cache<String, Slot>,
    /// Times are measured from here.
    start: Instant,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("keys", &self.keys.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// At most `max_keys` keys, each dropped after `idle` without a call (twice the
    /// longest window is when no state matters any more); keys evicted for room are
    /// counted in `metrics`.
    pub fn new(max_keys: u64, idle: Duration, metrics: LimitsMetrics) -> Self {
        let keys = moka::sync::Cache::builder()
            .max_capacity(max_keys)
            .time_to_idle(idle)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    metrics.evicted();
                }
            })
            .build();
        Self {
            keys,
            start: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Keys held now (after pending evictions).
    pub fn len(&self) -> u64 {
        self.keys.run_pending_tasks();
        self.keys.entry_count()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn storage_key(rule: &Rule, key: &str) -> String {
    format!("{}:{key}", rule.name)
}

/// Applies `ask` to `state` at `now_us`, updating it when the cost is taken.
fn apply(ask: &Ask<'_>, state: &mut Option<State>, now_us: u64) -> Raw {
    let (rule, cost, consume) = (ask.rule, ask.cost, ask.consume);
    match rule.algorithm {
        Algorithm::SlidingWindow => {
            let old = match *state {
                Some(State::Sliding(w)) => Some(w),
                _ => None,
            };
            let (raw, taken) = rule::sliding_window(rule, old, now_us / 1_000, cost, consume);
            if let Some(w) = taken {
                *state = Some(State::Sliding(w));
            }
            raw
        }
        Algorithm::Gcra => {
            let old = match *state {
                Some(State::Gcra(tat)) => Some(tat),
                _ => None,
            };
            let (raw, taken) = rule::gcra(rule, old, now_us, cost, consume);
            if let Some(tat) = taken {
                *state = Some(State::Gcra(tat));
            }
            raw
        }
    }
}

#[plexus_core::async_trait]
impl LimiterBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn decide(&self, ask: Ask<'_>) -> Result<Raw, LimitError> {
        let key = storage_key(ask.rule, ask.key);
        if !ask.consume {
            // A check keeps no state for a key it has not seen.
            let slot = self.keys.get(&key);
            let mut state = slot.as_ref().and_then(|s| *s.lock());
            return Ok(apply(&ask, &mut state, self.now_us()));
        }
        let slot = self.keys.get_with(key, Slot::default);
        let mut state = slot.lock();
        Ok(apply(&ask, &mut state, self.now_us()))
    }

    async fn reset(&self, rule: &Rule, key: &str) -> Result<bool, LimitError> {
        let removed = self.keys.remove(&storage_key(rule, key));
        Ok(removed.is_some_and(|slot| slot.lock().is_some()))
    }
}
