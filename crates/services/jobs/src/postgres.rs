//! [`PostgresBackend`]: jobs in two tables of a PostgreSQL database (by default the
//! DataStore's, so a job can be enqueued in the same transaction as the data it
//! follows), for several nodes sharing one queue.
//!
//! - A claim is one `UPDATE … WHERE id = (SELECT … ORDER BY priority DESC, run_at, id
//!   LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING …`: two workers never wait on each
//!   other's row and never take the same job.
//! - A unique enqueue holds a transaction-scoped advisory lock on (queue, key) while
//!   it looks for a holder and inserts, so two nodes cannot both add one; the lock
//!   and the row go together, so a transaction that rolls back leaves no key held.
//! - Recovery of expired leases is one `UPDATE … WHERE lease_until < now`; a second
//!   node running it at once re-checks each row under its lock and skips it.
//! - JSON is kept as `jsonb` and read back as text, so the rows are read by the same
//!   code as SQLite's (`sql`).
//!
//! - Enqueues, requeues and resumes send `NOTIFY plexus_jobs` (an enqueue's
//!   inside its transaction, so it is delivered only on commit); a listener task
//!   per backend turns them into [`JobBackend::wakeups`], so idle workers on every
//!   node start at once instead of at their next poll.
//!
//! The tables are created with `CREATE TABLE IF NOT EXISTS` under an advisory lock
//! (two nodes starting together do not race), in the configured schema.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};
use tokio::sync::watch;

use crate::backend::NewJob;
use crate::sql::{self, job_of, json_text, scopes_text, to_i64};
use crate::{Job, JobError};

/// Serializes the creation of the tables between nodes (`pg_advisory_xact_lock`).
const SCHEMA_LOCK: i64 = 0x706c_6578_6a6f_6273; // "plexjobs"

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plexus_jobs (
    id BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    target TEXT NOT NULL,
    params JSONB NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    backoff_ms BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    worker TEXT,
    lease_until BIGINT,
    result JSONB,
    progress JSONB,
    errors JSONB NOT NULL DEFAULT '[]',
    unique_key TEXT,
    metadata JSONB NOT NULL DEFAULT 'null',
    caller TEXT,
    scopes JSONB
);
ALTER TABLE plexus_jobs ADD COLUMN IF NOT EXISTS progress JSONB;
CREATE INDEX IF NOT EXISTS plexus_jobs_due ON plexus_jobs (priority DESC, run_at, id)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS plexus_jobs_lease ON plexus_jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS plexus_jobs_unique ON plexus_jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS plexus_jobs_queue ON plexus_jobs (queue, state, id);
CREATE TABLE IF NOT EXISTS plexus_job_queues (
    queue TEXT PRIMARY KEY,
    paused BOOLEAN NOT NULL DEFAULT false
);
";

/// A job row's columns, the JSON ones as text (what `sql::job_of` reads).
macro_rules! columns {
    () => {
        "id, queue, target, params::text AS params, priority, state, attempt, max_attempts,
         backoff_ms, timeout_ms, run_at, created_at, finished_at, worker, lease_until,
         result::text AS result, progress::text AS progress, errors::text AS errors, unique_key,
         metadata::text AS metadata, caller, scopes::text AS scopes"
    };
}

/// Adds a pending job unless its unique key is held (`$10` null: no key); answers
/// its id. Run after [`UNIQUE_LOCK`] in the same transaction when there is a key.
pub(crate) const INSERT: &str = "INSERT INTO plexus_jobs (queue, target, params, priority, state,
         max_attempts, backoff_ms, timeout_ms, run_at, created_at, unique_key, metadata,
         caller, scopes)
     SELECT $1, $2, $3::jsonb, $4, 'pending', $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13::jsonb
     WHERE $10::text IS NULL OR NOT EXISTS (
         SELECT 1 FROM plexus_jobs WHERE queue = $1 AND unique_key = $10
             AND created_at > $14 AND state <> 'cancelled')
     RETURNING id";

