//! `plexus bench redis`: the platform services (cache, locks, rate limits) on Redis/Valkey, each beside the raw
//! `redis` crate sending the same commands in the same run, and the in-process cache
//! beside raw moka.
//!
//! Results (stable names):
//! - `cache_get_c16`, `cache_set_c16` (ops/s, 16 concurrent clients on one
//!   multiplexed connection): `Cache::get` / `Cache::set` on the Redis backend,
//!   beside a bare `ConnectionManager` sending the very pipelines the backend sends
//!   (`GET`+`PTTL`, and `SET PX`+`PUBLISH` of the invalidation message) and decoding
//!   or encoding the same JSON. Target: a ratio of at least 0.8.
//! - `lock_cycle_c16` (cycles/s as ops/s, 16 clients each on a lock of its own):
//!   `Locks::grant` then `Locks::release` on the Redis backend, beside the same two
//!   scripts (`RedisBackend::ACQUIRE_SCRIPT`, `RELEASE_SCRIPT`) invoked raw.
//!   Target: at least 0.8.
//! - `ratelimit_check_c16` (ops/s): `Limiter::check` of a GCRA rule on Redis,
//!   beside its script (`RedisBackend::GCRA_SCRIPT`) invoked raw with the same
//!   arguments. Target: at least 0.8.
//! - `platform_mix_c100` (requests/s) and `platform_mix_c100_p99` (µs): the agent
//!   platform's load test ([`crate::platform`]): 100 users on their own connections
//!   calling the cache, locks, rate limits and sessions of a node on Redis through
//!   `POST /rpc`, every answer checked. Its own figure, no ceiling; the target is
//!   ten times the 500 requests/s the mocked original claimed.
//! - `cache_local_hit` (ns per hit): `Cache::get` of an in-process entry, beside a
//!   bare moka `get` of the same value with its clone, moka built as a cache with
//!   the same duties is (a byte cap with a weigher, a TTL per entry). Target: at
//!   least 0.8.
//! - `cache_two_tier_hit` (ns per hit): the same on the Redis backend's local tier,
//!   beside the same bare moka.
//! - `stampede_loads` (loads): 1,000 concurrent misses of one key spread over three
//!   clients of one Redis (three connections, as three processes would have), each a
//!   cache of its own with single-flight in process and the loader lease across:
//!   how many times the loader ran (target: 1).
//!
//! Redis is `PLEXUS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); every key
//! is under a prefix of the run's own, removed at the end. Ours and the raw
//! alternate for a few rounds; the best round of each counts.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plexus_cache::{Backend, Cache, CacheConfig, CacheMetrics, RedisStore};
use plexus_redis::redis::aio::ConnectionManager;
use plexus_redis::{Redis, RedisConfig};
use serde_json::{Value, json};

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "redis";
const RAW: &str = "raw redis crate, same commands";
const MOKA: &str = "raw moka (byte cap, TTL per entry) get + clone";
const CLIENTS: usize = 16;
const KEYS: usize = 256;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

struct Plan {
    ops: usize,
    hits: usize,
    rounds: usize,
    misses: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                ops: 1_600,
                hits: 20_000,
                rounds: 1,
                misses: 300,
            }
        } else {
            Self {
                ops: 40_000,
                hits: 2_000_000,
                rounds: 3,
                misses: 1_000,
            }
        }
    }
}

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn value(i: usize) -> Value {
    json!({"id": i, "name": format!("item-{i}"), "tags": ["a", "b"], "score": 12.5})
}

/// Operations per second of `ops` calls of `op(client, i)` over [`CLIENTS`]
/// concurrent clients.
async fn per_second<F, Fut>(ops: usize, op: Arc<F>) -> Result<f64, BenchError>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send,
{
    let per_client = (ops / CLIENTS).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    op(client, i).await?;
                }
                Ok::<(), BenchError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(failed)??;
    }
    Ok((per_client * CLIENTS) as f64 / started.elapsed().as_secs_f64())
}

