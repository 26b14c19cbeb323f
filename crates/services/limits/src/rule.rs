//! A [`Rule`] resolved from configuration, and the arithmetic of both algorithms on
//! one key's state, written once here for the memory backend and mirrored line by
//! line by the Redis backend's Lua scripts (the conformance suite holds them to the
//! same decisions).
//!
//! Everything is integer arithmetic that stays below 2^53, so Lua's doubles compute
//! exactly what Rust computes.
//!
//! **Sliding window** (milliseconds): the approximated sliding window counter, as
//! Cloudflare and others run it. The state is the index of the current fixed
//! window and the counts of it and of the one before. At `e` ms into the current
//! window the sliding window holds `prev × (W − e) / W + curr`; a cost is allowed
//! while that plus the cost is at most `limit` (compared multiplied by `W`, so
//! exactly). O(1) state and one hash per key, against an exact log's O(limit) per
//! key (a million timestamps for a rule of a million a minute); the price is the
//! assumption that the previous window's units were spread evenly.
//!
//! **GCRA** (microseconds): the theoretical arrival time `tat`. Each unit moves it
//! `T = ⌈window / limit⌉` further; a cost is allowed when `tat + cost × T − burst ×
//! T ≤ now`. One number per key.

use std::time::Duration;

use serde::Serialize;

use crate::config::{Algorithm, RuleConfig};

/// A named rule, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name (`api`).
    pub name: String,
    /// How it counts.
    pub algorithm: Algorithm,
    /// Units per window.
    pub limit: u64,
    /// The window, in milliseconds.
    pub window_ms: u64,
    /// GCRA: units at once (`limit` for a sliding window).
    pub burst: u64,
}

impl Rule {
    /// The rule `name` configured as `config` (already checked).
    pub fn new(name: impl Into<String>, config: &RuleConfig) -> Self {
        Self {
            name: name.into(),
            algorithm: config.algorithm,
            limit: config.limit,
            window_ms: config.window_ms,
            burst: match config.algorithm {
                Algorithm::SlidingWindow => config.limit,
                Algorithm::Gcra => config.burst.unwrap_or(config.limit),
            },
        }
    }

    /// The most one call can ever take at once: `limit`, or `burst` for GCRA.
    pub fn capacity(&self) -> u64 {
        self.burst
    }

    /// GCRA: the time one unit stands for, in microseconds (rounded up, so the
    /// rate is never above the limit).
    pub fn interval_us(&self) -> u64 {
        (self.window_ms * 1_000).div_ceil(self.limit)
    }

    /// The window as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
}

/// A decision in the backends' own units (milliseconds for a sliding window,
/// microseconds for GCRA: see [`Raw::into_decision`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw {
    /// Whether the cost was (or would be) allowed.
    pub allowed: bool,
    /// Units still available after the decision.
    pub remaining: u64,
    /// Refused: how long until the same cost would be allowed.
    pub retry_after: u64,
    /// How long until the key is back to its full capacity.
    pub reset_after: u64,
}

/// What a limiter answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Decision {
    /// Whether the cost is allowed now (and, for `acquire`, was taken).
    pub allowed: bool,
    /// Units still available: after this call's cost for an allowed `acquire`,
    /// before it otherwise.
    pub remaining: u64,
    /// When refused, how long until the same cost would be allowed, in
    /// milliseconds (0 when allowed).
    pub retry_after_ms: u64,
    /// How long until the key is back to its full capacity, in milliseconds.
    pub reset_after_ms: u64,
    /// The rule's limit per window.
    pub limit: u64,
}

impl Raw {
    /// The decision for `rule`, times rounded up to milliseconds (waiting
    /// `retry_after_ms` is always enough).
    pub fn into_decision(self, rule: &Rule) -> Decision {
        let ms = |t: u64| match rule.algorithm {
            Algorithm::SlidingWindow => t,
            Algorithm::Gcra => t.div_ceil(1_000),
        };
        Decision {
            allowed: self.allowed,
            remaining: self.remaining,
            retry_after_ms: if self.allowed {
                0
            } else {
                ms(self.retry_after)
            },
            reset_after_ms: ms(self.reset_after),
            limit: rule.limit,
        }
    }
}

/// One key's sliding-window state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// The index of the current fixed window (`now_ms / window_ms`).
    pub index: u64,
    /// Units taken in it.
    pub curr: u64,
    /// Units taken in the one before.
    pub prev: u64,
}

