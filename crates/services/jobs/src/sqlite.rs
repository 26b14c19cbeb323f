//! [`SqliteBackend`]: jobs in two tables of a SQLite file (by default the
//! DataStore's own, so jobs sit beside the data), in WAL mode with a busy timeout.
//!
//! Each operation is one statement, so SQLite's single writer makes it atomic:
//! a claim is an `UPDATE … WHERE id = (SELECT … ORDER BY priority DESC, run_at, id
//! LIMIT 1) RETURNING *`, a unique enqueue an `INSERT … SELECT … WHERE NOT EXISTS`.
//! The tables are created with `CREATE TABLE IF NOT EXISTS` rather than a migrator,
//! because the file's migration table belongs to the DataStore.

use std::str::FromStr;
use std::time::Duration;

use plexus_core::async_trait;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};

use crate::backend::{JobBackend, JobState, ListFilter, NewJob, QueueStats, Stalled};
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

/// Jobs in a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating when missing) the file `url` names and its tables.
    pub async fn connect(url: &str) -> Result<Self, JobError> {
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
            .max_connections(4)
            .connect_with(options)
            .await?;
        Self::on_pool(pool).await
    }

    /// Jobs in the database `pool` reaches (the DataStore's), creating the tables.
    pub async fn on_pool(pool: SqlitePool) -> Result<Self, JobError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: &str) -> Result<Value, JobError> {
    serde_json::from_str(text).map_err(|e| JobError::Backend {
        reason: format!("unreadable JSON in a job: {e}"),
    })
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The counts of `queue` in `out`, made when missing.
fn slot(
    out: &mut std::collections::BTreeMap<String, QueueStats>,
    queue: String,
) -> &mut QueueStats {
    out.entry(queue.clone()).or_insert_with(|| QueueStats {
        queue,
        ..QueueStats::default()
    })
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

fn job_of(row: &SqliteRow) -> Result<Job, JobError> {
    let state: String = row.try_get("state")?;
    let state = JobState::parse(&state).ok_or_else(|| JobError::Backend {
        reason: format!("unknown job state `{state}`"),
    })?;
    let result: Option<String> = row.try_get("result")?;
    let errors: String = row.try_get("errors")?;
    let errors = match parse_json(&errors)? {
        Value::Array(items) => items,
        other => vec![other],
    };
    let scopes: Option<String> = row.try_get("scopes")?;
    let scopes = scopes
        .map(|s| serde_json::from_str::<Vec<String>>(&s))
        .transpose()
        .map_err(|e| JobError::Backend {
            reason: format!("unreadable scopes in a job: {e}"),
        })?;
    Ok(Job {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        target: row.try_get("target")?,
        params: parse_json(row.try_get("params")?)?,
        priority: row.try_get("priority")?,
        state,
        attempt: to_u32(row.try_get("attempt")?),
        max_attempts: to_u32(row.try_get("max_attempts")?),
        backoff_ms: to_u64(row.try_get("backoff_ms")?),
        timeout_ms: to_u64(row.try_get("timeout_ms")?),
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        worker: row.try_get("worker")?,
        lease_until: row.try_get("lease_until")?,
        result: result.as_deref().map(parse_json).transpose()?,
        errors,
        unique_key: row.try_get("unique_key")?,
        metadata: parse_json(row.try_get("metadata")?)?,
        caller: row.try_get("caller")?,
        scopes,
    })
}

#[async_trait]
impl JobBackend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn enqueue(&self, job: &NewJob) -> Result<(i64, bool), JobError> {
        let scopes = job
            .scopes
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".to_owned()));
        let since = job.created_at.saturating_sub(to_i64(job.unique_window_ms));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO plexus_jobs (queue, target, params, priority, state, max_attempts,
                 backoff_ms, timeout_ms, run_at, created_at, unique_key, metadata, caller, scopes)
             SELECT ?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
             WHERE ?10 IS NULL OR NOT EXISTS (
                 SELECT 1 FROM plexus_jobs WHERE queue = ?1 AND unique_key = ?10
                     AND created_at > ?14 AND state <> 'cancelled')
             RETURNING id",
        )
        .bind(&job.queue)
        .bind(&job.target)
        .bind(json_text(&job.params))
        .bind(job.priority)
        .bind(i64::from(job.max_attempts))
        .bind(to_i64(job.backoff_ms))
        .bind(to_i64(job.timeout_ms))
        .bind(job.run_at)
        .bind(job.created_at)
        .bind(&job.unique_key)
        .bind(json_text(&job.metadata))
        .bind(&job.caller)
        .bind(scopes)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok((id, true));
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM plexus_jobs WHERE queue = ?1 AND unique_key = ?2
                 AND created_at > ?3 AND state <> 'cancelled' ORDER BY id DESC LIMIT 1",
        )
        .bind(&job.queue)
        .bind(&job.unique_key)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        existing
            .map(|id| (id, false))
            .ok_or_else(|| JobError::Unavailable {
                reason: "the job holding the unique key went away meanwhile; try again".to_owned(),
            })
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
                     AND queue NOT IN (SELECT queue FROM plexus_job_queues WHERE paused = 1)
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

    async fn renew(&self, id: i64, worker: &str, lease_until: i64) -> Result<bool, JobError> {
        let done = sqlx::query(
            "UPDATE plexus_jobs SET lease_until = ?3
             WHERE id = ?1 AND worker = ?2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        id: i64,
        worker: &str,
        now: i64,
        result: &Value,
    ) -> Result<bool, JobError> {
        let done = sqlx::query(
            "UPDATE plexus_jobs SET state = 'completed', result = ?3, finished_at = ?4,
                 worker = NULL, lease_until = NULL
             WHERE id = ?1 AND worker = ?2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(json_text(result))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail(
        &self,
        id: i64,
        worker: &str,
        now: i64,
        error: &Value,
        retry_at: Option<i64>,
        keep: usize,
    ) -> Result<bool, JobError> {
        let done = sqlx::query(
            "UPDATE plexus_jobs SET
                 state = CASE WHEN ?4 IS NULL THEN 'dead' ELSE 'pending' END,
                 run_at = COALESCE(?4, run_at),
                 finished_at = CASE WHEN ?4 IS NULL THEN ?3 ELSE NULL END,
                 worker = NULL, lease_until = NULL,
                 errors = json_insert(
                     CASE WHEN json_array_length(errors) >= ?6
                          THEN json_remove(errors, '$[0]') ELSE errors END,
                     '$[#]', json(?5))
             WHERE id = ?1 AND worker = ?2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(retry_at)
        .bind(json_text(error))
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recover(&self, now: i64) -> Result<Vec<Stalled>, JobError> {
        let rows = sqlx::query(
            "UPDATE plexus_jobs SET
                 state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
                 finished_at = CASE WHEN attempt >= max_attempts THEN ?1 ELSE NULL END,
                 run_at = ?1, worker = NULL, lease_until = NULL,
                 errors = json_insert(errors, '$[#]', json_object(
                     'attempt', attempt, 'at', ?1, 'error', 'stalled: the lease ran out'))
             WHERE state = 'running' AND lease_until < ?1
             RETURNING id, queue, attempt, state",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(Stalled {
                    id: row.try_get("id")?,
                    queue: row.try_get("queue")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    dead: state == "dead",
                })
            })
            .collect()
    }

    async fn get(&self, id: i64) -> Result<Option<Job>, JobError> {
        let row = sqlx::query("SELECT * FROM plexus_jobs WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_of).transpose()
    }

    async fn cancel(&self, id: i64, now: i64) -> Result<bool, JobError> {
        let done = sqlx::query(
            "UPDATE plexus_jobs SET state = 'cancelled', finished_at = ?2,
                 worker = NULL, lease_until = NULL
             WHERE id = ?1 AND state IN ('pending', 'running')",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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
                sqlx::query(
                    "UPDATE plexus_jobs SET state = 'pending', attempt = 0, run_at = ?1,
                 finished_at = NULL, worker = NULL, lease_until = NULL WHERE state = 'dead' AND (?2 IS NULL OR queue = ?2)",
                )
                .bind(now)
                .bind(queue)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        let rows = sqlx::query(
            "SELECT * FROM plexus_jobs
             WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2) AND id > ?3
             ORDER BY id LIMIT ?4",
        )
        .bind(&filter.queue)
        .bind(filter.state.map(JobState::as_str))
        .bind(filter.after.unwrap_or(0))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_of).collect()
    }

    async fn stats(&self, queue: Option<&str>) -> Result<Vec<QueueStats>, JobError> {
        let counts = sqlx::query(
            "SELECT queue, state, count(*) AS n FROM plexus_jobs
             WHERE ?1 IS NULL OR queue = ?1 GROUP BY queue, state",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        let paused = sqlx::query(
            "SELECT queue, paused FROM plexus_job_queues WHERE ?1 IS NULL OR queue = ?1",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        let mut out = std::collections::BTreeMap::<String, QueueStats>::new();
        for row in &paused {
            let p: i64 = row.try_get("paused")?;
            slot(&mut out, row.try_get("queue")?).paused = p != 0;
        }
        for row in &counts {
            let state: String = row.try_get("state")?;
            let n = to_u64(row.try_get("n")?);
            let s = slot(&mut out, row.try_get("queue")?);
            match JobState::parse(&state) {
                Some(JobState::Pending) => s.pending = n,
                Some(JobState::Running) => s.running = n,
                Some(JobState::Completed) => s.completed = n,
                Some(JobState::Dead) => s.dead = n,
                Some(JobState::Cancelled) => s.cancelled = n,
                None => {}
            }
        }
        Ok(out.into_values().collect())
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), JobError> {
        sqlx::query(
            "INSERT INTO plexus_job_queues (queue, paused) VALUES (?1, ?2)
             ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused",
        )
        .bind(queue)
        .bind(i64::from(paused))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<i64>, JobError> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT min(run_at) FROM plexus_jobs
             WHERE state = 'pending' AND queue NOT IN (SELECT queue FROM plexus_job_queues WHERE paused = 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(due)
    }
}