/// Ops/s of `ours` beside `raw` doing the same commands, over [`CLIENTS`]
/// clients, the best of alternating rounds, added to `report` as `name`.
async fn versus_raw<A, AF, B, BF>(
    name: &str,
    plan: &Plan,
    (report, progress): (&mut Report, &Progress),
    ours: A,
    raw: B,
) -> Result<(), BenchError>
where
    A: Fn(usize, usize) -> AF + Send + Sync + 'static,
    AF: Future<Output = Result<(), BenchError>> + Send,
    B: Fn(usize, usize) -> BF + Send + Sync + 'static,
    BF: Future<Output = Result<(), BenchError>> + Send,
{
    progress.step(name);
    let (ours, raw) = (Arc::new(ours), Arc::new(raw));
    let (mut a, mut b) = (0f64, 0f64);
    for _ in 0..plan.rounds {
        a = a.max(per_second(plan.ops, ours.clone()).await?);
        b = b.max(per_second(plan.ops, raw.clone()).await?);
    }
    report.results.push(
        BenchResult::new(name, Unit::OpsPerSecond, a, true)
            .with_ceiling(RAW, b)
            .with_target(">= 0.8 of raw"),
    );
    progress.done_step();
    Ok(())
}

/// Everything one run uses on Redis.
struct Setup {
    prefix: String,
    config: RedisConfig,
    raw: ConnectionManager,
}

impl Setup {
    async fn open() -> Result<Self, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let prefix = format!("plexus-bench:{}-{nanos}:", std::process::id());
        let config = RedisConfig {
            key_prefix: prefix.clone(),
            ..RedisConfig::with_url(redis_url())
        };
        let client = plexus_redis::redis::Client::open(config.url.as_str()).map_err(failed)?;
        let raw = ConnectionManager::new(client).await.map_err(|e| {
            failed(format!(
                "cannot reach redis at {} ({e}); start it or set PLEXUS_TEST_REDIS_URL",
                config.url
            ))
        })?;
        Ok(Self {
            prefix,
            config,
            raw,
        })
    }

    fn cache(&self, two_tier: bool) -> Result<(Cache, Arc<RedisStore>), BenchError> {
        let config = CacheConfig {
            backend: Backend::Redis,
            two_tier,
            ..CacheConfig::default()
        };
        let redis = Redis::open(&self.config).map_err(failed)?;
        let metrics = CacheMetrics::new();
        let store = Arc::new(RedisStore::new(redis, &config, metrics.clone()));
        Ok((Cache::new(store.clone(), config, metrics), store))
    }

    /// Removes every key of the run.
    async fn clean(mut self) {
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = plexus_redis::redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.raw)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = plexus_redis::redis::cmd("UNLINK")
                .arg(keys)
                .query_async(&mut self.raw)
                .await;
        }
    }
}