/// Decides `cost` on `state` at `now_ms`; `Some` new state when it is taken (an
/// allowed call with `consume`). Mirrored by `redis/sliding_window.lua`.
pub fn sliding_window(
    rule: &Rule,
    state: Option<Window>,
    now_ms: u64,
    cost: u64,
    consume: bool,
) -> (Raw, Option<Window>) {
    let (w, limit) = (rule.window_ms, rule.limit);
    let index = now_ms / w;
    let e = now_ms - index * w;
    let (mut curr, prev) = match state {
        Some(s) if s.index == index => (s.curr, s.prev),
        Some(s) if s.index + 1 == index => (0, s.curr),
        _ => (0, 0),
    };
    let used = prev * (w - e) + curr * w;
    let allowed = used.saturating_add(cost.saturating_mul(w)) <= limit * w;
    let mut taken = None;
    if allowed && consume {
        curr += cost;
        taken = Some(Window { index, curr, prev });
    }
    let used = prev * (w - e) + curr * w;
    let retry_after = if allowed {
        0
    } else if curr + cost <= limit {
        // In this window, once enough of the previous one has slid out.
        (w - (limit - curr - cost) * w / prev) - e
    } else {
        // In the next window, once enough of this one has slid out.
        (w - e) + (w - limit.saturating_sub(cost) * w / curr.max(1))
    };
    let reset_after = if curr > 0 {
        2 * w - e
    } else if prev > 0 {
        w - e
    } else {
        0
    };
    let raw = Raw {
        allowed,
        remaining: (limit * w).saturating_sub(used) / w,
        retry_after,
        reset_after,
    };
    (raw, taken)
}

/// Decides `cost` on a key whose theoretical arrival time is `tat_us` at `now_us`;
/// `Some` new time when it is taken. Mirrored by `redis/gcra.lua`.
pub fn gcra(
    rule: &Rule,
    tat_us: Option<u64>,
    now_us: u64,
    cost: u64,
    consume: bool,
) -> (Raw, Option<u64>) {
    let t = rule.interval_us();
    let tolerance = rule.burst * t;
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(cost.saturating_mul(t));
    // `new_tat - tolerance <= now`, kept in unsigned arithmetic.
    let allowed = new_tat <= now_us + tolerance;
    let after = if allowed && consume { new_tat } else { tat };
    let raw = Raw {
        allowed,
        remaining: (now_us + tolerance).saturating_sub(after) / t,
        retry_after: if allowed {
            0
        } else {
            new_tat - tolerance - now_us
        },
        reset_after: after - now_us,
    };
    (raw, (allowed && consume).then_some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sliding(limit: u64, window_ms: u64) -> Rule {
        Rule::new("r", &RuleConfig::sliding_window(limit, window_ms))
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        let rule = sliding(10, 1_000);
        let full = Some(Window {
            index: 0,
            curr: 10,
            prev: 0,
        });
        // 100 ms into the next window, 90% of the previous one still counts: 1 left.
        let (raw, _) = sliding_window(&rule, full, 1_100, 1, false);
        assert_eq!((raw.allowed, raw.remaining), (true, 1));
        let (raw, _) = sliding_window(&rule, full, 1_100, 2, false);
        assert!(!raw.allowed);
        // Two units fit once 80% has slid out: at 1,200.
        assert_eq!(raw.retry_after, 100);
        let (raw, _) = sliding_window(&rule, full, 1_200, 2, false);
        assert!(raw.allowed);
        // Full in the same window: wait into the next one.
        let (raw, _) = sliding_window(&rule, full, 900, 1, false);
        assert_eq!(
            (raw.allowed, raw.retry_after, raw.reset_after),
            (false, 200, 1_100)
        );
        // Two windows later nothing is left.
        let (raw, _) = sliding_window(&rule, full, 2_000, 10, false);
        assert!(raw.allowed);
    }

    #[test]
    fn gcra_spaces_units_after_a_burst() {
        let rule = Rule::new("r", &RuleConfig::gcra(10, 1_000, 5));
        assert_eq!(rule.interval_us(), 100_000);
        let mut tat = None;
        for left in (0..5).rev() {
            let (raw, taken) = gcra(&rule, tat, 0, 1, true);
            assert_eq!((raw.allowed, raw.remaining), (true, left));
            tat = taken;
        }
        let (raw, taken) = gcra(&rule, tat, 0, 1, true);
        assert_eq!(
            (raw.allowed, raw.retry_after, taken),
            (false, 100_000, None)
        );
        assert_eq!(raw.reset_after, 500_000);
        let (raw, _) = gcra(&rule, tat, 100_000, 1, true);
        assert!(raw.allowed);
        let decision = raw.into_decision(&rule);
        assert_eq!(decision.reset_after_ms, 500);
    }
}
