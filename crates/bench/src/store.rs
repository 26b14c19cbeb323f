//! `plexus bench store`: DataStore put / get / query operations per second and p99
//! on SQLite and on PostgreSQL, beside the same statements through bare `sqlx` in the
//! same run, at 1 and 16 concurrent clients.
//!
//! Results (stable names): `{sqlite,postgres}_{put,get,query}_c{1,16}` in ops/s, each
//! with the bare-sqlx ceiling and the ratio (target: at least 0.7), and
//! `{sqlite,postgres}_{put,get,query}_c{1,16}_p99` in µs beside the bare p99.
//!
//! Workload: a collection `bench` with an index on `k`, seeded with documents
//! `{"k": i % 100, "name": "doc-i", "score": i}`. A put upserts one of 1,000 ids per
//! client; a get reads a seeded id; a query selects `k = v` with a limit of 10. The
//! ceiling runs the very statements the DataStore issues (the same SQL text and
//! parameters; the query's is built by the DataStore's own `SqlBuilder`) on a bare
//! sqlx pool of the same size, and decodes the same columns. SQLite lives in a temp
//! folder; PostgreSQL (`PLEXUS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own that is dropped
//! at the end. Ours and the ceiling alternate for a few rounds; the best round of
//! each counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use plexus_store::{
    BackendKind, CollectionSpec, DataStore, Filter, IndexSpec, Param, PutMode, SqlBuilder,
    Statement, StoreConfig,
};
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Executor, Row};

use crate::{BenchError, BenchResult, Options, Progress, Report, Unit};

const BENCH: &str = "store";
const POOL: u32 = 16;
const CLIENTS: [usize; 2] = [1, 16];
const SEED_DOCS: usize = 2_000;
const KEYS: usize = 100;
const QUERY_LIMIT: u32 = 10;

struct Plan {
    ops: usize,
    rounds: usize,
}

impl Plan {
    fn new(options: Options) -> Self {
        if options.quick {
            Self {
                ops: 160,
                rounds: 1,
            }
        } else {
            Self {
                ops: 3_200,
                rounds: 3,
            }
        }
    }
}

fn failed(reason: impl ToString) -> BenchError {
    BenchError::failed(BENCH, reason)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Put,
    Get,
    Query,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Query => "query",
        }
    }
}

fn doc(i: usize) -> Value {
    json!({"k": i % KEYS, "name": format!("doc-{i}"), "score": i})
}

fn put_id(client: usize, i: usize) -> String {
    format!("p{client}-{}", i % 1_000)
}

fn get_id(client: usize, i: usize) -> String {
    format!("s{}", (client * 7_919 + i * 31) % SEED_DOCS)
}

fn key_filter(v: usize) -> Result<Filter, BenchError> {
    Filter::from_json(&json!({"field": "k", "eq": v})).map_err(failed)
}

/// The same SQL the DataStore runs for these operations on collection `bench`.
struct Statements {
    put: Arc<str>,
    get: Arc<str>,
    query: Arc<str>,
}

impl Statements {
    fn new(store: &DataStore) -> Result<Self, BenchError> {
        let dialect = store.store().dialect();
        let doc = dialect.json_param(2);
        let mut b = SqlBuilder::new(dialect);
        b.push("SELECT id, version, doc FROM \"doc_bench\" WHERE ")
            .filter(&key_filter(0)?)
            .push(" ORDER BY id ASC LIMIT ")
            .push_bind(Param::Int(i64::from(QUERY_LIMIT) + 1));
        Ok(Self {
            put: format!(
                "INSERT INTO \"doc_bench\" AS d (id, version, doc) VALUES ($1, 1, {doc}) \
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = d.version + 1 \
                 RETURNING version"
            )
            .into(),
            get: "SELECT id, version, doc FROM \"doc_bench\" WHERE id = $1".into(),
            query: b.finish().sql,
        })
    }

    /// The query statement's parameters for key `v`, as the DataStore binds them.
    fn query_params(store: &DataStore, v: usize) -> Result<Vec<Param>, BenchError> {
        let mut b = SqlBuilder::new(store.store().dialect());
        b.filter(&key_filter(v)?)
            .push_bind(Param::Int(i64::from(QUERY_LIMIT) + 1));
        Ok(b.finish().params)
    }
}

/// The ceiling: a bare sqlx pool on the same database.
#[derive(Clone)]
enum Bare {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text(s) | Param::Json(s) => q.bind(s.clone()),
                Param::Int(i) => q.bind(*i),
                Param::Float(f) => q.bind(*f),
                Param::Null => q.bind(None::<String>),
            };
        }
        q
    }};
}

/// The first column of the one row `$stmt` returns on `$pool` (one macro for two
/// pool types).
macro_rules! first_column {
    ($pool:expr, $stmt:expr) => {
        bind_all!(sqlx::query(AssertSqlSafe($stmt.sql.clone())), &$stmt.params)
            .fetch_one($pool)
            .await
            .map_err(failed)?
            .try_get(0)
            .map_err(failed)
    };
}

