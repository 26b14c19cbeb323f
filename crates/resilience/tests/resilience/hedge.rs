//! Hedging idempotent calls after a latency percentile.

use std::time::Duration;

use plexus_resilience::{BoxError, Hedge, HedgeConfig, HedgeService};
use tokio::time::Instant;
use tower::util::BoxCloneService;

use crate::support::{Mock, call};

fn hedge() -> Hedge<bool> {
    Hedge::new(
        HedgeConfig {
            latency_percentile: 90.0,
            min_data_points: 10,
            period_ms: 1000,
            delay_ms: None,
        },
        |idempotent: &bool| *idempotent,
    )
    .expect("a valid hedge configuration")
}

/// A hedged service whose call 20 hangs and every other takes 10 ms, after its first
/// 20 calls (idempotent or not) and the rotation of its latency histogram, so that
/// the 20 latencies are read.
async fn after_twenty_calls(
    mock: &Mock,
    idempotent: bool,
) -> HedgeService<BoxCloneService<bool, usize, BoxError>, bool> {
    let inner = mock.slow_at(20, Duration::from_secs(10), Duration::from_millis(10));
    let mut service = hedge().layer(inner);
    for _ in 0..20 {
        call(&mut service, idempotent)
            .await
            .expect("a call before the hedge is read");
    }
    tokio::time::advance(Duration::from_millis(900)).await;
    service
}

#[tokio::test(start_paused = true)]
async fn a_slow_idempotent_call_is_hedged_and_the_fast_copy_wins() {
    let mock = Mock::new();
    let mut service = after_twenty_calls(&mock, true).await;
    let started = Instant::now();
    let answer = call(&mut service, true).await.unwrap();
    assert_eq!(answer, 21, "the hedged copy answered");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(mock.count(), 22);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_is_not_idempotent_is_never_hedged() {
    let mock = Mock::new();
    let mut service = after_twenty_calls(&mock, false).await;
    assert_eq!(call(&mut service, false).await.unwrap(), 20);
    assert_eq!(mock.count(), 21);
}
