//! [`SqliteBackend`]: jobs in two tables of a SQLite file (by default the
//! DataStore's own, so jobs sit beside the data), in WAL mode with a busy timeout.
//!
//! Each operation is one statement, so SQLite's single writer makes it atomic:
//! a claim is an `UPDATE … WHERE id = (SELECT … ORDER BY priority DESC, run_at, id
//! LIMIT 1) RETURNING *`, a unique enqueue an `INSERT … SELECT … WHERE NOT EXISTS`.
//! The tables are created with `CREATE TABLE IF NOT EXISTS` rather than a migrator,
//! because the file's migration table belongs to the DataStore. The statements
//! PostgreSQL runs unchanged, and the reading of rows, are shared (`sql`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::backend::NewJob;
use crate::sql::{self, job_of};
use crate::{Job, JobError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plexus_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    worker TEXT,
    lease_until INTEGER,
    result TEXT,
    progress TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    unique_key TEXT,
    metadata TEXT NOT NULL DEFAULT 'null',
    caller TEXT,
    scopes TEXT
);
CREATE INDEX IF NOT EXISTS plexus_jobs_due ON plexus_jobs (state, priority DESC, run_at, id);
CREATE INDEX IF NOT EXISTS plexus_jobs_lease ON plexus_jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS plexus_jobs_unique ON plexus_jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS plexus_jobs_queue ON plexus_jobs (queue, state, id);
CREATE TABLE IF NOT EXISTS plexus_job_queues (
    queue TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);
";

/// Adds a pending job unless its unique key is held (`$10` null: no key); answers
/// its id. SQLite's single writer makes the check and the insert one step.
pub(crate) const INSERT: &str = "INSERT INTO plexus_jobs (queue, target, params, priority, state,
         max_attempts, backoff_ms, timeout_ms, run_at, created_at, unique_key, metadata,
         caller, scopes)
     SELECT $1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13
     WHERE $10 IS NULL OR NOT EXISTS (
         SELECT 1 FROM plexus_jobs WHERE queue = $1 AND unique_key = $10
             AND created_at > $14 AND state <> 'cancelled')
     RETURNING id";

/// The `complete_many` step's statement, run once per job (`?1` id, `?2` worker,
/// `?3` result, `?4` now).
const COMPLETE: &str = "UPDATE plexus_jobs SET state = 'completed', result = ?3, finished_at = ?4,
                 worker = NULL, lease_until = NULL
             WHERE id = ?1 AND worker = ?2 AND state = 'running'";

/// The `claim_more` step's statement (its bindings are `sql_backend!`'s).
const CLAIM_MORE: &str = "UPDATE plexus_jobs SET state = 'running', attempt = attempt + 1,
                 worker = ?1, lease_until = ?2
             WHERE id IN (
                 SELECT id FROM plexus_jobs
                 WHERE state = 'pending' AND queue = ?3 AND run_at <= ?4
                     AND NOT EXISTS (SELECT 1 FROM plexus_job_queues WHERE queue = ?3 AND paused)
                 ORDER BY priority DESC, run_at, id LIMIT ?5)
             RETURNING *";

/// The `take_tokens` step's statement (`?1` queue, `?2` rate, `?3` now, `?4`
/// want): the bucket refilled to now, then the grant taken from it, in one
/// statement (SQLite's single writer makes it atomic).
const TAKE_TOKENS: &str = "INSERT INTO plexus_job_rates (queue, tokens, at, granted)
             VALUES (?1, ?2 - min(?4, ?2), ?3, min(?4, ?2))
             ON CONFLICT (queue) DO UPDATE SET
                 granted = min(?4, CAST(min(?2, tokens + max(0, ?3 - at) * ?2 / 1000.0) AS INTEGER)),
                 tokens = min(?2, tokens + max(0, ?3 - at) * ?2 / 1000.0)
                     - min(?4, CAST(min(?2, tokens + max(0, ?3 - at) * ?2 / 1000.0) AS INTEGER)),
                 at = max(at, ?3)
             RETURNING granted, CAST(tokens AS REAL)";

/// The `return_tokens` step's statement (`?1` queue, `?2` rate, `?3` tokens).
const RETURN_TOKENS: &str =
    "UPDATE plexus_job_rates SET tokens = min(?2, tokens + ?3) WHERE queue = ?1";

/// The `progress` step's statement (`?1` id, `?2` attempt, `?3` progress).
const PROGRESS: &str = "UPDATE plexus_jobs SET progress = ?3
             WHERE id = ?1 AND attempt = ?2 AND state = 'running' RETURNING queue";

/// The `fail` step's statement (its bindings are `sql_backend!`'s).
const FAIL: &str = "UPDATE plexus_jobs SET
                 state = CASE WHEN ?4 IS NULL THEN 'dead' ELSE 'pending' END,
                 run_at = COALESCE(?4, run_at),
                 finished_at = CASE WHEN ?4 IS NULL THEN ?3 ELSE NULL END,
                 worker = NULL, lease_until = NULL,
                 errors = json_insert(
                     CASE WHEN json_array_length(errors) >= ?6
                          THEN json_remove(errors, '$[0]') ELSE errors END,
                     '$[#]', json(?5))
             WHERE id = ?1 AND worker = ?2 AND state = 'running'";

