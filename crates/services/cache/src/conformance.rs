//! The suite every cache backend must pass (feature `test-util`).
//!
//! Each function takes `make`, which builds a fresh, empty [`Cache`] held to the
//! configuration it is given, and panics on a violation. Run them all with
//! [`cache_conformance!`](crate::cache_conformance):
//!
//! ```no_run
//! plexus_cache::cache_conformance!(paused: true, |config| async move {
//!     plexus_cache::Cache::in_memory(config)
//! });
//! ```
//!
//! Time-driven cases wait for what they expect with a bound, looking again every few
//! milliseconds: under paused time (`paused: true`, for in-process backends) Tokio
//! moves the clock forward while the test waits; against a server the wait is real.
//!
//! The functions panic (they are tests): `unwrap_used` is allowed here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use plexus_core::ServiceError;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{Cache, CacheConfig, CacheError, NamespaceConfig, Rejected};

pub use plexus_redis::testing::{Gate, PATIENCE, eventually};

fn field_of(error: &CacheError) -> &str {
    match error {
        CacheError::Invalid { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// Values of every JSON type come back as written; a write replaces.
pub async fn set_then_get_round_trips_json<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    let values = [
        json!(null),
        json!(true),
        json!(-12.5),
        json!("text with \n newline and ünïcode"),
        json!([1, "two", {"three": 3}]),
        json!({"nested": {"deep": [null, false]}}),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        cache.set(None, &key, value.clone(), None).await.unwrap();
        assert_eq!(cache.get(None, &key).await.unwrap().as_ref(), Some(value));
    }
    cache
        .set(None, "k0", json!("replaced"), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get(None, "k0").await.unwrap(),
        Some(json!("replaced"))
    );
    let stats = cache.stats();
    assert_eq!(stats.namespaces["default"].hits, 7);
    assert_eq!(stats.namespaces["default"].misses, 0);
}

/// A key never written is a miss, counted.
pub async fn missing_key_is_none_and_counted<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    assert_eq!(cache.get(None, "nothing").await.unwrap(), None);
    assert_eq!(cache.stats().namespaces["default"].misses, 1);
}

/// Delete says whether the key was there, and the key is gone after it.
pub async fn delete_says_whether_the_key_was_there<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    cache.set(None, "k", json!(1), None).await.unwrap();
    assert!(cache.delete(None, "k").await.unwrap());
    assert!(!cache.delete(None, "k").await.unwrap());
    assert_eq!(cache.get(None, "k").await.unwrap(), None);
}

fn with_namespace(name: &str, ns: NamespaceConfig) -> CacheConfig {
    let mut config = CacheConfig::default();
    config.namespaces.insert(name.to_owned(), ns);
    config
}

/// The same key in two namespaces is two entries; an unknown namespace is refused.
pub async fn namespaces_keep_keys_apart<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(with_namespace("other", NamespaceConfig::default())).await;
    cache.set(None, "k", json!("default"), None).await.unwrap();
    cache
        .set(Some("other"), "k", json!("other"), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get(Some("default"), "k").await.unwrap(),
        Some(json!("default"))
    );
    assert_eq!(
        cache.get(Some("other"), "k").await.unwrap(),
        Some(json!("other"))
    );
    cache.delete(Some("other"), "k").await.unwrap();
    assert_eq!(cache.get(None, "k").await.unwrap(), Some(json!("default")));
    let err = cache.get(Some("nowhere"), "k").await.unwrap_err();
    assert_eq!(field_of(&err), "/namespace");
    let err = cache
        .set(Some("nowhere"), "k", json!(1), None)
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "/namespace");
}

/// An entry is there until its TTL passes (its own, or its namespace's), then gone.
pub async fn entries_expire_after_their_ttl<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let short = NamespaceConfig {
        ttl_ms: Some(200),
        max_ttl_ms: None,
    };
    let cache = make(with_namespace("short", short)).await;
    let started = Instant::now();
    let ttl = cache.set(None, "k", json!(1), Some(300)).await.unwrap();
    assert_eq!(ttl, Duration::from_millis(300));
    let ttl = cache.set(Some("short"), "k", json!(2), None).await.unwrap();
    assert_eq!(ttl, Duration::from_millis(200));
    cache
        .set(None, "long", json!(3), Some(60_000))
        .await
        .unwrap();
    assert_eq!(cache.get(None, "k").await.unwrap(), Some(json!(1)));
    eventually("the 300 ms entry expires", || async {
        cache.get(None, "k").await.unwrap().is_none()
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(cache.get(Some("short"), "k").await.unwrap(), None);
    assert_eq!(cache.get(None, "long").await.unwrap(), Some(json!(3)));
}

/// `get_many` answers in the order asked, `None` for the missing.
pub async fn get_many_answers_in_order<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    cache.set(None, "a", json!("A"), None).await.unwrap();
    cache.set(None, "c", json!("C"), None).await.unwrap();
    let keys = ["c", "b", "a"].map(str::to_owned);
    let got = cache.get_many(None, &keys).await.unwrap();
    assert_eq!(got, vec![Some(json!("C")), None, Some(json!("A"))]);
    assert!(cache.get_many(None, &[]).await.unwrap().is_empty());
    let stats = &cache.stats().namespaces["default"];
    assert_eq!((stats.hits, stats.misses), (2, 1));
}