impl Bare {
    async fn rows(&self, stmt: &Statement) -> Result<usize, BenchError> {
        match self {
            Bare::Sqlite(pool) => {
                let q = bind_all!(sqlx::query(AssertSqlSafe(stmt.sql.clone())), &stmt.params);
                let rows = q.fetch_all(pool).await.map_err(failed)?;
                for row in &rows {
                    let _id: String = row.try_get(0).map_err(failed)?;
                    let _v: i64 = row.try_get(1).map_err(failed)?;
                    let text: &str = row.try_get(2).map_err(failed)?;
                    let _doc: Value = serde_json::from_str(text).map_err(failed)?;
                }
                Ok(rows.len())
            }
            Bare::Postgres(pool) => {
                let q = bind_all!(sqlx::query(AssertSqlSafe(stmt.sql.clone())), &stmt.params);
                let rows = q.fetch_all(pool).await.map_err(failed)?;
                for row in &rows {
                    let _id: String = row.try_get(0).map_err(failed)?;
                    let _v: i64 = row.try_get(1).map_err(failed)?;
                    let Json(_doc): Json<Value> = row.try_get(2).map_err(failed)?;
                }
                Ok(rows.len())
            }
        }
    }

    async fn version(&self, stmt: &Statement) -> Result<i64, BenchError> {
        match self {
            Bare::Sqlite(pool) => first_column!(pool, stmt),
            Bare::Postgres(pool) => first_column!(pool, stmt),
        }
    }
}

/// One measured run: operations per second and the p99 latency in µs.
#[derive(Clone, Copy, Default)]
struct Measured {
    per_second: f64,
    p99_us: f64,
}

impl Measured {
    fn best(self, other: Measured) -> Measured {
        if other.per_second > self.per_second {
            other
        } else {
            self
        }
    }
}

/// One operation, through the DataStore or the bare pool.
async fn one(target: &Target, op: OpKind, client: usize, i: usize) -> Result<(), BenchError> {
    match (target, op) {
        (Target::Store(ds), OpKind::Put) => {
            ds.put("bench", &put_id(client, i), &doc(i), PutMode::Upsert, None)
                .await
                .map_err(failed)?;
        }
        (Target::Store(ds), OpKind::Get) => {
            ds.get("bench", &get_id(client, i))
                .await
                .map_err(failed)?
                .ok_or_else(|| failed("a seeded document is missing"))?;
        }
        (Target::Store(ds), OpKind::Query) => {
            let q = plexus_store::Query::filter(key_filter(i % KEYS)?).limit(QUERY_LIMIT);
            let page = ds.query("bench", &q).await.map_err(failed)?;
            if page.docs.len() != QUERY_LIMIT as usize {
                return Err(failed("a query returned a short page"));
            }
        }
        (Target::Bare(bare, sql, _), OpKind::Put) => {
            let text = serde_json::to_string(&doc(i)).map_err(failed)?;
            let stmt = Statement::new(
                sql.put.clone(),
                vec![Param::Text(put_id(client, i)), Param::Json(text)],
            );
            bare.version(&stmt).await?;
        }
        (Target::Bare(bare, sql, _), OpKind::Get) => {
            let stmt = Statement::new(sql.get.clone(), vec![Param::Text(get_id(client, i))]);
            if bare.rows(&stmt).await? != 1 {
                return Err(failed("a seeded document is missing"));
            }
        }
        (Target::Bare(bare, sql, ds), OpKind::Query) => {
            let stmt = Statement::new(sql.query.clone(), Statements::query_params(ds, i % KEYS)?);
            if bare.rows(&stmt).await? != QUERY_LIMIT as usize + 1 {
                return Err(failed("a query returned a short page"));
            }
        }
    }
    Ok(())
}

#[derive(Clone)]
enum Target {
    Store(DataStore),
    Bare(Bare, Arc<Statements>, DataStore),
}

async fn measure(
    target: &Target,
    op: OpKind,
    clients: usize,
    ops: usize,
) -> Result<Measured, BenchError> {
    let per_client = (ops / clients).max(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).map_err(failed)?;
            for i in 0..per_client {
                let t = Instant::now();
                one(&target, op, client, i).await?;
                hist.record(t.elapsed().as_nanos() as u64).map_err(failed)?;
            }
            Ok::<_, BenchError>(hist)
        }));
    }
    let mut all = Histogram::<u64>::new(3).map_err(failed)?;
    for task in tasks {
        let hist = task.await.map_err(failed)??;
        all.add(&hist).map_err(failed)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Measured {
        per_second: (per_client * clients) as f64 / elapsed,
        p99_us: all.value_at_quantile(0.99) as f64 / 1_000.0,
    })
}

