//! Retry: attempts, predicates, backoff and jitter bounds, deadline, budget.

use std::time::Duration;

use plexus_resilience::{
    Backoff, BudgetConfig, DeadlineExceeded, Jitter, ResilienceBuilderExt, Retry, deadline,
};
use tokio::time::Instant;
use tower::ServiceBuilder;

use crate::support::{Mock, MockError, call};

fn fixed(ms: u64) -> Backoff {
    Backoff::Fixed(Duration::from_millis(ms))
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_with_the_backoff_between_attempts() {
    let retry = Retry::builder()
        .max_attempts(5)
        .backoff(fixed(100))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.service::<()>(
        |_| Duration::ZERO,
        |n| if n < 2 { Err(MockError("busy")) } else { Ok(n) },
    ));
    let started = Instant::now();
    assert_eq!(call(&mut service, ()).await.unwrap(), 2);
    assert_eq!(mock.count(), 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "two waits of 100 ms"
    );
    let m = retry.metrics();
    assert_eq!((m.calls_total, m.retries_total), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn stops_at_max_attempts_with_the_last_error() {
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(fixed(1))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.failing::<()>());
    let err = call(&mut service, ()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<MockError>(), Some(&MockError("down")));
    assert_eq!(mock.count(), 3);
    assert_eq!(retry.metrics().attempts_exhausted_total, 1);
}

#[tokio::test(start_paused = true)]
async fn only_errors_matching_the_predicate_are_retried() {
    let retry = Retry::builder()
        .max_attempts(5)
        .backoff(fixed(1))
        .no_budget()
        .retry_if(|e| e.downcast_ref::<MockError>() == Some(&MockError("busy")))
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.service::<()>(
        |_| Duration::ZERO,
        |n| {
            Err(if n == 0 {
                MockError("busy")
            } else {
                MockError("invalid")
            })
        },
    ));
    let err = call(&mut service, ()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<MockError>(), Some(&MockError("invalid")));
    assert_eq!(mock.count(), 2, "retried once, then a non-retryable error");
}

