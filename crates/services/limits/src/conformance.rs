//! The suite every limiter backend must pass (feature `test-util`).
//!
//! Each function takes `make`, which builds a fresh [`Limiter`] (its keys used by
//! no other test) with the configuration it is given, and panics on a violation.
//! Run them all with [`limits_conformance!`](crate::limits_conformance):
//!
//! ```no_run
//! plexus_limits::limits_conformance!(paused: true, |config| async move {
//!     plexus_limits::Limiter::in_memory(config)
//! });
//! ```
//!
//! Time-driven cases let the clock run with `tokio::time::sleep`: under paused time
//! (`paused: true`, for in-process backends) Tokio moves it forward at once; against
//! a server the wait is real, so the windows here are short (a second at most).
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use crate::{Decision, LimitError, Limiter, LimitsConfig, RuleConfig};

pub use plexus_redis::testing::{PATIENCE, eventually};

/// Builds a fresh limiter (keys no other test uses) held to a configuration: an
/// `async` closure from [`LimitsConfig`] to [`Limiter`].
pub trait MakeLimiter: Fn(LimitsConfig) -> Self::Made {
    /// What the closure returns.
    type Made: Future<Output = Limiter>;
}

impl<M, F> MakeLimiter for M
where
    M: Fn(LimitsConfig) -> F,
    F: Future<Output = Limiter>,
{
    type Made = F;
}

/// A configuration with `rules`.
pub fn with_rules(rules: &[(&str, RuleConfig)]) -> LimitsConfig {
    let mut config = LimitsConfig::default();
    for (name, rule) in rules {
        config.rules.insert((*name).to_owned(), rule.clone());
    }
    config
}

/// Both algorithms at `limit` per `window_ms` (GCRA with a burst of `limit`).
fn both(limit: u64, window_ms: u64) -> LimitsConfig {
    with_rules(&[
        ("window", RuleConfig::sliding_window(limit, window_ms)),
        ("gcra", RuleConfig::gcra(limit, window_ms, limit)),
    ])
}

const BOTH: [&str; 2] = ["window", "gcra"];

async fn acquire(limiter: &Limiter, rule: &str, key: &str, cost: u64) -> Decision {
    limiter.acquire(rule, key, cost).await.unwrap()
}

fn field_of(error: &LimitError) -> &str {
    match error.field() {
        Some(field) => field,
        None => panic!("expected invalid input, got {error:?}"),
    }
}

/// Within a window a key gets `limit` units and no more, counted down in
/// `remaining`; the refusal says how long to wait.
pub async fn the_limit_is_honoured_within_a_window(make: impl MakeLimiter) {
    let limiter = make(both(5, 60_000)).await;
    for rule in BOTH {
        for left in (0..5).rev() {
            let d = acquire(&limiter, rule, "k", 1).await;
            assert!(d.allowed, "{rule}: {d:?}");
            assert_eq!(
                (d.remaining, d.retry_after_ms, d.limit),
                (left, 0, 5),
                "{rule}"
            );
        }
        let d = acquire(&limiter, rule, "k", 1).await;
        assert!(!d.allowed, "{rule}: {d:?}");
        assert_eq!(d.remaining, 0, "{rule}");
        // A sliding window may make a key wait into the next window: up to two.
        assert!((1..=120_000).contains(&d.retry_after_ms), "{rule}: {d:?}");
        assert!(d.reset_after_ms >= d.retry_after_ms, "{rule}: {d:?}");
        assert_eq!(
            limiter.metrics().decisions(rule, true, false),
            1,
            "{rule}: the refusal is counted"
        );
        assert_eq!(limiter.metrics().decisions(rule, true, true), 5);
    }
}

/// The sliding window slides: a key that took its whole limit at the end of one
/// fixed window gets almost nothing at the start of the next (a fixed window would
/// give it the limit again: twice the limit within a few milliseconds).
pub async fn a_burst_across_a_window_boundary_does_not_get_twice_the_limit(make: impl MakeLimiter) {
    let window = Duration::from_millis(1_000);
    let limiter = make(with_rules(&[(
        "window",
        RuleConfig::sliding_window(10, 1_000),
    )]))
    .await;
    // Learn where the fixed windows meet: after a first unit the key is full again
    // at the end of the next window.
    let first = acquire(&limiter, "window", "k", 1).await;
    let asked = Instant::now();
    let mut boundary = asked + Duration::from_millis(first.reset_after_ms) - window;
    if boundary.saturating_duration_since(Instant::now()) < window / 5 {
        // Too close to the boundary to fit a burst before it: use the next one
        // (the first unit then counts in the previous window).
        boundary += window;
    }
    sleep_until(boundary - window / 10).await;
    let mut before = 0;
    for _ in 0..10 {
        before += u64::from(acquire(&limiter, "window", "k", 1).await.allowed);
    }
    assert!(before >= 9, "the burst before the boundary got {before}");
    sleep_until(boundary + Duration::from_millis(20)).await;
    let mut after = 0;
    for _ in 0..10 {
        after += u64::from(acquire(&limiter, "window", "k", 1).await.allowed);
    }
    assert!(
        after <= 2,
        "just after the boundary a key that took all 10 got {after} more"
    );
}