/// Invalidation by key removes that key; by prefix, every key of the namespace
/// that starts with it (glob characters are literal), and nothing else.
pub async fn invalidate_by_key_and_by_prefix<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(with_namespace("other", NamespaceConfig::default())).await;
    for key in ["user:1", "user:2", "user:*", "order:1", "a*b", "axb"] {
        cache.set(None, key, json!(key), None).await.unwrap();
    }
    cache
        .set(Some("other"), "user:1", json!(1), None)
        .await
        .unwrap();
    assert_eq!(cache.invalidate_prefix(None, "user:").await.unwrap(), 3);
    assert_eq!(cache.get(None, "user:1").await.unwrap(), None);
    assert_eq!(
        cache.get(None, "order:1").await.unwrap(),
        Some(json!("order:1"))
    );
    assert_eq!(
        cache.get(Some("other"), "user:1").await.unwrap(),
        Some(json!(1))
    );
    assert_eq!(cache.invalidate_prefix(None, "a*").await.unwrap(), 1);
    assert_eq!(cache.get(None, "axb").await.unwrap(), Some(json!("axb")));
    assert!(cache.delete(None, "order:1").await.unwrap());
    assert_eq!(cache.invalidate_prefix(None, "").await.unwrap(), 1); // axb
    assert_eq!(
        cache.get(Some("other"), "user:1").await.unwrap(),
        Some(json!(1))
    );
}

/// Oversized keys and values, bad TTLs, oversized batches and unknown namespaces
/// are refused naming the field, counted, and nothing is written.
pub async fn bad_input_is_refused_naming_the_field<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let config = CacheConfig {
        max_key_bytes: 16,
        max_value_bytes: 64,
        max_batch: 3,
        max_ttl_ms: 1_000,
        ttl_ms: 500,
        ..CacheConfig::default()
    };
    let cache = make(config).await;
    let long_key = "k".repeat(17);
    let big = json!("v".repeat(100));
    let cases: Vec<(Result<(), CacheError>, &str)> = vec![
        (cache.set(None, "", json!(1), None).await.map(drop), "/key"),
        (
            cache.set(None, &long_key, json!(1), None).await.map(drop),
            "/key",
        ),
        (cache.get(None, &long_key).await.map(drop), "/key"),
        (cache.set(None, "k", big, None).await.map(drop), "/value"),
        (
            cache.set(None, "k", json!(1), Some(0)).await.map(drop),
            "/ttl_ms",
        ),
        (
            cache.set(None, "k", json!(1), Some(1_001)).await.map(drop),
            "/ttl_ms",
        ),
        (
            cache.set(Some("nope"), "k", json!(1), None).await.map(drop),
            "/namespace",
        ),
        (
            cache.invalidate_prefix(None, &long_key).await.map(drop),
            "/prefix",
        ),
    ];
    for (i, (result, field)) in cases.into_iter().enumerate() {
        let err = result.unwrap_err();
        assert_eq!(field_of(&err), field, "case {i}: {err}");
    }
    let four = ["a", "b", "c", "d"].map(str::to_owned);
    let err = cache.get_many(None, &four).await.unwrap_err();
    assert_eq!(field_of(&err), "/keys");
    let bad = ["a".to_owned(), long_key.clone()];
    let err = cache.get_many(None, &bad).await.unwrap_err();
    assert_eq!(field_of(&err), "/keys/1");
    let loaded = cache
        .get_or_load(None, "k", Some(0), || async { Ok(json!(1)) })
        .await;
    assert_eq!(field_of(&loaded.unwrap_err()), "/ttl_ms");
    assert_eq!(cache.get(None, "k").await.unwrap(), None);
    let m = cache.metrics();
    assert_eq!(m.rejections(Rejected::KeyTooLarge), 4);
    assert_eq!(m.rejections(Rejected::ValueTooLarge), 1);
    assert_eq!(m.rejections(Rejected::BatchTooLarge), 1);
}

/// A boxed loader, as [`Cache::get_or_load`] takes one.
pub type Loader = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<Value, ServiceError>> + Send>>
        + Send,
>;

/// A loader that waits at `gate`, counts its calls in `calls`, and answers `value`.
pub fn gated(gate: &Gate, calls: &Arc<AtomicUsize>, value: Value) -> Loader {
    let (gate, calls) = (gate.clone(), calls.clone());
    Box::new(move || {
        Box::pin(async move {
            gate.wait().await;
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(value)
        })
    })
}