async fn bench_cache_redis(
    setup: &Setup,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    let (cache, _) = setup.cache(false)?;
    for i in 0..KEYS {
        cache
            .set(None, &format!("k{i}"), value(i), None)
            .await
            .map_err(failed)?;
    }
    // The keys and channel the backend uses, for the raw twin.
    let key = {
        let prefix = setup.prefix.clone();
        Arc::new(move |i: usize| format!("{prefix}cache:default:k{i}"))
    };
    let channel = format!("{}cache:invalidate", setup.prefix);

    let raw = setup.raw.clone();
    let raw_key = key.clone();
    let get_cache = cache.clone();
    versus_raw(
        "cache_get_c16",
        plan,
        (&mut *report, progress),
        move |c, i| {
            let cache = get_cache.clone();
            async move {
                let got = cache
                    .get(None, &format!("k{}", (c * 31 + i) % KEYS))
                    .await
                    .map_err(failed)?;
                got.map(|_| ())
                    .ok_or_else(|| failed("a seeded key is missing"))
            }
        },
        move |c, i| {
            let (mut conn, key) = (raw.clone(), raw_key((c * 31 + i) % KEYS));
            async move {
                let (text, _ttl): (Option<String>, i64) = plexus_redis::redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(failed)?;
                let text = text.ok_or_else(|| failed("a seeded key is missing"))?;
                let json = text.split_once('\n').map_or(text.as_str(), |(_, v)| v);
                let _: Value = serde_json::from_str(json).map_err(failed)?;
                Ok(())
            }
        },
    )
    .await?;

    let raw = setup.raw.clone();
    versus_raw(
        "cache_set_c16",
        plan,
        (report, progress),
        move |c, i| {
            let cache = cache.clone();
            async move {
                let k = (c * 31 + i) % KEYS;
                cache
                    .set(None, &format!("k{k}"), value(k), None)
                    .await
                    .map(|_| ())
                    .map_err(failed)
            }
        },
        move |c, i| {
            let k = (c * 31 + i) % KEYS;
            let (mut conn, key, channel) = (raw.clone(), key(k), channel.clone());
            async move {
                let json = serde_json::to_string(&value(k)).map_err(failed)?;
                let message = json!({"o": "bench", "k": key}).to_string();
                plexus_redis::redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(format!("0\n{json}"))
                    .arg("PX")
                    .arg(300_000)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(&channel)
                    .arg(message)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(failed)
            }
        },
    )
    .await
}

/// Each raw moka entry lives for the TTL it carries, as the cache's entries do.
struct PerEntry;

impl moka::Expiry<String, Arc<(Value, Duration)>> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<(Value, Duration)>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

/// Nanoseconds per hit of `get(i)` over `n` hits.
async fn ns_per_hit<F, Fut>(n: usize, get: F) -> Result<f64, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), BenchError>>,
{
    let started = Instant::now();
    for i in 0..n {
        get(i).await?;
    }
    Ok(started.elapsed().as_nanos() as f64 / n as f64)
}