struct Backend {
    store: DataStore,
    bare: Bare,
    cleanup: Option<(PgPool, String)>,
    dir: Option<std::path::PathBuf>,
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{nanos}", std::process::id())
}

async fn open(kind: BackendKind) -> Result<Backend, BenchError> {
    let base = StoreConfig {
        max_connections: POOL,
        ..StoreConfig::default()
    };
    match kind {
        BackendKind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("plexus-bench-store-{}", unique_suffix()));
            let config = StoreConfig {
                url: StoreConfig::sqlite_in(&dir).url,
                ..base
            };
            let store = DataStore::connect(&config).await.map_err(failed)?;
            let path = dir.join("plexus.db");
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(POOL)
                .connect_with(options)
                .await
                .map_err(failed)?;
            Ok(Backend {
                store,
                bare: Bare::Sqlite(pool),
                cleanup: None,
                dir: Some(dir),
            })
        }
        BackendKind::Postgres => {
            let url = std::env::var("PLEXUS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let schema = format!("bench_{}", unique_suffix());
            let config = StoreConfig {
                url: url.clone(),
                schema: Some(schema.clone()),
                ..base
            };
            let store = DataStore::connect(&config).await.map_err(failed)?;
            let options = url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(failed)?
                .options([("search_path", schema.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(POOL)
                .connect_with(options)
                .await
                .map_err(failed)?;
            let admin = PgPool::connect(&url).await.map_err(failed)?;
            Ok(Backend {
                store,
                bare: Bare::Postgres(pool),
                cleanup: Some((admin, schema)),
                dir: None,
            })
        }
    }
}

async fn seed(store: &DataStore) -> Result<(), BenchError> {
    store
        .create_collection(
            "bench",
            CollectionSpec::default().with_index(IndexSpec::new("by_k", &["k"])),
        )
        .await
        .map_err(failed)?;
    for chunk in (0..SEED_DOCS).collect::<Vec<_>>().chunks(200) {
        let ops = chunk
            .iter()
            .map(|&i| plexus_store::Op::Put {
                collection: "bench".into(),
                id: format!("s{i}"),
                doc: doc(i),
                mode: PutMode::Upsert,
                expected_version: None,
            })
            .collect();
        store.transaction(ops).await.map_err(failed)?;
    }
    Ok(())
}

async fn close(backend: Backend) {
    backend.store.store().close().await;
    match &backend.bare {
        Bare::Sqlite(p) => p.close().await,
        Bare::Postgres(p) => p.close().await,
    }
    if let Some((admin, schema)) = backend.cleanup {
        // The schema name is ours: digits and `_` after a fixed prefix.
        let _ = admin
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .await;
        admin.close().await;
    }
    if let Some(dir) = backend.dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn bench_backend(
    kind: BackendKind,
    plan: &Plan,
    report: &mut Report,
    progress: &Progress,
) -> Result<(), BenchError> {
    let backend = open(kind).await?;
    let result = async {
        seed(&backend.store).await?;
        let statements = Arc::new(Statements::new(&backend.store)?);
        let ours = Target::Store(backend.store.clone());
        let bare = Target::Bare(backend.bare.clone(), statements, backend.store.clone());
        for op in [OpKind::Put, OpKind::Get, OpKind::Query] {
            for clients in CLIENTS {
                let name = format!("{}_{}_c{clients}", kind.as_str(), op.name());
                progress.step(&name);
                // Warm both pools and statement caches.
                measure(&ours, op, clients, clients * 4).await?;
                measure(&bare, op, clients, clients * 4).await?;
                let (mut best_ours, mut best_bare) = (Measured::default(), Measured::default());
                for _ in 0..plan.rounds {
                    best_ours = best_ours.best(measure(&ours, op, clients, plan.ops).await?);
                    best_bare = best_bare.best(measure(&bare, op, clients, plan.ops).await?);
                }
                report.results.push(
                    BenchResult::new(&name, Unit::OpsPerSecond, best_ours.per_second, true)
                        .with_ceiling("bare sqlx, same statements", best_bare.per_second)
                        .with_target("ratio >= 0.7"),
                );
                report.results.push(
                    BenchResult::new(
                        &format!("{name}_p99"),
                        Unit::Micros,
                        best_ours.p99_us,
                        false,
                    )
                    .with_ceiling("bare sqlx p99", best_bare.p99_us),
                );
                progress.done_step();
            }
        }
        Ok::<_, BenchError>(())
    }
    .await;
    close(backend).await;
    result
}

/// Runs the store benchmark.
pub fn run(options: Options) -> Result<Report, BenchError> {
    let plan = Plan::new(options);
    let mut report = Report::new(BENCH, options);
    let progress = Progress::new(options, 12);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async {
        bench_backend(BackendKind::Sqlite, &plan, &mut report, &progress).await?;
        bench_backend(BackendKind::Postgres, &plan, &mut report, &progress).await
    })?;
    progress.finish();
    Ok(report)
}
