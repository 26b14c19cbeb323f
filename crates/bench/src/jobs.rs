//! `plexus bench jobs`: the job queue on each of its backends, with a no-op target
//! in process.
//!
//! Results (stable names), for each backend `b` of `sqlite`, `postgres`, `redis`:
//! - `b_jobs_enqueue_per_s` (ops/s): [`Jobs::enqueue`] (every check, then the
//!   backend's insert) by 16 concurrent callers into a paused queue;
//! - `b_jobs_processed_per_s` (ops/s): from resuming that queue until every job
//!   is completed (claimed, called through the call path, its result stored), with
//!   `jobs.max_running` 64;
//! - `b_jobs_latency_p50`, `b_jobs_latency_p99` (µs): from a job's `run_at` (its
//!   enqueue, with no delay) to its target starting, one job at a time on an idle
//!   queue.
//!
//! The ceiling of each is `apalis` 1.0 doing the same on the same backend in the
//! same run ([`apalis`](self::apalis) says how), with the feature `apalis` (on in
//! the `plexus` binary's `bench` feature; without it the figures stand alone).
//! Target: at least 1.5 times apalis. SQLite lives in a temp folder;
//! PostgreSQL (`PLEXUS_TEST_POSTGRES_URL`) in a schema of its own, dropped at the
//! end; Redis (`PLEXUS_TEST_REDIS_URL`) under a key prefix of its own, removed at
//! the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use plexus_core::{
    CallContext, CallResult, MethodDescriptor, Service, ServiceDescriptor, async_trait,
};
use plexus_jobs::{
    Clock, Enqueue, JobBackend, JobMetrics, JobService, Jobs, JobsConfig, PostgresBackend,
    PostgresOptions, RedisBackend, SqliteBackend,
};
use plexus_node::Node;
use plexus_redis::{Redis, RedisConfig};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "jobs";
const QUEUE: &str = "bench";
const CLIENTS: usize = 16;

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

struct Plan {
    jobs: usize,
    latency_jobs: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                jobs: 320,
                latency_jobs: 50,
            }
        } else {
            Self {
                jobs: 5_000,
                latency_jobs: 500,
            }
        }
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The jobs' target, `noop.run {at}`: counts its calls and records the wait from
/// `at` (µs since the epoch, the job's enqueue) to its start.
struct Noop {
    calls: AtomicUsize,
    called: Notify,
    waits: Mutex<Histogram<u64>>,
}

#[async_trait]
impl Service for Noop {
    fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor::new("noop", "bench").with_method(MethodDescriptor::new("run"))
    }

    async fn call(&self, _method: &str, params: Value, _ctx: CallContext) -> CallResult {
        if let Some(at) = params["at"].as_u64() {
            let _ = self.waits.lock().record(now_us().saturating_sub(at).max(1));
        }
        self.calls.fetch_add(1, Ordering::AcqRel);
        self.called.notify_waiters();
        Ok(Value::Null)
    }
}

/// One backend's run: a node with the `jobs` service over it and the target.
struct Bench {
    jobs: Jobs,
    noop: Arc<Noop>,
    /// `jobs.bench.completed` events: each wakes [`Bench::completed`] (the metric
    /// is counted before the event is published, and a full queue keeps its newest).
    done: plexus_bus::Subscription,
    _node: Node,
}

impl Bench {
    async fn start(backend: Arc<dyn JobBackend>) -> Result<Self, BenchError> {
        let config = JobsConfig {
            max_running: 64,
            concurrency: 64,
            ..JobsConfig::default()
        };
        let jobs = Jobs::new(backend, config, JobMetrics::new(), Clock::system());
        let noop = Arc::new(Noop {
            calls: AtomicUsize::new(0),
            called: Notify::new(),
            waits: Mutex::new(Histogram::new(3).map_err(failed)?),
        });
        let service = JobService::new(jobs.clone());
        let node = Node::builder("bench-jobs")
            .service(Arc::new(service.clone()))
            .service(noop.clone())
            .start()
            .await
            .map_err(failed)?;
        service.attach(&node);
        let done = node
            .bus()
            .subscribe(
                &format!("jobs.{QUEUE}.completed"),
                plexus_bus::SubscribeOptions::new(),
            )
            .map_err(failed)?;
        Ok(Self {
            jobs,
            noop,
            done,
            _node: node,
        })
    }