/// 1,000 concurrent misses of one key run its loader once; every caller gets its
/// value, 999 of them counted as loads avoided; then it is a hit.
pub async fn concurrent_misses_load_once<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..1_000 {
        let (cache, load) = (cache.clone(), gated(&gate, &calls, json!("loaded")));
        callers.push(tokio::spawn(async move {
            cache.get_or_load(None, "hot", None, load).await
        }));
    }
    eventually("all 1,000 callers miss", || async {
        cache.stats().namespaces["default"].misses == 1_000
    })
    .await;
    gate.open();
    for caller in callers {
        let got = caller.await.unwrap().unwrap();
        assert_eq!((got.value, got.hit), (Some(json!("loaded")), false));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = &cache.stats().namespaces["default"];
    assert_eq!((stats.loads, stats.stampede_loads_avoided), (1, 999));
    let got = cache
        .get_or_load(None, "hot", None, gated(&gate, &calls, json!("again")))
        .await
        .unwrap();
    assert_eq!((got.value, got.hit), (Some(json!("loaded")), true));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A loader's failure reaches the caller and caches nothing; the next miss loads
/// again.
pub async fn a_failed_load_is_not_cached<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let cache = make(CacheConfig::default()).await;
    let err = cache
        .get_or_load(None, "k", None, || async {
            Err(ServiceError::failed("origin said no"))
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CacheError::Load(ServiceError::failed("origin said no"))
    );
    assert_eq!(cache.get(None, "k").await.unwrap(), None);
    let got = cache
        .get_or_load(None, "k", Some(60_000), || async { Ok(json!("second")) })
        .await
        .unwrap();
    assert_eq!(got.value, Some(json!("second")));
    let stats = &cache.stats().namespaces["default"];
    assert_eq!((stats.loads, stats.load_errors), (1, 1));
}

/// A loader that takes `took` and answers how many times it was called.
pub fn counting(calls: &Arc<AtomicUsize>, took: Duration) -> Loader {
    let calls = calls.clone();
    Box::new(move || {
        Box::pin(async move {
            // The load's own latency, which early refresh weighs.
            tokio::time::sleep(took).await;
            Ok(json!(calls.fetch_add(1, Ordering::SeqCst) + 1))
        })
    })
}

/// With early refresh on, hits on a loaded key reload it in the background before
/// it expires: callers keep hitting (never a miss) and come to see the new value.
pub async fn early_refresh_reloads_a_hot_key_before_expiry<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let config = CacheConfig {
        early_refresh_beta: 100.0,
        ..CacheConfig::default()
    };
    let cache = make(config).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let took = Duration::from_millis(20);
    let first = cache
        .get_or_load(None, "hot", Some(2_000), counting(&calls, took))
        .await
        .unwrap();
    assert_eq!(first.value, Some(json!(1)));
    eventually("a hit comes back refreshed", || async {
        let got = cache
            .get_or_load(None, "hot", Some(2_000), counting(&calls, took))
            .await
            .unwrap();
        assert!(got.hit, "a hot key was missed: {got:?}");
        got.value != Some(json!(1))
    })
    .await;
    let stats = &cache.stats().namespaces["default"];
    assert!(stats.early_refreshes >= 1, "{stats:?}");
    assert_eq!(stats.misses, 1, "{stats:?}");
}

/// With `early_refresh_beta = 0`, hits never reload.
pub async fn no_early_refresh_when_switched_off<M, F>(make: M)
where
    M: Fn(CacheConfig) -> F,
    F: Future<Output = Cache>,
{
    let config = CacheConfig {
        early_refresh_beta: 0.0,
        ..CacheConfig::default()
    };
    let cache = make(config).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let took = Duration::from_millis(20);
    cache
        .get_or_load(None, "k", Some(400), counting(&calls, took))
        .await
        .unwrap();
    for _ in 0..20 {
        let got = cache
            .get_or_load(None, "k", Some(400), counting(&calls, took))
            .await
            .unwrap();
        assert!(got.hit);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().namespaces["default"].early_refreshes, 0);
}

/// Runs every case of the suite as a `#[tokio::test]`, each with a fresh cache from
/// `$make` (an `async` closure from [`CacheConfig`] to [`Cache`]). `paused: true`
/// runs them under paused time (for in-process backends).
#[macro_export]
macro_rules! cache_conformance {
    (paused: $paused:literal, $make:expr) => {
        $crate::cache_conformance!(@tests $paused, $make;
            set_then_get_round_trips_json,
            missing_key_is_none_and_counted,
            delete_says_whether_the_key_was_there,
            namespaces_keep_keys_apart,
            entries_expire_after_their_ttl,
            get_many_answers_in_order,
            invalidate_by_key_and_by_prefix,
            bad_input_is_refused_naming_the_field,
            concurrent_misses_load_once,
            a_failed_load_is_not_cached,
            early_refresh_reloads_a_hot_key_before_expiry,
            no_early_refresh_when_switched_off,
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
