//! `apalis` 1.0 doing the job queue's work in the same run: the ceiling of
//! `plexus bench jobs` on each backend (feature `apalis` of `plexus-bench`, on in
//! the `plexus` binary's `bench` feature).
//!
//! The same three figures as Plexus's, measured the same way: 16 concurrent
//! callers each `push` their share into a queue no worker reads yet (enqueues/s);
//! then one worker with a concurrency of 64 (Plexus's `max_running`) runs them
//! all with a no-op handler (processed/s, from the worker's start until the last
//! handler ran); then jobs one at a time on an idle queue, each from its push to
//! its handler's start (latency).
//!
//! Each backend in the configuration its README shows as the fastest:
//! - SQLite: `SqliteStorage::connect_with_callback` (SQLite's update hook wakes
//!   the worker; a 100 ms poll behind it), `setup` (which sets WAL and
//!   `synchronous = OFF` on the connection it runs on: fewer syncs to disk than
//!   Plexus, which keeps SQLite's default, FULL), batch size 32;
//! - PostgreSQL: `PostgresStorage::with_pubsub` (`LISTEN/NOTIFY`), batch size 32,
//!   on the server of `PLEXUS_TEST_POSTGRES_URL`, in a database of this run's
//!   (apalis's migrations keep their own table), dropped at the end;
//! - Redis: `RedisStorage` on a connection manager, batch size 32, under a queue
//!   of this run's, its keys deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{BackendExt, BoxDynError, Data, Strategy, TaskSink, WorkerBuilder};
use futures::StreamExt;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{CLIENTS, Figures, Plan, failed, now_us};
use crate::BenchError;

/// The job: when it was pushed (µs since the epoch).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tick {
    at: u64,
}

/// What the handler saw.
struct Counter {
    runs: AtomicUsize,
    ran: Notify,
    waits: Mutex<Histogram<u64>>,
}

impl Counter {
    fn new() -> Result<Arc<Self>, BenchError> {
        Ok(Arc::new(Self {
            runs: AtomicUsize::new(0),
            ran: Notify::new(),
            waits: Mutex::new(Histogram::new(3).map_err(failed)?),
        }))
    }

    /// Waits until `n` handlers ran in all (bounded).
    async fn ran(&self, n: usize) -> Result<(), BenchError> {
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let ran = self.ran.notified();
                tokio::pin!(ran);
                ran.as_mut().enable();
                if self.runs.load(Ordering::Acquire) >= n {
                    return;
                }
                ran.await;
            }
        })
        .await
        .map_err(|_| failed(format!("apalis: {n} jobs did not run within 120 s")))
    }
}

/// The handler: no work; records the wait from the push and counts.
async fn tick(job: Tick, counter: Data<Arc<Counter>>) -> Result<(), BoxDynError> {
    let _ = counter
        .waits
        .lock()
        .record(now_us().saturating_sub(job.at).max(1));
    counter.runs.fetch_add(1, Ordering::AcqRel);
    counter.ran.notify_waiters();
    Ok(())
}

/// Pushes one job.
type Push = Arc<dyn Fn(Tick) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Runs the three phases with `push` and the worker `start` spawns.
async fn measure(
    plan: &Plan,
    push: Push,
    start: impl FnOnce(Arc<Counter>) -> tokio::task::JoinHandle<()>,
) -> Result<Figures, BenchError> {
    let started = Instant::now();
    let per_client = plan.jobs / CLIENTS;
    let callers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let push = push.clone();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    push(Tick { at: now_us() }).await?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for caller in callers {
        caller.await.map_err(failed)?.map_err(failed)?;
    }
    let total = per_client * CLIENTS;
    let enqueue_per_s = total as f64 / started.elapsed().as_secs_f64();

    let counter = Counter::new()?;
    let started = Instant::now();
    let worker = start(counter.clone());
    let ran = counter.ran(total).await;
    let processed_per_s = total as f64 / started.elapsed().as_secs_f64();
    let latency = async {
        ran?;
        counter.waits.lock().reset();
        for i in 1..=plan.latency_jobs {
            push(Tick { at: now_us() }).await.map_err(failed)?;
            counter.ran(total + i).await?;
        }
        Ok::<_, BenchError>(())
    }
    .await;
    worker.abort();
    latency?;
    let waits = counter.waits.lock();
    Ok(Figures {
        enqueue_per_s,
        processed_per_s,
        p50_us: waits.value_at_quantile(0.5) as f64,
        p99_us: waits.value_at_quantile(0.99) as f64,
    })
}

const BATCH: usize = 32;
const CONCURRENCY: usize = 64;