#[tokio::test(start_paused = true)]
async fn results_matching_the_result_predicate_are_retried() {
    let retry = Retry::builder()
        .max_attempts(5)
        .backoff(fixed(1))
        .no_budget()
        .retry_if_result(|n: &usize| *n < 3)
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.healthy::<()>());
    assert_eq!(call(&mut service, ()).await.unwrap(), 3);
    assert_eq!(mock.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn plain_wrapper_retries_a_closure() {
    let retry = Retry::builder()
        .max_attempts(4)
        .backoff(fixed(10))
        .no_budget()
        .build()
        .unwrap();
    let mut tries = 0;
    let out = retry
        .run(|| {
            tries += 1;
            let n = tries;
            async move { if n < 4 { Err(MockError("busy")) } else { Ok(n) } }
        })
        .await;
    assert_eq!(out.unwrap(), 4);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_before_the_callers_deadline() {
    let retry = Retry::builder()
        .max_attempts(100)
        .backoff(fixed(300))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = ServiceBuilder::new()
        .deadline(Duration::from_secs(1))
        .retry_with(retry.clone())
        .service(mock.failing::<()>());
    let started = Instant::now();
    let err = call(&mut service, ()).await.unwrap_err();
    // Attempts at 0, 300, 600 and 900 ms; the next would start at 1200 > 1000 ms.
    assert_eq!(mock.count(), 4);
    assert_eq!(
        err.downcast_ref::<MockError>(),
        Some(&MockError("down")),
        "{err}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(900),
        "no wait past the deadline"
    );
    assert_eq!(retry.metrics().deadline_stops_total, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_cut_by_the_deadline_and_not_retried_past_it() {
    let retry = Retry::builder()
        .max_attempts(10)
        .backoff(fixed(10))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let out = deadline::within(Duration::from_millis(500), async {
        retry
            .run(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, MockError>(())
            })
            .await
    })
    .await;
    let err = out.unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some(), "{err}");
    assert_eq!(mock.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_bounds_the_retries() {
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(Duration::from_millis(250))
        .backoff(fixed(100))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.failing::<()>());
    call(&mut service, ()).await.unwrap_err();
    assert_eq!(mock.count(), 3, "attempts at 0, 100 and 200 ms");
}

#[tokio::test(start_paused = true)]
async fn retries_stay_inside_the_budget() {
    // 10% of calls may be retried, with no floor.
    let retry = Retry::builder()
        .max_attempts(5)
        .backoff(Backoff::Fixed(Duration::ZERO))
        .budget(BudgetConfig {
            ttl_secs: 10,
            min_per_sec: 0,
            retry_ratio: 0.1,
        })
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = retry.layer(mock.failing::<()>());
    for _ in 0..100 {
        call(&mut service, ()).await.unwrap_err();
    }
    let m = retry.metrics();
    assert!(
        m.retries_total <= 10,
        "{} retries for 100 calls",
        m.retries_total
    );
    assert!(
        m.retries_total >= 9,
        "the budget is used, not wasted: {}",
        m.retries_total
    );
    assert_eq!(mock.count() as u64, 100 + m.retries_total);
    assert!(m.budget_exhausted_total >= 90);
}

#[test]
fn full_jitter_stays_in_its_bounds_and_the_cap_holds() {
    let backoff = Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(2));
    for n in 1..=10u32 {
        let top = backoff.max_delay(n);
        let expected = Duration::from_millis((100u64 << (n - 1)).min(2000));
        assert_eq!(top, expected, "retry {n}");
        assert_eq!(backoff.min_delay(n), Duration::ZERO);
        let mut below_half = false;
        let mut above_half = false;
        for _ in 0..2000 {
            let d = backoff.delay(n);
            assert!(d <= top, "retry {n}: {d:?} over {top:?}");
            below_half |= d < top / 2;
            above_half |= d > top / 2;
        }
        assert!(
            below_half && above_half,
            "retry {n}: jitter covers its range"
        );
    }
}

#[test]
fn equal_jitter_and_no_jitter_stay_in_their_bounds() {
    let equal = Backoff::Exponential {
        initial: Duration::from_millis(100),
        multiplier: 3.0,
        max: Duration::from_secs(1),
        jitter: Jitter::Equal,
    };
    for n in 1..=5 {
        for _ in 0..1000 {
            let d = equal.delay(n);
            assert!(d >= equal.max_delay(n) / 2 && d <= equal.max_delay(n));
        }
    }
    let none = Backoff::Exponential {
        initial: Duration::from_millis(100),
        multiplier: 3.0,
        max: Duration::from_secs(1),
        jitter: Jitter::None,
    };
    assert_eq!(none.delay(2), Duration::from_millis(300));
    assert_eq!(none.delay(5), Duration::from_secs(1));
    let schedule =
        Backoff::Schedule(vec![Duration::from_millis(5), Duration::from_millis(50)].into());
    assert_eq!(
        (schedule.delay(1), schedule.delay(2), schedule.delay(9)),
        (
            Duration::from_millis(5),
            Duration::from_millis(50),
            Duration::from_millis(50)
        )
    );
    let custom = Backoff::Custom(std::sync::Arc::new(|n| {
        Duration::from_millis(u64::from(n) * 7)
    }));
    assert_eq!(custom.delay(3), Duration::from_millis(21));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_retried_no_sooner_than_it_was_told() {
    use plexus_resilience::{RateLimitConfig, RateLimiter};
    let limiter = RateLimiter::new(
        "api",
        RateLimitConfig::Gcra {
            per_second: 2.0,
            burst: 1,
        },
    )
    .unwrap();
    let retry = Retry::builder()
        .max_attempts(2)
        .backoff(fixed(1))
        .no_budget()
        .build()
        .unwrap();
    let mock = Mock::new();
    let mut service = ServiceBuilder::new()
        .retry_with(retry)
        .rate_limiter(&limiter)
        .service(mock.healthy::<()>());
    call(&mut service, ()).await.unwrap();
    let started = Instant::now();
    call(&mut service, ())
        .await
        .expect("the retry waits out the limit");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(500),
        "waited retry_after, not 1 ms"
    );
    assert_eq!(mock.count(), 2);
}
