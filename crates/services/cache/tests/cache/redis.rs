//! The Redis backend on the shared test server: the conformance suite plain and
//! two-tier, the loader lease across clients, and coherence of local tiers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use plexus_cache::conformance::{Gate, gated};
use plexus_cache::{Backend, Cache, CacheConfig};
use serde_json::json;

use crate::support::{client, eventually, redis_url, unique_prefix};

mod plain {
    plexus_cache::cache_conformance!(paused: false, |config| async move {
        crate::support::redis_cache(config, false).await
    });
}

mod two_tier {
    plexus_cache::cache_conformance!(paused: false, |config| async move {
        crate::support::redis_cache(config, true).await
    });
}

fn on_redis() -> CacheConfig {
    CacheConfig {
        backend: Backend::Redis,
        ..CacheConfig::default()
    }
}

fn total(clients: &[Cache], what: impl Fn(&plexus_cache::NamespaceStats) -> u64) -> u64 {
    clients
        .iter()
        .map(|c| what(&c.stats().namespaces["default"]))
        .sum()
}

/// Three clients of one Redis (as three processes would be), each with 100
/// concurrent misses of one key: the loader runs once among all 300; once the entry
/// has expired, once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_load_a_missing_key_once_per_expiry_window() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let clients: Vec<Cache> = (0..3)
        .map(|_| client(on_redis(), &url, &prefix).0)
        .collect();
    let calls = Arc::new(AtomicUsize::new(0));
    for window in 1..=2_u64 {
        let missed = total(&clients, |s| s.misses);
        let gate = Gate::new();
        let mut callers = Vec::new();
        for cache in &clients {
            for _ in 0..100 {
                let (cache, load) = (cache.clone(), gated(&gate, &calls, json!(window)));
                callers.push(tokio::spawn(async move {
                    cache.get_or_load(None, "hot", Some(500), load).await
                }));
            }
        }
        eventually("all 300 callers miss", || async {
            total(&clients, |s| s.misses) == missed + 300
        })
        .await;
        gate.open();
        for caller in callers {
            let got = caller.await.unwrap().unwrap();
            assert_eq!(got.value, Some(json!(window)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), window as usize);
        assert_eq!(total(&clients, |s| s.loads), window);
        assert_eq!(total(&clients, |s| s.stampede_loads_avoided), 299 * window);
        eventually("the entry expires", || async {
            clients[0].get(None, "hot").await.unwrap().is_none()
        })
        .await;
    }
}

/// Two nodes with local tiers: a write, a delete or a prefix invalidation on one
/// evicts the other's local copy, so it reads the new value long before its copy
/// would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_node_evicts_the_others_local_copy() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let config = CacheConfig {
        two_tier: true,
        local_ttl_ms: 600_000,
        ..on_redis()
    };
    let (a, a_store) = client(config.clone(), &url, &prefix);
    let (b, b_store) = client(config, &url, &prefix);
    eventually("both local tiers subscribe", || async {
        a_store.local_tier_live() && b_store.local_tier_live()
    })
    .await;
    assert_eq!(b.backend(), "redis+local");

    a.set(None, "k", json!(1), None).await.unwrap();
    // The message of a's write may reach b after b's first read and evict its copy.
    eventually("b keeps a local copy", || async {
        b.get(None, "k").await.unwrap() == Some(json!(1)) && b.stats().local_entries == Some(1)
    })
    .await;
    a.set(None, "k", json!(2), None).await.unwrap();
    eventually("b reads the new value", || async {
        b.get(None, "k").await.unwrap() == Some(json!(2))
    })
    .await;
    assert!(b.stats().invalidations_received >= 1);

    a.delete(None, "k").await.unwrap();
    eventually("b sees the delete", || async {
        b.get(None, "k").await.unwrap().is_none()
    })
    .await;

    a.set(None, "user:1", json!("u"), None).await.unwrap();
    assert_eq!(b.get(None, "user:1").await.unwrap(), Some(json!("u")));
    assert_eq!(a.invalidate_prefix(None, "user:").await.unwrap(), 1);
    eventually("b sees the prefix invalidation", || async {
        b.get(None, "user:1").await.unwrap().is_none()
    })
    .await;
}