/// Adds jobs without unique keys, one row per element of the arrays (in their
/// order: the ids are drawn in it); answers their ids.
const INSERT_MANY: &str = "INSERT INTO plexus_jobs (queue, target, params, priority, state,
         max_attempts, backoff_ms, timeout_ms, run_at, created_at, metadata, caller, scopes)
     SELECT queue, target, params::jsonb, priority, 'pending', max_attempts, backoff_ms,
         timeout_ms, run_at, created_at, metadata::jsonb, caller, scopes::jsonb
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[],
             $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[])
         WITH ORDINALITY AS t(queue, target, params, priority, max_attempts, backoff_ms,
             timeout_ms, run_at, created_at, metadata, caller, scopes, n)
     ORDER BY n
     RETURNING id";

/// Announces new work on each queue of `$1` (sent on commit).
const NOTIFY_MANY: &str = "SELECT pg_notify('plexus_jobs', q) FROM UNNEST($1::text[]) AS q";

/// Marks held jobs completed (`$1` ids, `$4` their results, as text), in one
/// statement; answers the ids stored.
const COMPLETE_MANY: &str = "UPDATE plexus_jobs AS j SET state = 'completed',
         result = d.result::jsonb, finished_at = $3, worker = NULL, lease_until = NULL
     FROM UNNEST($1::bigint[], $4::text[]) AS d(id, result)
     WHERE j.id = d.id AND j.worker = $2 AND j.state = 'running'
     RETURNING j.id";

/// Holds (queue `$1`, key `$2`) until the transaction ends: the next enqueue of the
/// key waits, then (its statement's snapshot taken after) sees this one's row, or
/// none if this transaction rolled back.
pub(crate) const UNIQUE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))";

/// The `claim_more` step's statement (its bindings are `sql_backend!`'s): rows
/// another node is claiming are skipped, not waited for.
const CLAIM_MORE: &str = concat!(
    "UPDATE plexus_jobs SET state = 'running', attempt = attempt + 1,
                 worker = $1, lease_until = $2
             WHERE id IN (
                 SELECT id FROM plexus_jobs
                 WHERE state = 'pending' AND queue = $3 AND run_at <= $4
                     AND NOT EXISTS (SELECT 1 FROM plexus_job_queues WHERE queue = $3 AND paused)
                 ORDER BY priority DESC, run_at, id LIMIT $5
                 FOR UPDATE SKIP LOCKED)
             RETURNING ",
    columns!()
);

/// The refilled bucket in `take_tokens` (`$2` rate, `$3` now).
macro_rules! refilled {
    () => {
        "LEAST($2::float8, plexus_job_rates.tokens
            + GREATEST(0, $3::bigint - plexus_job_rates.at) * $2::float8 / 1000.0)"
    };
}

/// The `take_tokens` step's statement (`$1` queue, `$2` rate, `$3` now, `$4`
/// want): the bucket refilled to now, then the grant taken from it, under the
/// row's lock (`ON CONFLICT DO UPDATE` takes it).
const TAKE_TOKENS: &str = concat!(
    "INSERT INTO plexus_job_rates (queue, tokens, at, granted)
         VALUES ($1, $2 - LEAST($4, $2), $3, LEAST($4, $2))
         ON CONFLICT (queue) DO UPDATE SET
             granted = LEAST($4, floor(",
    refilled!(),
    ")::bigint),
             tokens = ",
    refilled!(),
    " - LEAST($4, floor(",
    refilled!(),
    ")::bigint),
             at = GREATEST(plexus_job_rates.at, $3)
         RETURNING granted, tokens"
);

/// The `return_tokens` step's statement (`$1` queue, `$2` rate, `$3` tokens).
const RETURN_TOKENS: &str = "UPDATE plexus_job_rates
         SET tokens = LEAST($2::float8, tokens + $3) WHERE queue = $1";

/// The `progress` step's statement (`$1` id, `$2` attempt, `$3` progress).
const PROGRESS: &str = "UPDATE plexus_jobs SET progress = $3::jsonb
             WHERE id = $1 AND attempt = $2 AND state = 'running' RETURNING queue";

/// The `fail` step's statement (its bindings are `sql_backend!`'s).
const FAIL: &str = "UPDATE plexus_jobs SET
                 state = CASE WHEN $4::bigint IS NULL THEN 'dead' ELSE 'pending' END,
                 run_at = COALESCE($4, run_at),
                 finished_at = CASE WHEN $4::bigint IS NULL THEN $3 ELSE NULL END,
                 worker = NULL, lease_until = NULL,
                 errors = (CASE WHEN jsonb_array_length(errors) >= $6
                                THEN errors - 0 ELSE errors END)
                          || jsonb_build_array($5::jsonb)
             WHERE id = $1 AND worker = $2 AND state = 'running'";

/// The `recover` step's statement (its bindings are `sql_backend!`'s).
const RECOVER: &str = "UPDATE plexus_jobs SET
                 state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
                 finished_at = CASE WHEN attempt >= max_attempts THEN $1 ELSE NULL END,
                 run_at = $1, worker = NULL, lease_until = NULL,
                 errors = errors || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'at', $1::bigint, 'error', 'stalled: the lease ran out'))
             WHERE state = 'running' AND lease_until < $1
             RETURNING id, queue, attempt, state";