/// The `recover` step's statement (its bindings are `sql_backend!`'s).
const RECOVER: &str = "UPDATE plexus_jobs SET
                 state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
                 finished_at = CASE WHEN attempt >= max_attempts THEN ?1 ELSE NULL END,
                 run_at = ?1, worker = NULL, lease_until = NULL,
                 errors = json_insert(errors, '$[#]', json_object(
                     'attempt', attempt, 'at', ?1, 'error', 'stalled: the lease ran out'))
             WHERE state = 'running' AND lease_until < ?1
             RETURNING id, queue, attempt, state";

/// The `get` step's statement (its bindings are `sql_backend!`'s).
const GET: &str = "SELECT * FROM plexus_jobs WHERE id = ?1";

/// The `list` step's statement (its bindings are `sql_backend!`'s).
const LIST: &str = "SELECT * FROM plexus_jobs
             WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2) AND id > ?3
             ORDER BY id LIMIT ?4";

/// Jobs in a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating when missing) the file `url` names and its tables, with the
    /// default pool (`jobs.pool_size`'s default).
    pub async fn connect(url: &str) -> Result<Self, JobError> {
        Self::connect_with(url, crate::JobsConfig::default().pool_size).await
    }

    /// Opens (creating when missing) the file `url` names and its tables, with at
    /// most `pool_size` connections.
    pub async fn connect_with(url: &str, pool_size: u32) -> Result<Self, JobError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| JobError::invalid("sqlite_url", e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| JobError::Unavailable {
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .connect_with(options)
            .await?;
        Self::on_pool(pool).await
    }

    /// Jobs in the database `pool` reaches (the DataStore's), creating the tables.
    pub async fn on_pool(pool: SqlitePool) -> Result<Self, JobError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        // A file made before jobs kept their progress gains the column.
        let has_progress: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM pragma_table_info('plexus_jobs') WHERE name = 'progress'",
        )
        .fetch_optional(&pool)
        .await?;
        if has_progress.is_none() {
            sqlx::raw_sql("ALTER TABLE plexus_jobs ADD COLUMN progress TEXT")
                .execute(&pool)
                .await?;
        }
        sqlx::raw_sql(sql::SCHEDULES_TABLE).execute(&pool).await?;
        sqlx::raw_sql(sql::RATES_TABLE).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Work is announced to no other node: the file is this node's (its dispatcher
    /// is woken by the queue itself).
    async fn announce(&self, _queue: &str) -> Result<(), JobError> {
        Ok(())
    }
}

#[cfg(feature = "test-util")]
impl SqliteBackend {
    /// Adds `n` dead jobs to `queue`, calling `target`, each with one failed attempt
    /// (`seeded failure <i>`) at `now`, in one statement: a long dead-letter list
    /// for tests of the pages that show it, without running `n` failing jobs.
    /// Answers how many were added.
    pub async fn seed_dead(
        &self,
        queue: &str,
        target: &str,
        n: u64,
        now: i64,
    ) -> Result<u64, JobError> {
        let done = sqlx::query(
            "WITH RECURSIVE k(i) AS (SELECT 1 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
             INSERT INTO plexus_jobs (queue, target, params, priority, state, attempt, max_attempts,
                 backoff_ms, timeout_ms, run_at, created_at, finished_at, errors, metadata)
             SELECT ?2, ?3, '{}', 0, 'dead', 1, 1, 1000, 60000, ?4, ?4, ?4,
                 json_array(json_object('attempt', 1, 'at', ?4, 'error', 'seeded failure ' || i)),
                 json_object('seed', i)
             FROM k",
        )
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(queue)
        .bind(target)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

sql::sql_backend!(SqliteBackend [INSERT, None, None, CLAIM_MORE, TAKE_TOKENS, RETURN_TOKENS, PROGRESS, FAIL, RECOVER, GET, LIST] {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<(i64, bool)>, JobError> {
        // In process, a statement is cheap; the commit is what costs.
        self.enqueue_each(jobs).await
    }

    async fn complete_many(
        &self,
        worker: &str,
        now: i64,
        done: &[(i64, serde_json::Value)],
    ) -> Result<Vec<bool>, JobError> {
        // One transaction: one commit (one sync to disk) for the lot.
        let mut tx = self.pool.begin().await?;
        let mut stored = Vec::with_capacity(done.len());
        for (id, result) in done {
            let outcome = sqlx::query(COMPLETE)
                .bind(id)
                .bind(worker)
                .bind(sql::json_text(result))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            stored.push(outcome.rows_affected() == 1);
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn claim(
        &self,
        now: i64,
        full: &[String],
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<Job>, JobError> {
        let full = serde_json::to_string(full).unwrap_or_else(|_| "[]".to_owned());
        let row = sqlx::query(
            "UPDATE plexus_jobs SET state = 'running', attempt = attempt + 1,
                 worker = ?1, lease_until = ?2
             WHERE id = (
                 SELECT id FROM plexus_jobs
                 WHERE state = 'pending' AND run_at <= ?3
                     AND queue NOT IN (SELECT queue FROM plexus_job_queues WHERE paused)
                     AND queue NOT IN (SELECT value FROM json_each(?4))
                 ORDER BY priority DESC, run_at, id LIMIT 1)
             RETURNING *",
        )
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
                let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
                sqlx::query(
                    "UPDATE plexus_jobs SET state = 'pending', attempt = 0, run_at = ?1,
                 finished_at = NULL, worker = NULL, lease_until = NULL WHERE state IN ('dead', 'cancelled')
                         AND id IN (SELECT value FROM json_each(?2))",
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
        Ok(done.rows_affected())
    }

});
