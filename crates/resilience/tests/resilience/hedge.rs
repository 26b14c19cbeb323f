//! Hedging idempotent calls after a latency percentile.

use std::time::Duration;

use plexus_resilience::{Hedge, HedgeConfig};
use tokio::time::Instant;

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

#[tokio::test(start_paused = true)]
async fn a_slow_idempotent_call_is_hedged_and_the_fast_copy_wins() {
    let mock = Mock::new();
    // Call 20 hangs; every other call takes 10 ms.
    let inner = mock.service::<bool>(
        |n| {
            if n == 20 {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(10)
            }
        },
        Ok,
    );
    let mut service = hedge().layer(inner);
    for _ in 0..20 {
        call(&mut service, true).await.unwrap();
    }
    // Let the latency histogram rotate so the 20 latencies are read.
    tokio::time::advance(Duration::from_millis(900)).await;
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
    let inner = mock.service::<bool>(
        |n| {
            if n == 20 {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(10)
            }
        },
        Ok,
    );
    let mut service = hedge().layer(inner);
    for _ in 0..20 {
        call(&mut service, false).await.unwrap();
    }
    tokio::time::advance(Duration::from_millis(900)).await;
    assert_eq!(call(&mut service, false).await.unwrap(), 20);
    assert_eq!(mock.count(), 21);
}