async fn bench_locks_and_limits(
    setup: &Setup,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    use plexus_limits::{Algorithm, Limiter, LimitsConfig, RuleConfig};
    use plexus_locks::{LockMetrics, Locks, LocksConfig};

    let redis = Redis::open(&setup.config).map_err(failed)?;
    let locks = Locks::new(
        Arc::new(plexus_locks::RedisBackend::new(redis.clone())),
        LocksConfig::default(),
        LockMetrics::new(),
    );
    let lease = Duration::from_secs(10);
    let (raw, prefix) = (setup.raw.clone(), setup.prefix.clone());
    let acquire = Arc::new(plexus_redis::redis::Script::new(
        plexus_locks::RedisBackend::ACQUIRE_SCRIPT,
    ));
    let release = Arc::new(plexus_redis::redis::Script::new(
        plexus_locks::RedisBackend::RELEASE_SCRIPT,
    ));
    versus_raw(
        "lock_cycle_c16",
        plan,
        (&mut *report, progress),
        move |c, _| {
            let locks = locks.clone();
            async move {
                let name = format!("bench-{c}");
                let grant = locks
                    .grant(&name, lease, Duration::ZERO, "")
                    .await
                    .map_err(failed)?;
                locks.release(&name, grant.token).await.map_err(failed)
            }
        },
        move |c, _| {
            let (mut conn, acquire, release) = (raw.clone(), acquire.clone(), release.clone());
            let lock = format!("{prefix}lock:raw-{c}");
            let counter = format!("{prefix}lock-token:raw-{c}");
            async move {
                let (granted, token): (i64, i64) = acquire
                    .key(&lock)
                    .key(&counter)
                    .arg("")
                    .arg(lease.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(failed)?;
                if granted != 1 {
                    return Err(failed("a free raw lock was not granted"));
                }
                let released: i64 = release
                    .key(&lock)
                    .arg(token)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(failed)?;
                (released == 1)
                    .then_some(())
                    .ok_or_else(|| failed("a raw lock was not released"))
            }
        },
    )
    .await?;

    let rule = RuleConfig {
        algorithm: Algorithm::Gcra,
        limit: 10_000_000,
        window_ms: 1_000,
        burst: Some(10_000_000),
    };
    let config = LimitsConfig {
        rules: [("bench".to_owned(), rule)].into_iter().collect(),
        ..LimitsConfig::default()
    };
    let limiter = Limiter::on_redis(redis, config);
    let gcra = limiter
        .rules()
        .get("bench")
        .ok_or_else(|| failed("the bench rule is missing"))?;
    let (interval, burst) = (gcra.interval_us(), gcra.burst);
    let (raw, prefix) = (setup.raw.clone(), setup.prefix.clone());
    let script = Arc::new(plexus_redis::redis::Script::new(
        plexus_limits::RedisBackend::GCRA_SCRIPT,
    ));
    versus_raw(
        "ratelimit_check_c16",
        plan,
        (report, progress),
        move |c, _| {
            let limiter = limiter.clone();
            async move {
                let decision = limiter
                    .check("bench", &format!("client-{c}"), 1)
                    .await
                    .map_err(failed)?;
                decision
                    .allowed
                    .then_some(())
                    .ok_or_else(|| failed("the bench rule refused"))
            }
        },
        move |c, _| {
            let (mut conn, script) = (raw.clone(), script.clone());
            let key = format!("{prefix}limits:gcra:bench:client-{c}");
            async move {
                let (allowed, ..): (i64, i64, i64, i64) = script
                    .key(&key)
                    .arg(interval)
                    .arg(burst)
                    .arg(1)
                    .arg(0)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(failed)?;
                (allowed == 1)
                    .then_some(())
                    .ok_or_else(|| failed("the raw script refused"))
            }
        },
    )
    .await
}

async fn bench_platform(
    setup: &Setup,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    progress.step("platform_mix_c100");
    let node = crate::platform::Node::start(&setup.config.url, &setup.prefix).await?;
    let load = crate::platform::Load {
        users: 100,
        requests: plan.ops.max(1_000),
    };
    let measured = crate::platform::run(node.addr, load).await;
    node.stop().await;
    let measured = measured?;
    report.results.push(
        BenchResult::new(
            "platform_mix_c100",
            Unit::RequestsPerSecond,
            measured.per_second,
            true,
        )
        .with_target(">= 5,000 (10x the mocked 500)"),
    );
    report.results.push(BenchResult::new(
        "platform_mix_c100_p99",
        Unit::Micros,
        measured.p99_us,
        false,
    ));
    progress.done_step();
    Ok(())
}

async fn bench_local_hits(
    setup: &Setup,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    let local = Cache::in_memory(CacheConfig::default());
    let (two_tier, store) = setup.cache(true)?;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !store.local_tier_live() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    waited.map_err(|_| failed("the two-tier cache did not subscribe within 10 s"))?;
    let moka: moka::sync::Cache<String, Arc<(Value, Duration)>> = moka::sync::Cache::builder()
        .max_capacity(64 * 1024 * 1024)
        .weigher(|k: &String, v: &Arc<(Value, Duration)>| {
            u32::try_from(k.len() + v.0.to_string().len()).unwrap_or(u32::MAX)
        })
        .expire_after(PerEntry)
        .build();
    for i in 0..KEYS {
        let k = format!("k{i}");
        local.set(None, &k, value(i), None).await.map_err(failed)?;
        two_tier
            .set(None, &k, value(i), None)
            .await
            .map_err(failed)?;
        two_tier.get(None, &k).await.map_err(failed)?;
        moka.insert(k, Arc::new((value(i), Duration::from_secs(300))));
    }
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("k{i}")).collect());
    let hit = |cache: Cache| {
        let keys = keys.clone();
        move |i: usize| {
            let (cache, keys) = (cache.clone(), keys.clone());
            async move {
                match cache.get(None, &keys[i % KEYS]).await.map_err(failed)? {
                    Some(_) => Ok(()),
                    None => Err(failed("a cached key is missing")),
                }
            }
        }
    };
    let raw = || {
        let (moka, keys) = (moka.clone(), keys.clone());
        ns_per_hit(plan.hits, move |i| {
            let found = moka.get(&keys[i % KEYS]).map(|v| Value::clone(&v.0));
            async move {
                found
                    .map(|_| ())
                    .ok_or_else(|| failed("a raw key is missing"))
            }
        })
    };
    for (name, cache) in [("cache_local_hit", local), ("cache_two_tier_hit", two_tier)] {
        progress.step(name);
        let (mut ours, mut bare) = (f64::MAX, f64::MAX);
        for _ in 0..plan.rounds {
            ours = ours.min(ns_per_hit(plan.hits, hit(cache.clone())).await?);
            bare = bare.min(raw().await?);
        }
        report.results.push(
            BenchResult::new(name, Unit::Nanos, ours, false)
                .with_ceiling(MOKA, bare)
                .with_target(">= 0.8 of raw"),
        );
        progress.done_step();
    }
    Ok(())
}