/// The `get` step's statement (its bindings are `sql_backend!`'s).
const GET: &str = concat!("SELECT ", columns!(), " FROM plexus_jobs WHERE id = $1");

/// The `list` step's statement (its bindings are `sql_backend!`'s).
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM plexus_jobs
             WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)
                 AND id > $3
             ORDER BY id LIMIT $4"
);

/// Where a [`PostgresBackend`] keeps its jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The server and database (`postgres://…`).
    pub url: String,
    /// The schema the tables live in (created when missing); default the
    /// connection's `search_path`.
    pub schema: Option<String>,
    /// The most connections of its pool.
    pub pool_size: u32,
    /// How long to wait for a connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl PostgresOptions {
    /// The database at `url`, in its default schema, with 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 8,
            acquire_timeout_ms: 10_000,
        }
    }
}

/// Whether `name` is a schema name: `[a-z][a-z0-9_]*`, at most 48 bytes (it is
/// rendered into SQL, quoted).
pub(crate) fn check_schema(name: &str) -> Result<(), JobError> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 48;
    if ok {
        Ok(())
    } else {
        Err(JobError::invalid(
            "postgres_schema",
            "is not a schema name (a-z first, then a-z, 0-9 and _, at most 48 bytes)",
        ))
    }
}

/// The channel work is announced on.
pub(crate) const NOTIFY: &str = "SELECT pg_notify('plexus_jobs', $1)";

/// How long the listener waits before listening again after losing its connection.
const RELISTEN_DELAY: Duration = Duration::from_secs(1);

/// Jobs in a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresBackend {
    pool: PgPool,
    wakeups: watch::Receiver<u64>,
}

impl PostgresBackend {
    /// Connects to the database `options` names and creates the schema and tables
    /// when missing.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, JobError> {
        let mut connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| JobError::invalid("postgres_url", e.to_string()))?
            .application_name("plexus-jobs");
        if let Some(schema) = &options.schema {
            check_schema(schema)?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(Duration::from_millis(options.acquire_timeout_ms))
            .connect_with(connect)
            .await?;
        Self::create(pool, options.schema.as_deref()).await
    }

    /// Jobs in the database `pool` reaches (the DataStore's), creating the tables.
    pub async fn on_pool(pool: PgPool) -> Result<Self, JobError> {
        Self::create(pool, None).await
    }

    /// Creates `schema` (checked) and the tables under the advisory lock, then
    /// starts listening.
    async fn create(pool: PgPool, schema: Option<&str>) -> Result<Self, JobError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        if let Some(schema) = schema {
            // The name passed check_schema: lower-case letters, digits and `_`.
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            tx.execute(AssertSqlSafe(create)).await?;
        }
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        sqlx::raw_sql(sql::SCHEDULES_TABLE)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(sql::RATES_TABLE).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Self::listening(pool))
    }

    /// The backend over `pool`, with its listener task started (it ends when the
    /// last clone of the backend is dropped).
    fn listening(pool: PgPool) -> Self {
        let (tx, wakeups) = watch::channel(0u64);
        let listen_pool = pool.clone();
        tokio::spawn(async move {
            while !tx.is_closed() {
                let mut listener = match PgListener::connect_with(&listen_pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "jobs: cannot listen for new work; polling meanwhile");
                        tokio::time::sleep(RELISTEN_DELAY).await;
                        continue;
                    }
                };
                if let Err(error) = listener.listen("plexus_jobs").await {
                    tracing::warn!(%error, "jobs: LISTEN failed; polling meanwhile");
                    tokio::time::sleep(RELISTEN_DELAY).await;
                    continue;
                }
                loop {
                    tokio::select! {
                        () = tx.closed() => return,
                        got = listener.try_recv() => match got {
                            // A notification; or (None) the connection was lost and
                            // notifications with it: wake everyone once either way.
                            Ok(_) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                            Err(error) => {
                                tracing::warn!(%error, "jobs: listening for new work failed");
                                break;
                            }
                        }
                    }
                }
            }
        });
        Self { pool, wakeups }
    }

    /// The pool (tests drop their schema through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tells every node's listener that `queue` has work.
    async fn announce(&self, queue: &str) -> Result<(), JobError> {
        sqlx::query(NOTIFY).bind(queue).execute(&self.pool).await?;
        Ok(())
    }
}

