//! Rate limits: GCRA and the sliding window, with retry-after.

use std::time::Duration;

use plexus_resilience::{RateLimitConfig, RateLimitLayer, RateLimited, RateLimiter};
use tower::Layer;

use crate::support::{Mock, call};

#[tokio::test(start_paused = true)]
async fn gcra_allows_the_burst_then_refills_at_the_rate() {
    let limiter = RateLimiter::new(
        "api",
        RateLimitConfig::Gcra {
            per_second: 4.0,
            burst: 3,
        },
    )
    .unwrap();
    for _ in 0..3 {
        limiter.check().unwrap();
    }
    let limited = limiter.check().unwrap_err();
    assert_eq!(limited.retry_after, Duration::from_millis(250));
    tokio::time::advance(Duration::from_millis(249)).await;
    assert!(limiter.check().is_err());
    tokio::time::advance(Duration::from_millis(1)).await;
    limiter.check().unwrap();
    assert!(limiter.check().is_err(), "one token refilled, one spent");
    let m = limiter.metrics();
    assert_eq!((m.admitted_total, m.rejected_total), (4, 3));
}

#[tokio::test(start_paused = true)]
async fn the_sliding_window_counts_exactly_the_last_window() {
    let limiter = RateLimiter::new(
        "api",
        RateLimitConfig::SlidingWindow {
            limit: 3,
            window_ms: 1000,
        },
    )
    .unwrap();
    limiter.check().unwrap();
    tokio::time::advance(Duration::from_millis(400)).await;
    limiter.check().unwrap();
    limiter.check().unwrap();
    let limited = limiter.check().unwrap_err();
    assert_eq!(
        limited.retry_after,
        Duration::from_millis(600),
        "until the first call leaves"
    );
    tokio::time::advance(Duration::from_millis(600)).await;
    limiter.check().unwrap();
    assert_eq!(
        limiter.check().unwrap_err().retry_after,
        Duration::from_millis(400)
    );
}

#[tokio::test(start_paused = true)]
async fn the_layer_rejects_with_a_typed_error_and_does_not_call() {
    let limiter = RateLimiter::new(
        "api",
        RateLimitConfig::Gcra {
            per_second: 1.0,
            burst: 1,
        },
    )
    .unwrap();
    let mock = Mock::new();
    let mut service = RateLimitLayer::new(limiter).layer(mock.healthy::<()>());
    call(&mut service, ()).await.unwrap();
    let err = call(&mut service, ()).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(limited.retry_after, Duration::from_secs(1));
    assert_eq!(mock.count(), 1);
}