async fn bench_stampede(
    setup: &Setup,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    progress.step("stampede_loads");
    let loads = Arc::new(AtomicUsize::new(0));
    let clients: Vec<Cache> = (0..3)
        .map(|_| setup.cache(false).map(|(c, _)| c))
        .collect::<Result<_, _>>()?;
    // The load finishes only once every caller has started, so all the misses
    // are in flight together (no timing involved).
    let started = Arc::new(AtomicUsize::new(0));
    let (all_in, all_in_rx) = tokio::sync::watch::channel(false);
    let all_in = Arc::new(all_in);
    let misses = plan.misses;
    let tasks: Vec<_> = (0..misses)
        .map(|i| {
            let cache = clients[i % clients.len()].clone();
            let (loads, started, all_in) = (loads.clone(), started.clone(), all_in.clone());
            let mut gate = all_in_rx.clone();
            tokio::spawn(async move {
                if started.fetch_add(1, Ordering::SeqCst) + 1 == misses {
                    all_in.send_replace(true);
                }
                cache
                    .get_or_load(None, "stampede", None, move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let waited = tokio::time::timeout(
                            Duration::from_secs(10),
                            gate.wait_for(|all| *all),
                        )
                        .await;
                        match waited {
                            Ok(Ok(_)) => Ok(json!("loaded")),
                            _ => Err(plexus_core::ServiceError::failed(
                                "the stampede's callers did not all start within 10 s",
                            )),
                        }
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        let got = task.await.map_err(failed)?.map_err(failed)?;
        if got.value != Some(json!("loaded")) {
            return Err(failed("a stampede caller got no value"));
        }
    }
    report.results.push(
        BenchResult::new(
            "stampede_loads",
            Unit::Count,
            loads.load(Ordering::SeqCst) as f64,
            false,
        )
        .with_target("1 load"),
    );
    progress.done_step();
    Ok(())
}

/// Runs the benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let mut report = Report::new(BENCH, options);
    let progress = Progress::new(options, 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        let setup = Setup::open().await?;
        let outcome = async {
            bench_cache_redis(&setup, &plan, &mut report, &progress).await?;
            bench_locks_and_limits(&setup, &plan, &mut report, &progress).await?;
            bench_platform(&setup, &plan, &mut report, &progress).await?;
            bench_local_hits(&setup, &plan, &mut report, &progress).await?;
            bench_stampede(&setup, &plan, &mut report, &progress).await
        }
        .await;
        setup.clean().await;
        outcome
    })?;
    progress.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_quick_run_reports_every_figure_beside_its_ceiling() {
        let report = crate::support::quick_run_with_ceilings(
            run,
            &[
                "cache_get_c16",
                "cache_set_c16",
                "lock_cycle_c16",
                "ratelimit_check_c16",
                "cache_local_hit",
                "cache_two_tier_hit",
            ],
        );
        assert_eq!(report.get("stampede_loads").unwrap().value, 1.0);
        assert!(report.get("platform_mix_c100").unwrap().value > 0.0);
    }
}