/// apalis on SQLite, in a file of `dir`.
pub(super) async fn sqlite(plan: &Plan, dir: &std::path::Path) -> Result<Figures, BenchError> {
    use apalis_sqlite::{Config, SqliteStorage};
    std::fs::create_dir_all(dir).map_err(failed)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("apalis.db").display());
    let (pool, listener) = SqliteStorage::connect_with_callback(&url).map_err(failed)?;
    SqliteStorage::setup(&pool).await.map_err(failed)?;
    let config = Config::default().queue("bench").batch_size(BATCH);
    let storage = SqliteStorage::<Tick>::new(&pool).with_config(config.clone());
    let push: Push = Arc::new(move |t| {
        let mut s = storage.clone();
        Box::pin(async move { s.push(t).await.map_err(|e| e.to_string()) })
    });
    let figures = measure(plan, push, |counter| {
        let strategy = Strategy::new()
            .stream(listener.ready_chunks(BATCH))
            .interval(Duration::from_millis(100));
        let backend = SqliteStorage::<Tick>::new(&pool)
            .with_config(config)
            .poll_with_strategy(strategy);
        let worker = WorkerBuilder::new("plexus-bench-sqlite")
            .backend(backend)
            .data(counter)
            .concurrency(CONCURRENCY)
            .build(tick);
        tokio::spawn(async move {
            let _ = worker.run().await;
        })
    })
    .await;
    pool.close().await;
    figures
}

/// apalis on the PostgreSQL server of `url`, in a database of its own named
/// `database` (its migrations keep their own table, which must not meet another
/// migrator's), dropped at the end.
pub(super) async fn postgres(
    plan: &Plan,
    url: &str,
    database: &str,
) -> Result<Figures, BenchError> {
    use apalis_postgres::PgPool;
    let server = PgPool::connect(url).await.map_err(failed)?;
    // The name is ours: letters, digits and `_`.
    let create = format!("CREATE DATABASE \"{database}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&server)
        .await
        .map_err(failed)?;
    let own = match url.split_once('?') {
        Some((base, query)) => format!(
            "{}/{database}?{query}",
            base.rsplit_once('/').map_or(base, |(b, _)| b)
        ),
        None => format!(
            "{}/{database}",
            url.rsplit_once('/').map_or(url, |(b, _)| b)
        ),
    };
    let figures = match PgPool::connect(&own).await {
        Ok(pool) => {
            let figures = postgres_in(plan, &pool).await;
            pool.close().await;
            figures
        }
        Err(e) => Err(failed(e)),
    };
    let drop = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&server)
        .await;
    server.close().await;
    figures
}

async fn postgres_in(plan: &Plan, pool: &apalis_postgres::PgPool) -> Result<Figures, BenchError> {
    use apalis_postgres::{Config, PostgresStorage};
    let queue = "bench";
    let pool = pool.clone();
    PostgresStorage::setup(&pool).await.map_err(failed)?;
    let config = Config::default().queue(queue).batch_size(BATCH);
    let storage = PostgresStorage::<Tick>::new(&pool).with_config(config.clone());
    let push: Push = Arc::new(move |t| {
        let mut s = storage.clone();
        Box::pin(async move { s.push(t).await.map_err(|e| e.to_string()) })
    });
    measure(plan, push, |counter| {
        let backend = PostgresStorage::<Tick>::new(&pool)
            .with_config(config)
            .with_pubsub();
        let worker = WorkerBuilder::new("plexus-bench-postgres")
            .backend(backend)
            .data(counter)
            .concurrency(CONCURRENCY)
            .build(tick);
        tokio::spawn(async move {
            let _ = worker.run().await;
        })
    })
    .await
}

/// apalis on Redis at `url`, under queue `queue` (its keys deleted after).
pub(super) async fn redis(plan: &Plan, url: &str, queue: &str) -> Result<Figures, BenchError> {
    use apalis_redis::{Config, RedisStorage};
    let conn = apalis_redis::connect(url).await.map_err(failed)?;
    let config = Config::default().queue(queue).batch_size(BATCH);
    let storage = RedisStorage::<Tick>::new(conn.clone()).with_config(config.clone());
    let push: Push = Arc::new(move |t| {
        let mut s = storage.clone();
        Box::pin(async move { s.push(t).await.map_err(|e| e.to_string()) })
    });
    let figures = measure(plan, push, |counter| {
        let backend = RedisStorage::<Tick>::new(conn.clone()).with_config(config);
        let worker = WorkerBuilder::new("plexus-bench-redis")
            .backend(backend)
            .data(counter)
            .concurrency(CONCURRENCY)
            .build(tick);
        tokio::spawn(async move {
            let _ = worker.run().await;
        })
    })
    .await;
    let mut conn = conn;
    let keys: Vec<String> = plexus_redis::redis::cmd("KEYS")
        .arg(format!("*{queue}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = plexus_redis::redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await;
    }
    figures
}