/// GCRA: `burst` units at once, then one every `window / limit`; `retry_after_ms`
/// says exactly when.
pub async fn gcra_allows_a_burst_then_spaces_units(make: impl MakeLimiter) {
    let limiter = make(with_rules(&[("gcra", RuleConfig::gcra(10, 1_000, 5))])).await;
    for _ in 0..5 {
        assert!(acquire(&limiter, "gcra", "k", 1).await.allowed);
    }
    let refused = acquire(&limiter, "gcra", "k", 1).await;
    assert!(!refused.allowed, "{refused:?}");
    assert!((1..=100).contains(&refused.retry_after_ms), "{refused:?}");
    assert!((400..=500).contains(&refused.reset_after_ms), "{refused:?}");
    for _ in 0..3 {
        let refused = acquire(&limiter, "gcra", "k", 1).await;
        assert!(!refused.allowed, "{refused:?}");
        sleep(Duration::from_millis(refused.retry_after_ms)).await;
        let next = acquire(&limiter, "gcra", "k", 1).await;
        assert!(next.allowed, "after retry_after_ms: {next:?}");
        let again = acquire(&limiter, "gcra", "k", 1).await;
        assert!(!again.allowed, "one unit per 100 ms: {again:?}");
        assert!((50..=100).contains(&again.retry_after_ms), "{again:?}");
    }
}

/// Waiting `retry_after_ms` is enough for the same cost, and waiting
/// `reset_after_ms` gives back the whole limit, under both algorithms.
pub async fn waiting_retry_after_is_enough_and_reset_after_refills(make: impl MakeLimiter) {
    let limiter = make(both(4, 400)).await;
    for rule in BOTH {
        acquire(&limiter, rule, "k", 3).await;
        let refused = acquire(&limiter, rule, "k", 2).await;
        assert!(!refused.allowed, "{rule}: {refused:?}");
        sleep(Duration::from_millis(refused.retry_after_ms)).await;
        let d = acquire(&limiter, rule, "k", 2).await;
        assert!(d.allowed, "{rule} after retry_after_ms: {d:?}");
        sleep(Duration::from_millis(d.reset_after_ms)).await;
        let d = limiter.check(rule, "k", 4).await.unwrap();
        assert!(d.allowed, "{rule} after reset_after_ms: {d:?}");
        assert_eq!(d.remaining, 4, "{rule}: {d:?}");
    }
}

/// `check` says what `acquire` would do and takes nothing.
pub async fn check_does_not_consume(make: impl MakeLimiter) {
    let limiter = make(both(3, 60_000)).await;
    for rule in BOTH {
        for _ in 0..20 {
            let d = limiter.check(rule, "k", 1).await.unwrap();
            assert!(d.allowed && d.remaining == 3, "{rule}: {d:?}");
        }
        for _ in 0..3 {
            assert!(acquire(&limiter, rule, "k", 1).await.allowed);
        }
        let d = limiter.check(rule, "k", 1).await.unwrap();
        assert!(!d.allowed && d.retry_after_ms > 0, "{rule}: {d:?}");
        assert_eq!(limiter.metrics().decisions(rule, false, true), 20);
        assert_eq!(limiter.metrics().decisions(rule, false, false), 1);
    }
}

/// A cost takes that many units; a refused cost takes none.
pub async fn a_cost_takes_that_many_units(make: impl MakeLimiter) {
    let limiter = make(both(10, 60_000)).await;
    for rule in BOTH {
        assert_eq!(acquire(&limiter, rule, "k", 4).await.remaining, 6, "{rule}");
        assert_eq!(acquire(&limiter, rule, "k", 4).await.remaining, 2, "{rule}");
        let refused = acquire(&limiter, rule, "k", 4).await;
        assert!(!refused.allowed, "{rule}: {refused:?}");
        assert_eq!(refused.remaining, 2, "{rule}: the refusal took nothing");
        let last = acquire(&limiter, rule, "k", 2).await;
        assert!(last.allowed && last.remaining == 0, "{rule}: {last:?}");
    }
}

