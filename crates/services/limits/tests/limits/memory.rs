//! The in-process backend: the conformance suite under paused time, and its key
//! cap.

use std::sync::Arc;
use std::time::Duration;

use plexus_limits::conformance::with_rules;
use plexus_limits::{Limiter, LimitsMetrics, MemoryBackend, RuleConfig};

plexus_limits::limits_conformance!(paused: true, |config| async move {
    Limiter::in_memory(config)
});

/// Past `max_keys`, keys are evicted and counted, and the backend stays under its
/// cap.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_key_cap_evicts_and_counts() {
    let mut config = with_rules(&[("api", RuleConfig::sliding_window(5, 60_000))]);
    config.max_keys = 100;
    let metrics = LimitsMetrics::new();
    let backend = Arc::new(MemoryBackend::new(
        100,
        Duration::from_secs(120),
        metrics.clone(),
    ));
    let limiter = Limiter::new(backend.clone(), config, metrics.clone());
    for i in 0..1_000 {
        let d = limiter
            .acquire("api", &format!("user:{i}"), 1)
            .await
            .unwrap();
        assert!(d.allowed);
    }
    assert!(backend.len() <= 100, "{} keys", backend.len());
    assert!(metrics.evictions() > 0);
    // A check of a key never seen keeps nothing.
    let before = backend.len();
    limiter.check("api", "never-acquired", 1).await.unwrap();
    assert!(backend.len() <= before);
}