    fn job() -> Enqueue {
        Enqueue {
            queue: Some(QUEUE.to_owned()),
            target: "noop.run".to_owned(),
            params: json!({"at": now_us()}),
            ..Enqueue::default()
        }
    }

    /// Waits until the target was called `n` times in all (bounded).
    async fn called(&self, n: usize) -> Result<(), BenchError> {
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let called = self.noop.called.notified();
                tokio::pin!(called);
                called.as_mut().enable();
                if self.noop.calls.load(Ordering::Acquire) >= n {
                    return;
                }
                called.await;
            }
        })
        .await
        .map_err(|_| failed(format!("{n} jobs did not run within 120 s")))
    }

    /// Waits until `n` jobs were completed in all (bounded).
    async fn completed(&mut self, n: u64) -> Result<(), BenchError> {
        let (jobs, done) = (&self.jobs, &mut self.done);
        let count = || jobs.metrics().counts().completed;
        tokio::time::timeout(Duration::from_secs(120), async {
            while count() < n {
                if done.recv().await.is_none() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| failed(format!("{n} jobs did not complete within 120 s")))?;
        match count() {
            c if c >= n => Ok(()),
            c => Err(failed(format!(
                "the bus closed after {c} of {n} jobs completed"
            ))),
        }
    }
}

#[cfg(feature = "apalis")]
mod apalis;

/// A backend's four figures.
struct Figures {
    enqueue_per_s: f64,
    processed_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// The ceiling's name in the report.
const APALIS: &str = "apalis 1.0, same backend";

/// Adds backend `name`'s results, beside `peer`'s when it was measured.
fn add(report: &mut Report, name: &str, ours: &Figures, peer: Option<&Figures>) {
    let results = [
        (
            "enqueue_per_s",
            Unit::OpsPerSecond,
            true,
            ours.enqueue_per_s,
            peer.map(|p| p.enqueue_per_s),
        ),
        (
            "processed_per_s",
            Unit::OpsPerSecond,
            true,
            ours.processed_per_s,
            peer.map(|p| p.processed_per_s),
        ),
        (
            "latency_p50",
            Unit::Micros,
            false,
            ours.p50_us,
            peer.map(|p| p.p50_us),
        ),
        (
            "latency_p99",
            Unit::Micros,
            false,
            ours.p99_us,
            peer.map(|p| p.p99_us),
        ),
    ];
    for (what, unit, higher, value, ceiling) in results {
        let mut result = BenchResult::new(&format!("{name}_jobs_{what}"), unit, value, higher);
        if let Some(ceiling) = ceiling {
            result = result
                .with_ceiling(APALIS, ceiling)
                .with_target(">= 1.5 of apalis");
        }
        report.results.push(result);
    }
}

async fn measure(backend: Arc<dyn JobBackend>, plan: &Plan) -> Result<Figures, BenchError> {
    let mut bench = Bench::start(backend).await?;
    bench.jobs.set_paused(QUEUE, true).await.map_err(failed)?;

    let started = Instant::now();
    let per_client = plan.jobs / CLIENTS;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let jobs = bench.jobs.clone();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    jobs.enqueue(Bench::job(), &CallContext::new()).await?;
                }
                Ok::<_, plexus_jobs::JobError>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await.map_err(failed)?.map_err(failed)?;
    }
    let total = per_client * CLIENTS;
    let enqueue = total as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    bench.jobs.set_paused(QUEUE, false).await.map_err(failed)?;
    bench.completed(total as u64).await?;
    let processed = total as f64 / started.elapsed().as_secs_f64();

    bench.noop.waits.lock().reset();
    for i in 1..=plan.latency_jobs {
        bench
            .jobs
            .enqueue(Bench::job(), &CallContext::new())
            .await
            .map_err(failed)?;
        bench.called(total + i).await?;
    }
    bench.completed((total + plan.latency_jobs) as u64).await?;
    bench.jobs.close();
    let (p50, p99) = {
        let waits = bench.noop.waits.lock();
        (waits.value_at_quantile(0.5), waits.value_at_quantile(0.99))
    };
    Ok(Figures {
        enqueue_per_s: enqueue,
        processed_per_s: processed,
        p50_us: p50 as f64,
        p99_us: p99 as f64,
    })
}