/// Keys are limited apart, and so are rules on the same key.
pub async fn keys_and_rules_are_independent(make: impl MakeLimiter) {
    let limiter = make(both(2, 60_000)).await;
    acquire(&limiter, "window", "a", 2).await;
    assert!(!acquire(&limiter, "window", "a", 1).await.allowed);
    assert!(acquire(&limiter, "window", "b", 2).await.allowed);
    assert!(acquire(&limiter, "gcra", "a", 2).await.allowed);
}

/// `reset` forgets what a key took, and says whether it had taken anything.
pub async fn reset_forgets_what_a_key_took(make: impl MakeLimiter) {
    let limiter = make(both(2, 60_000)).await;
    for rule in BOTH {
        acquire(&limiter, rule, "k", 2).await;
        assert!(!acquire(&limiter, rule, "k", 1).await.allowed);
        assert!(limiter.reset(rule, "k").await.unwrap(), "{rule}");
        assert!(acquire(&limiter, rule, "k", 2).await.allowed, "{rule}");
        assert!(!limiter.reset(rule, "untouched").await.unwrap(), "{rule}");
    }
}

/// Many callers at once on one key: exactly `limit` are allowed.
pub async fn concurrent_acquires_never_exceed_the_limit(make: impl MakeLimiter) {
    let limiter = make(both(10, 60_000)).await;
    for rule in BOTH {
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire(rule, "hot", 1).await })
            })
            .collect();
        let mut allowed = 0;
        for caller in callers {
            allowed += u64::from(caller.await.unwrap().unwrap().allowed);
        }
        assert_eq!(allowed, 10, "{rule}");
    }
}

/// Bad input is refused naming the field; a cost over what the rule allows at once
/// is refused as never allowed.
pub async fn bad_input_is_refused_naming_the_field(make: impl MakeLimiter) {
    let mut config = with_rules(&[
        ("window", RuleConfig::sliding_window(10, 1_000)),
        ("gcra", RuleConfig::gcra(10, 1_000, 5)),
    ]);
    config.max_key_bytes = 16;
    config.max_cost = 100;
    let limiter = make(config).await;
    let long = "k".repeat(17);
    let cases = [
        ("window", "", 1, "/key"),
        ("window", long.as_str(), 1, "/key"),
        ("window", "k", 0, "/cost"),
        ("window", "k", 101, "/cost"),
        ("nowhere", "k", 1, "/rule"),
    ];
    for (rule, key, cost, field) in cases {
        for consume in [false, true] {
            let err = if consume {
                limiter.acquire(rule, key, cost).await
            } else {
                limiter.check(rule, key, cost).await
            };
            let err = err.unwrap_err();
            assert_eq!(field_of(&err), field, "{rule} {key:?} {cost}: {err}");
        }
    }
    for (rule, cost, capacity) in [("window", 11, 10), ("gcra", 6, 5)] {
        let err = limiter.acquire(rule, "k", cost).await.unwrap_err();
        assert_eq!(
            err,
            LimitError::NeverAllowed {
                rule: rule.to_owned(),
                cost,
                capacity
            }
        );
        assert!(err.to_string().contains("can never be allowed"), "{err}");
    }
    let err = limiter.reset("nowhere", "k").await.unwrap_err();
    assert_eq!(field_of(&err), "/rule");
    assert_eq!(
        limiter.metrics().rejections(crate::Rejected::NeverAllowed),
        2
    );
}

/// Runs every case of the suite as a `#[tokio::test]`, each with a fresh limiter
/// from `$make` (an `async` closure from [`LimitsConfig`] to [`Limiter`]).
/// `paused: true` runs them under paused time (for in-process backends).
#[macro_export]
macro_rules! limits_conformance {
    (paused: $paused:literal, $make:expr) => {
        $crate::limits_conformance!(@tests $paused, $make;
            the_limit_is_honoured_within_a_window,
            a_burst_across_a_window_boundary_does_not_get_twice_the_limit,
            gcra_allows_a_burst_then_spaces_units,
            waiting_retry_after_is_enough_and_reset_after_refills,
            check_does_not_consume,
            a_cost_takes_that_many_units,
            keys_and_rules_are_independent,
            reset_forgets_what_a_key_took,
            concurrent_acquires_never_exceed_the_limit,
            bad_input_is_refused_naming_the_field,
        );
    };
    (@tests $paused:literal, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread", start_paused = $paused)]
            async fn $name() {
                $crate::conformance::$name($make).await;
            }
        )*
    };
}