sql::sql_backend!(PostgresBackend [INSERT, Some(UNIQUE_LOCK), Some(NOTIFY), CLAIM_MORE, TAKE_TOKENS, RETURN_TOKENS, PROGRESS, FAIL, RECOVER, GET, LIST] {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn wakeups(&self) -> Option<watch::Receiver<u64>> {
        Some(self.wakeups.clone())
    }


    async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(i64, bool)>, JobError> {
        // A unique key needs its lock and its check, job by job.
        if jobs.iter().any(|j| j.unique_key.is_some()) {
            return self.enqueue_each(jobs).await;
        }
        // Otherwise one statement for the lot: one round trip, not one per job.
        let column = |f: &dyn Fn(&NewJob) -> String| jobs.iter().map(f).collect::<Vec<_>>();
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<i64> = sqlx::query_scalar(INSERT_MANY)
            .bind(column(&|j| j.queue.clone()))
            .bind(column(&|j| j.target.clone()))
            .bind(column(&|j| json_text(&j.params)))
            .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| i64::from(j.max_attempts)).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| to_i64(j.backoff_ms)).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| to_i64(j.timeout_ms)).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.created_at).collect::<Vec<_>>())
            .bind(column(&|j| json_text(&j.metadata)))
            .bind(jobs.iter().map(|j| j.caller.clone()).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| scopes_text(j.scopes.as_ref())).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        sqlx::query(NOTIFY_MANY)
            .bind(queues)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if ids.len() != jobs.len() {
            return Err(JobError::Backend {
                reason: format!("{} jobs enqueued, {} ids answered", jobs.len(), ids.len()),
            });
        }
        // Ids are drawn in the order the rows were inserted: the batch's.
        ids.sort_unstable();
        Ok(ids.into_iter().map(|id| (id, true)).collect())
    }

    async fn complete_many(
        &self,
        worker: &str,
        now: i64,
        done: &[(i64, serde_json::Value)],
    ) -> Result<Vec<bool>, JobError> {
        let stored: Vec<i64> = sqlx::query_scalar(COMPLETE_MANY)
            .bind(done.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(worker)
            .bind(now)
            .bind(done.iter().map(|(_, r)| json_text(r)).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
        Ok(done.iter().map(|(id, _)| stored.contains(id)).collect())
    }

    async fn claim(
        &self,
        now: i64,
        full: &[String],
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<Job>, JobError> {
        let row = sqlx::query(concat!(
            "UPDATE plexus_jobs SET state = 'running', attempt = attempt + 1,
                 worker = $1, lease_until = $2
             WHERE id = (
                 SELECT id FROM plexus_jobs
                 WHERE state = 'pending' AND run_at <= $3
                     AND queue NOT IN (SELECT queue FROM plexus_job_queues WHERE paused)
                     AND NOT (queue = ANY($4))
                 ORDER BY priority DESC, run_at, id LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            columns!()
        ))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(full)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_of).transpose()
    }

    async fn requeue(
        &self,
        ids: Option<&[i64]>,
        queue: Option<&str>,
        now: i64,
    ) -> Result<u64, JobError> {
        let done = match ids {
            Some(ids) => {
                sqlx::query(
                    "UPDATE plexus_jobs SET state = 'pending', attempt = 0, run_at = $1,
                         finished_at = NULL, worker = NULL, lease_until = NULL
                     WHERE state IN ('dead', 'cancelled') AND id = ANY($2)",
                )
                .bind(now)
                .bind(ids)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sql::REQUEUE_DEAD)
                    .bind(now)
                    .bind(queue)
                    .execute(&self.pool)
                    .await?
            }
        };
        if done.rows_affected() > 0 {
            self.announce(queue.unwrap_or("*")).await?;
        }
        Ok(done.rows_affected())
    }

});