fn postgres_url() -> String {
    std::env::var("PLEXUS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{nanos:x}", std::process::id())
}

async fn sqlite(plan: &Plan, report: &mut Report) -> Result<(), BenchError> {
    let dir = std::env::temp_dir().join(format!("plexus-bench-jobs-{}", run_id()));
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let backend = SqliteBackend::connect_with(&url, 8).await.map_err(failed)?;
    let ours = measure(Arc::new(backend), plan).await;
    #[cfg(feature = "apalis")]
    let peer = match &ours {
        Ok(_) => Some(apalis::sqlite(plan, &dir).await?),
        Err(_) => None,
    };
    #[cfg(not(feature = "apalis"))]
    let peer: Option<Figures> = None;
    let _ = std::fs::remove_dir_all(&dir);
    add(report, "sqlite", &ours?, peer.as_ref());
    Ok(())
}

async fn postgres(plan: &Plan, report: &mut Report) -> Result<(), BenchError> {
    let schema = format!("bench_jobs_{}", run_id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        pool_size: 8,
        ..PostgresOptions::new(postgres_url())
    };
    let backend = PostgresBackend::connect(&options).await.map_err(|e| {
        failed(format!(
            "cannot reach PostgreSQL at {} ({e}); set PLEXUS_TEST_POSTGRES_URL",
            postgres_url()
        ))
    })?;
    let pool = backend.pool().clone();
    let ours = measure(Arc::new(backend), plan).await;
    // The name is ours: `bench_jobs_` and digits, letters and `_`.
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await;
    let ours = ours?;
    #[cfg(feature = "apalis")]
    let peer =
        Some(apalis::postgres(plan, &postgres_url(), &format!("bench_apalis_{}", run_id())).await?);
    #[cfg(not(feature = "apalis"))]
    let peer: Option<Figures> = None;
    add(report, "postgres", &ours, peer.as_ref());
    Ok(())
}

async fn redis(plan: &Plan, report: &mut Report) -> Result<(), BenchError> {
    let config = RedisConfig {
        key_prefix: format!("plexus-bench:{}:", run_id()),
        ..RedisConfig::with_url(redis_url())
    };
    let redis = Redis::open(&config).map_err(failed)?;
    redis.ping().await.map_err(|e| {
        failed(format!(
            "cannot reach Redis at {} ({e}); set PLEXUS_TEST_REDIS_URL",
            redis_url()
        ))
    })?;
    let ours = measure(Arc::new(RedisBackend::new(redis.clone())), plan).await;
    let prefix = redis.key("");
    let _ = redis
        .run(|mut c| async move {
            plexus_redis::redis::Script::new(
                "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end",
            )
            .arg(prefix)
            .invoke_async::<()>(&mut c)
            .await
        })
        .await;
    let ours = ours?;
    #[cfg(feature = "apalis")]
    let peer = Some(
        apalis::redis(
            plan,
            &redis_url(),
            &format!("plexus-bench-apalis-{}", run_id()),
        )
        .await?,
    );
    #[cfg(not(feature = "apalis"))]
    let peer: Option<Figures> = None;
    add(report, "redis", &ours, peer.as_ref());
    Ok(())
}

/// Runs the jobs benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let mut report = Report::new(BENCH, options);
    let progress = Progress::new(options, 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        progress.step("sqlite");
        sqlite(&plan, &mut report).await?;
        progress.done_step();
        progress.step("postgres");
        postgres(&plan, &mut report).await?;
        progress.done_step();
        progress.step("redis");
        redis(&plan, &mut report).await?;
        progress.done_step();
        Ok::<_, BenchError>(())
    })?;
    progress.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_quick_run_reports_every_figure_on_every_backend() {
        let report = super::run(crate::Options {
            quick: true,
            progress: false,
        })
        .unwrap();
        for backend in ["sqlite", "postgres", "redis"] {
            for what in [
                "enqueue_per_s",
                "processed_per_s",
                "latency_p50",
                "latency_p99",
            ] {
                let name = format!("{backend}_jobs_{what}");
                let r = report.get(&name).unwrap();
                assert!(r.value > 0.0, "{name}");
                #[cfg(feature = "apalis")]
                assert!(
                    r.ceiling_value.is_some_and(|c| c > 0.0) && r.ratio.is_some(),
                    "{name}: apalis beside it"
                );
            }
        }
    }
}
