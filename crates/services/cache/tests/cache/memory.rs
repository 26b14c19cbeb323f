//! The in-process backend: the conformance suite under paused time, and its byte cap.

use plexus_cache::{Cache, CacheConfig};
use serde_json::json;

plexus_cache::cache_conformance!(paused: true, |config| async move { Cache::in_memory(config) });

/// Past `max_bytes`, entries are evicted and counted, and the tier stays under its
/// cap.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_byte_cap_evicts_and_counts() {
    let config = CacheConfig {
        max_bytes: 64 * 1024,
        ..CacheConfig::default()
    };
    let cache = Cache::in_memory(config);
    let value = json!("x".repeat(1_000));
    for i in 0..500 {
        cache
            .set(None, &format!("k{i}"), value.clone(), None)
            .await
            .unwrap();
    }
    let stats = cache.stats();
    assert!(stats.local_bytes.unwrap() <= 64 * 1024, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.local_entries.unwrap() < 500, "{stats:?}");
    assert_eq!(stats.backend, "memory");
}
